"""Compare the four ways of adding the KL term to a Keras 3 VAE (+ baselines).

Builds the **same** conv VAE (one `build_conv_encoder_decoder` call; every
variant gets a fresh copy of its layers with the same initial weights) in
each of these ways (docs/design.md, "Four ways to add the KL term, and what
they cost"):

* `kl_layer`     -- `KLDivergenceLayer` inside the encoder (`add_loss` in
  `call`), functional model compiled with `ReconstructionLoss("bce")`.
* `multi_output` -- `mu` and `logvar` as extra model outputs with compiled
  per-output losses `0.5 * sum(mu^2)` and `0.5 * sum(exp(lv) - 1 - lv)`
  (weights `[1, beta, beta]`); their sum is exactly the KL term.
* `compute_loss` -- a functional `keras.Model` subclass with outputs
  `[x_hat, mu, logvar]` that overrides `compute_loss` (compiled
  reconstruction loss + `beta * KL`): the Keras 3 stand-in for the removed
  symbolic `model.add_loss()`.
* `train_step`   -- the package's `VAEModel` (custom `train_step` with
  `tf.GradientTape`) on the builder's encoder/decoder.

and two baselines:

* `ae`        -- plain autoencoder: the same conv stack with a single Dense
  latent (the `mu` head), the same decoder, `ReconstructionLoss("bce")`.
  It does strictly less work than any VAE: the speed floor.
* `reference` -- a VAE written the way the official Keras example
  (keras-io `examples/generative/vae.py`) writes it: a `Sampling` layer with
  its own `SeedGenerator`, encoder/decoder models, a `VAE(keras.Model)` with
  a custom `train_step` (`GradientTape`) and the example's reductions
  (`mean(sum(binary_crossentropy(x, x_hat), axis=(1, 2)))` and
  `mean(sum(kl, axis=1))`). Two adaptations, both documented in the README:
  the sub-models are called with `training=True` (the example has no
  BatchNormalization; without it BN layers would run in inference mode), and
  for `C > 1` channels the reconstruction is multiplied by `C`, because
  `keras.losses.binary_crossentropy` averages the channel axis
  ("matching reductions"; a no-op for the example's 1-channel digits).

Opt-in (`--variants ...,train_step_2out`): `train_step_2out`, `VAEModel` on
a two-output `[mu, logvar]` encoder (it samples `z` itself) instead of the
builder's `[z, mu, logvar]` encoder: it checks that sampling inside the
encoder costs `train_step` nothing.

Parts (all by default, pick with `--parts`):

1. `parity` -- on one fixed batch, with identical weights, each variant's
   total loss and gradients (computed the way its training computes them,
   in a `tf.function`) are compared with `train_step` (`VAEModel`):
   relative difference `<= --tolerance` (1e-5) for the loss and for every
   gradients (the largest `|g - g_ref|` over all variables divided by the
   largest `|g_ref|` entry of the model; the same ratio per variable is
   reported too, see `kl_parity._compare`). Once with deterministic sampling (`z = mu`),
   once stochastic with the same seed (every sampling layer is fresh with
   the same seed, so the draws are identical). `ae` is checked against
   `VAEModel`'s reconstruction term with `z = mu` on the shared variables.
   A PASS/FAIL line per variant; any FAIL makes the exit status 1.
2. `speed` -- every variant is compiled with `Adam(1e-3)` and warmed up,
   then timed interleaved (`A B C ... A B C ...`) for `--rounds` rounds of
   `--steps` training steps each, on a fixed in-memory batch (a repeated
   `tf.data` dataset, so no input pipeline cost). `--timing train_function`
   (default) calls the compiled `model.train_function(iterator)` directly,
   exactly what `fit()` calls per step, without `fit()`'s per-call set-up
   (iterator, callbacks); `--timing fit` times `model.fit(...,
   steps_per_epoch=steps)` instead. Reports ms/step per round, min, median
   and the ratio to `ae` (per round, of the mins and of the medians).
3. `switch` -- inference-time switching of sampling on/off (see
   `benchmarks/inference_switch.py`).
4. `params` -- encoder parameter counts with and without an intermediate
   Dense layer (see `benchmarks/encoder_params.py`).

Outputs in `--out` (default `benchmarks/results/`), written atomically:
`kl_strategies.json`, `kl_strategies.md` and, with matplotlib installed and
no `--no-plot`, `kl_strategies.png`.

Usage:

    python benchmarks/kl_strategies.py                     # full run
    python benchmarks/kl_strategies.py --quick             # a minute or two
    python benchmarks/kl_strategies.py --shapes digits,faces96 \
        --batch-size 64 --rounds 7 --steps 50 --variants ae,kl_layer,train_step
    python benchmarks/kl_strategies.py --parts parity      # parity only

Exit status: 0 when every parity check passes (or parity was not run),
1 on any parity FAIL, 2 on bad arguments. Speed targets never affect the
exit status: timings are machine- and load-dependent.

This file is the command line; the work lives next to it: `kl_variants.py`
(the models), `kl_parity.py`, `kl_speed.py` and `kl_report.py` (targets,
markdown, chart).
"""

