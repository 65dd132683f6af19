"""Helpers shared by the example scripts (not part of the package).

Each example puts the repository root on `sys.path` and imports this
module as `examples._common`, so the scripts run as `python
examples/<name>.py` from any directory and load by path in the tests.
"""

import argparse
import os

import keras

from keras_vae_layers import VAEModel
from keras_vae_layers import build_conv_encoder_decoder
from keras_vae_layers import diagnostics


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def parse_ints(text):
    """`"32,64"` -> `(32, 64)`: an argparse `type` for filter lists."""
    return tuple(int(v) for v in text.split(","))


def description(doc):
    """The first paragraph of a module docstring (the `--help` summary)."""
    return doc.split("\n\n")[0]


def run_parser(doc, name):
    """An `ArgumentParser` with the `--name` and `--runs-dir` options of an
    example that writes into `<runs-dir>/<name>/`."""
    parser = argparse.ArgumentParser(description=description(doc))
    parser.add_argument("--name", default=name, help="run name: runs/<name>")
    parser.add_argument("--runs-dir", default="runs")
    return parser


def require_at_least(parser, args, minimum, *names):
    """`parser.error` (exit status 2) for the first of `names` (argument
    attributes) below `minimum`."""
    for name in names:
        value = getattr(args, name)
        if value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, "
                         f"got {value}")


def run_dir(args):
    """Creates `<runs-dir>/<name>` and returns it."""
    path = os.path.join(args.runs_dir, args.name)
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------------------
# Data and models
# ----------------------------------------------------------------------------


def holdout_split(images):
    """uint8 images -> float32 `(x_train, x_val)` in [0, 1]; the first
    tenth (at least 10 images) is held out."""
    x = images.astype("float32") / 255.0
    n_val = max(10, len(x) // 10)
    return x[n_val:], x[:n_val]


def build_conv_stack(input_shape, z_dim, filters, kernel_size, **kwargs):
    """Encoder and mirror-image decoder of stride-2 convs, without a KL
    layer (the model that trains them owns the loss).

    Args:
        input_shape: Image shape `(h, w, c)`.
        z_dim: Latent size.
        filters: Encoder filters; the decoder uses them reversed, ending
            with `c` channels.
        kernel_size: Kernel size of every conv.
        **kwargs: Further `build_conv_encoder_decoder` arguments
            (`batch_norm`, `intermediate_dim`, `seed`, ...).

    Returns:
        `(encoder, decoder)`.
    """
    return build_conv_encoder_decoder(
        input_shape, z_dim=z_dim, encoder_filters=filters,
        encoder_kernel_sizes=kernel_size, encoder_strides=2,
        decoder_filters=tuple(reversed(filters[:-1])) + (input_shape[-1],),
        decoder_kernel_sizes=kernel_size, decoder_strides=2,
        kl_layer=False, **kwargs,
    )


def build_vae(input_shape, z_dim, filters, kernel_size, beta=1.0, seed=None,
              **kwargs):
    """A `VAEModel` on `build_conv_stack(...)`, compiled with `Adam(1e-3)`.

    `beta` is given here only: `VAEModel` owns the KL term. `seed` seeds
    the weights and the sampling; `kwargs` go to `build_conv_stack`.
    """
    encoder, decoder = build_conv_stack(input_shape, z_dim, filters,
                                        kernel_size, seed=seed, **kwargs)
    vae = VAEModel(encoder, decoder, beta=beta, seed=seed)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    return vae


# ----------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------


def history_as_floats(history):
    """A Keras `History.history` dict with plain floats (JSON-ready)."""
    return {k: [float(v) for v in vals] for k, vals in history.items()}


def write_radius_histograms(written, key, series, path, title):
    """`diagnostics.plot_radius_histograms` into `written[key]`; skipped
    with a message when matplotlib (the `[plot]` extra) is missing."""
    try:
        written[key] = diagnostics.plot_radius_histograms(series, path,
                                                          title=title)
    except ImportError as err:
        print(f"skipping the {key.replace('_', ' ')}: {err}")


def print_outputs(written, seconds, out_dir):
    """Prints the closing lines of an example: time and files written."""
    print(f"done in {seconds:.0f}s; outputs in {out_dir}/:")
    width = max((len(k) for k in written), default=0) + 2
    for what, path in written.items():
        print(f"  {what:{width}s} {path}")


def without_option(argv, option):
    """`argv` without `option` and its value (`--opt v` or `--opt=v`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            out.append(arg)
    return out
