"""Encoder parameter counts with and without an intermediate Dense layer.

docs/design.md, "The encoder bottleneck": in a conv VAE encoder the
`Flatten -> (mu, logvar)` heads dominate the parameter count.
`build_conv_encoder_decoder(..., intermediate_dim=k)` puts a `Dense(k)` (with
the activation, and by default no BatchNormalization, as in the original
VAE) between `Flatten` and the two heads. This script counts, for each
`z_dim` and each `intermediate_dim` (`None` = no intermediate layer), the
encoder's parameters (total and trainable), the share held by the layers
after `Flatten`, and the ratio to the encoder without an intermediate layer.
Counting needs no training, so it is exact and machine-independent.

Run on its own (prints a markdown table, optionally writes JSON):

    python benchmarks/encoder_params.py
    python benchmarks/encoder_params.py --input-shape 96x96x3 \
        --z-dims 256,512 --intermediate-dims none,256,512 --json out.json

`benchmarks/kl_strategies.py` runs the same measurement and puts it in its
report under `"encoder_params"`.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

from keras_vae_layers import build_conv_encoder_decoder  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402

DEFAULT_INPUT_SHAPE = (96, 96, 3)
DEFAULT_FILTERS = (32, 64, 128, 256)
DEFAULT_Z_DIMS = (256, 512)
DEFAULT_INTERMEDIATE_DIMS = (None, 256, 512)

# Layers of the builder's encoder that sit after `Flatten`.
_AFTER_FLATTEN_PREFIXES = ("encoder_dense", "mu", "logvar")


def parse_shape(text):
    """`"96x96x3"` -> `(96, 96, 3)`."""
    try:
        dims = tuple(int(d) for d in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(
            f"input shape must look like HxWxC (e.g. 96x96x3), received "
            f"{text!r}."
        ) from None
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(
            f"input shape must be three positive ints HxWxC, received "
            f"{text!r}."
        )
    return dims


def parse_int_list(text, allow_none=False):
    """`"256,512"` -> `[256, 512]`; `"none"` -> `None` when allowed."""
    values = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        if allow_none and part in ("none", "0", "-"):
            values.append(None)
        else:
            values.append(int(part))
    if not values:
        raise ValueError(f"expected a comma-separated list, received {text!r}")
    return values


def count_encoder_params(input_shape=DEFAULT_INPUT_SHAPE,
                         z_dims=DEFAULT_Z_DIMS,
                         intermediate_dims=DEFAULT_INTERMEDIATE_DIMS,
                         filters=DEFAULT_FILTERS, batch_norm=True,
                         intermediate_batch_norm=False, log=None):
    """Counts encoder parameters for every `(z_dim, intermediate_dim)` pair.

    Args:
        input_shape: Image shape `(h, w, c)`.
        z_dims: Latent sizes to try.
        intermediate_dims: Sizes of the Dense layer between `Flatten` and the
            heads; `None` means no such layer (the baseline of each row).
        filters: Encoder `Conv2D` filters (kernel 3, stride 2 each); the
            decoder mirrors them.
        batch_norm: Whether the conv stack uses `BatchNormalization`.
        intermediate_batch_norm: Whether the intermediate Dense is followed
            by `BatchNormalization` (the builder's opt-in; off by default).
        log: Optional `print`-like progress callback.

    Returns:
        Dict with `"config"` and `"rows"`, one row per pair: `z_dim`,
        `intermediate_dim`, `encoder_params`, `encoder_trainable_params`,
        `after_flatten_params`, `after_flatten_share`, `flatten_features`,
        `decoder_params`, `ratio_to_no_intermediate`.
    """
    log = log or (lambda *a, **k: None)
    filters = tuple(int(f) for f in filters)
    decoder_filters = tuple(reversed(filters[:-1])) + (int(input_shape[-1]),)
    intermediate_dims = list(intermediate_dims)
    if None not in intermediate_dims:
        intermediate_dims.insert(0, None)
    rows = []
    for z_dim in z_dims:
        baseline = None
        for inter in intermediate_dims:
            keras.backend.clear_session()
            encoder, decoder = build_conv_encoder_decoder(
                input_shape, z_dim, filters, 3, 2, decoder_filters, 3, 2,
                batch_norm=batch_norm, intermediate_dim=inter,
                intermediate_batch_norm=intermediate_batch_norm,
            )
            total = int(encoder.count_params())
            trainable = int(sum(
                int(keras.ops.size(w)) for w in encoder.trainable_weights
            ))
            after = int(sum(
                layer.count_params() for layer in encoder.layers
                if layer.name.startswith(_AFTER_FLATTEN_PREFIXES)
            ))
            flat = int(encoder.get_layer("encoder_flatten").output.shape[-1])
            if inter is None:
                baseline = total
            row = {
                "z_dim": int(z_dim),
                "intermediate_dim": inter,
                "encoder_params": total,
                "encoder_trainable_params": trainable,
                "after_flatten_params": after,
                "after_flatten_share": after / total,
                "flatten_features": flat,
                "decoder_params": int(decoder.count_params()),
                "ratio_to_no_intermediate": total / baseline,
            }
            rows.append(row)
            log(f"  encoder params z_dim={z_dim} intermediate={inter}: "
                f"{total:,} ({row['ratio_to_no_intermediate']:.2f}x)")
            del encoder, decoder
    keras.backend.clear_session()
    return {
        "config": {
            "input_shape": list(input_shape),
            "encoder_filters": list(filters),
            "kernel_size": 3,
            "strides": 2,
            "batch_norm": bool(batch_norm),
            "intermediate_batch_norm": bool(intermediate_batch_norm),
        },
        "rows": rows,
    }


def _csv(values):
    return ",".join("none" if v is None else str(v) for v in values)


# (flag, default, help) of the table's options, without a prefix.
_TABLE_FLAGS = (
    ("input-shape", "x".join(map(str, DEFAULT_INPUT_SHAPE)), "HxWxC"),
    ("z-dims", _csv(DEFAULT_Z_DIMS), "comma-separated latent sizes"),
    ("intermediate-dims", _csv(DEFAULT_INTERMEDIATE_DIMS),
     "comma-separated sizes, 'none' = no layer"),
    ("filters", _csv(DEFAULT_FILTERS), "encoder filters"),
)


def add_table_flags(parser, prefix="", topic=""):
    """Adds `--{prefix}input-shape`, `--{prefix}z-dims`,
    `--{prefix}intermediate-dims` and `--{prefix}filters` to `parser`."""
    for flag, default, text in _TABLE_FLAGS:
        parser.add_argument(f"--{prefix}{flag}", default=default,
                            help=f"{topic}{text} (default {default})")


def count_from_flags(args, prefix="", batch_norm=True,
                     intermediate_batch_norm=False, log=None):
    """`count_encoder_params` on the options of `add_table_flags`."""
    def flag(name):
        return getattr(args, (prefix + name).replace("-", "_"))

    return count_encoder_params(
        parse_shape(flag("input-shape")), parse_int_list(flag("z-dims")),
        parse_int_list(flag("intermediate-dims"), allow_none=True),
        parse_int_list(flag("filters")), batch_norm, intermediate_batch_norm,
        log=log,
    )


def markdown_table(result):
    """The rows of `count_encoder_params` as a markdown table."""
    cfg = result["config"]
    shape = "x".join(str(d) for d in cfg["input_shape"])
    lines = [
        f"Encoder `{shape}`, filters {tuple(cfg['encoder_filters'])}, "
        f"kernel 3, stride 2, batch_norm={cfg['batch_norm']}, "
        f"intermediate_batch_norm="
        f"{cfg.get('intermediate_batch_norm', False)}.",
        "",
        "| z_dim | intermediate_dim | encoder params | trainable | "
        "after Flatten (share) | decoder params | vs. no intermediate |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['z_dim']} | {r['intermediate_dim'] or '-'} | "
            f"{r['encoder_params']:,} | {r['encoder_trainable_params']:,} | "
            f"{r['after_flatten_params']:,} "
            f"({100 * r['after_flatten_share']:.0f}%) | "
            f"{r['decoder_params']:,} | "
            f"{r['ratio_to_no_intermediate']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Count conv VAE encoder parameters with and without an "
                    "intermediate Dense layer (see docs/design.md)."
    )
    add_table_flags(parser)
    parser.add_argument("--no-batch-norm", action="store_true")
    parser.add_argument("--intermediate-batch-norm", action="store_true",
                        help="BatchNormalization after the intermediate "
                             "Dense (the builder's opt-in)")
    parser.add_argument("--json", default=None,
                        help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    result = count_from_flags(
        args, batch_norm=not args.no_batch_norm,
        intermediate_batch_norm=args.intermediate_batch_norm,
        log=lambda *a: print(*a, flush=True),
    )
    print(markdown_table(result))
    if args.json:
        write_json_atomic(args.json, result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