import argparse
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only benchmarks/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import encoder_params  # noqa: E402
from benchmarks import inference_switch  # noqa: E402
from benchmarks._common import SHAPES  # noqa: E402
from benchmarks._common import add_output_flags  # noqa: E402
from benchmarks._common import apply_preset  # noqa: E402
from benchmarks._common import build_kwargs  # noqa: E402
from benchmarks._common import loadavg  # noqa: E402
from benchmarks._common import log  # noqa: E402
from benchmarks._common import require_positive  # noqa: E402
from benchmarks._common import run_meta  # noqa: E402
from benchmarks._common import split_csv  # noqa: E402
from benchmarks._common import write_report  # noqa: E402
from benchmarks.kl_parity import run_parity  # noqa: E402
from benchmarks.kl_report import evaluate_targets  # noqa: E402
from benchmarks.kl_report import markdown_report  # noqa: E402
from benchmarks.kl_report import plot_report  # noqa: E402
from benchmarks.kl_speed import run_speed  # noqa: E402
from benchmarks.kl_variants import DEFAULT_VARIANTS  # noqa: E402
from benchmarks.kl_variants import VARIANTS  # noqa: E402
from benchmarks.kl_variants import build_variants  # noqa: E402

PARTS = ("parity", "speed", "switch", "params")

DEFAULTS = dict(shapes="digits,faces", batch_size=32, rounds=11, steps=20,
                warmup_steps=5, switch_repeats=5)
QUICK = dict(shapes="digits,faces", batch_size=16, rounds=2, steps=5,
             warmup_steps=2, switch_repeats=2)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="kl_strategies.py",
        description="Parity and speed of the four ways of adding the KL "
                    "term to a Keras 3 VAE, against a plain autoencoder and "
                    "the official Keras example; plus the cost of "
                    "inference-time sampling switches and encoder "
                    "parameter counts.",
        epilog="Exit status: 1 on any parity FAIL, 2 on bad arguments. "
               "See benchmarks/README.md.",
    )
    parser.add_argument("--shapes", default=None,
                        help="comma-separated presets from "
                             f"{sorted(SHAPES)} (default "
                             f"{DEFAULTS['shapes']})")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated subset of {list(VARIANTS)}; "
                             "`ae` and `train_step` are always added "
                             f"(default: {','.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {PARTS} (default: "
                             "all)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default {DEFAULTS['batch_size']}")
    parser.add_argument("--z-dim", type=int, default=None,
                        help="latent size for every shape (default: the "
                             "preset's, digits 16, faces 128, faces96 256)")
    parser.add_argument("--intermediate-dim", type=int, default=None,
                        help="Dense layer between Flatten and the heads "
                             "(default: none)")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="KL weight (default 1; the reference has none: "
                             "it is compared with VAEModel at beta=1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"timed rounds (default {DEFAULTS['rounds']})")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps per round and variant "
                             f"(default {DEFAULTS['steps']})")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help=f"default {DEFAULTS['warmup_steps']}")
    parser.add_argument("--timing", choices=("train_function", "fit"),
                        default="train_function",
                        help="what is timed per round (default "
                             "train_function)")
    parser.add_argument("--switch-repeats", type=int, default=None,
                        help="switches timed per method (default "
                             f"{DEFAULTS['switch_repeats']})")
    encoder_params.add_table_flags(parser, prefix="params-",
                                   topic="encoder-parameter table: ")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="parity: max relative difference (default "
                             "1e-5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="weights, data and sampling (default 0)")
    add_output_flags(parser)
    parser.add_argument("--quick", action="store_true",
                        help="small settings for a quick look: "
                             + ", ".join(f"{k}={v}" for k, v in
                                         QUICK.items()))
    args = parser.parse_args(argv)
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    args.shapes = split_csv(args.shapes)
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown or not args.shapes:
        parser.error(f"--shapes: unknown {unknown}; choose from "
                     f"{sorted(SHAPES)}")
    variants = split_csv(args.variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from "
                     f"{list(VARIANTS)}")
    args.variants = [v for v in VARIANTS
                     if v in variants or v in ("ae", "train_step")]
    args.parts = split_csv(args.parts)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown or not args.parts:
        parser.error(f"--parts: unknown {unknown}; choose from {PARTS}")
    require_positive(parser, args, ("batch_size", "rounds", "steps",
                                    "switch_repeats", "warmup_steps"))
    if not (args.beta >= 0 and math.isfinite(args.beta)):
        parser.error("--beta must be a finite number >= 0")
    return args


def shape_config(spec, z_dim, kwargs, intermediate_dim):
    """The report's `shapes` entry of one preset."""
    return {
        "input_shape": list(spec["input_shape"]), "z_dim": z_dim,
        "encoder_filters": list(spec["encoder_filters"]),
        "decoder_filters": list(spec["decoder_filters"]),
        "batch_norm": spec["batch_norm"],
        "activation": kwargs["activation"],
        "intermediate_dim": intermediate_dim,
    }


def parity_part(args, shape, kwargs, variants, x):
    """Runs the parity checks of one shape and logs a PASS/FAIL line per
    variant; returns `(results, all passed)`."""
    log(f"[{shape}] parity (tolerance {args.tolerance:g})")
    par_variants = dict(variants)
    if args.beta != 1.0 and "reference" in par_variants:
        # The example has no beta: check it at beta = 1 separately.
        ref_only = build_variants(kwargs, ["train_step", "reference"], 1.0,
                                  args.seed)
        par_variants.pop("reference")
    parity = run_parity(par_variants, x, args.tolerance, args.seed)
    if args.beta != 1.0 and "reference" in variants:
        parity.update(run_parity(ref_only, x, args.tolerance, args.seed))
        parity["reference"]["note"] = "checked at beta = 1"
    all_ok = True
    for name, r in parity.items():
        det = r["deterministic"]
        sto = r.get("stochastic")
        ok = det["pass"] and (sto is None or sto["pass"])
        all_ok &= ok
        log(f"  {'PASS' if ok else 'FAIL'} {shape} {name}: "
            f"deterministic loss {det['loss_rel_diff']:.1e} grads "
            f"{det['grad_rel_diff']:.1e}"
            + (f"; stochastic loss {sto['loss_rel_diff']:.1e} grads "
               f"{sto['grad_rel_diff']:.1e}" if sto else
               "; stochastic n/a"))
    return parity, all_ok


def params_part(args):
    """The encoder-parameter table of the `--params-*` flags."""
    log("encoder parameter counts")
    return encoder_params.count_from_flags(args, prefix="params-", log=log)


def main(argv=None):
    """Runs the benchmark; returns the exit status (1 on a parity FAIL)."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    report = {"meta": run_meta(args), "shapes": {}}
    log(f"kl_strategies: shapes {args.shapes}, variants {args.variants}, "
        f"parts {args.parts}, batch {args.batch_size}, rounds "
        f"{args.rounds}, steps {args.steps}, timing {args.timing}")
    parity_ok = True
    rng = np.random.default_rng(args.seed)
    for shape in args.shapes:
        spec = SHAPES[shape]
        z_dim = args.z_dim or spec["z_dim"]
        kwargs = build_kwargs(spec, z_dim, args.intermediate_dim)
        report["shapes"][shape] = shape_config(spec, z_dim, kwargs,
                                               args.intermediate_dim)
        x = rng.uniform(size=(args.batch_size,) + spec["input_shape"])
        x = x.astype("float32")
        if "parity" in args.parts or "speed" in args.parts:
            keras.backend.clear_session()
            log(f"[{shape}] building {len(args.variants)} variants "
                f"({'x'.join(map(str, spec['input_shape']))}, z_dim "
                f"{z_dim})")
            variants = build_variants(kwargs, args.variants, args.beta,
                                      args.seed)
        if "parity" in args.parts:
            parity, ok = parity_part(args, shape, kwargs, variants, x)
            report.setdefault("parity", {})[shape] = parity
            parity_ok &= ok
        if "speed" in args.parts:
            log(f"[{shape}] speed: warm-up {args.warmup_steps} steps, then "
                f"{args.rounds} rounds x {args.steps} steps")
            report.setdefault("speed", {})[shape] = run_speed(
                variants, x, args.rounds, args.steps, args.warmup_steps,
                args.timing, shape,
            )
        if "switch" in args.parts:
            log(f"[{shape}] inference-time sampling switch")
            keras.backend.clear_session()
            report.setdefault("switch", {})[shape] = (
                inference_switch.run_switch_benchmark(
                    build_kwargs(spec, z_dim, args.intermediate_dim),
                    args.batch_size, args.switch_repeats, seed=args.seed,
                    log=log,
                )
            )
        variants = None
    if "params" in args.parts:
        report["encoder_params"] = params_part(args)
    report["meta"]["loadavg_end"] = loadavg()
    report["parity_pass"] = parity_ok if "parity" in args.parts else None
    report["targets"] = evaluate_targets(report)

    write_report(args.out, "kl_strategies", report, markdown_report(report),
                 plot_report if "speed" in report and not args.no_plot
                 else None)
    for name, t in report["targets"].items():
        log(f"  target {'met   ' if t['met'] else 'MISSED'} {name}: "
            f"{t['detail']}")
    if "parity" in args.parts:
        log("parity: " + ("all PASS" if parity_ok else "FAIL"))
    return 0 if parity_ok else 1


if __name__ == "__main__":
    sys.exit(main())
