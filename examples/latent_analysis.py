"""A VAE with a tiny beta is an autoencoder: a latent-space comparison.

Trains three models with the same conv stack on the same built-in shapes
(no download), from the same initial weights, and compares their latent
spaces on held-out images:

* `ae` - a plain autoencoder: the encoder of `build_conv_encoder_decoder`
  cut at its `mu` Dense layer (one Dense latent code, no `logvar`, no
  sampling) feeding the builder's decoder, trained on the reconstruction
  term alone (`ReconstructionLoss`: BCE summed over pixels, the VAEs'
  reconstruction term);
* `vae_tiny_beta` - a `VAEModel` with `--tiny-beta` (default 1e-5);
* `vae` - a `VAEModel` with `--beta` (default 1).

Expected: the tiny-beta VAE behaves like the AE. The KL term is too weak to
hold the posterior variance near 1, so `logvar` drops far below 0 and
`z ~ mu`; the codes are free to sit anywhere, so latent points drawn from
N(0, I) decode to poor images. The normal VAE keeps `logvar` near 0 in the
unused dimensions, `z` spread around `mu`, its z radius near sqrt(z_dim),
and decodes random points to shape-like images.

Writes into `runs/<name>/`:

* `radius_histograms.png` - overlaid histograms of the L2 radius of each
  model's code (AE) or `z` (VAEs) over the held-out images, with the radius
  of the N(0, I) points decoded below for reference (needs matplotlib, the
  `[plot]` extra; skipped with a message without it);
* `samples_<model>.png` - the *same* N(0, I) latent points decoded by each
  model;
* `reconstructions.png` - held-out images (top row) over their
  reconstructions by `ae`, `vae_tiny_beta` and `vae` (deterministic,
  `z = mu`);
* `comparison.json` - the arguments and, per model: mean radius of `z` and
  `mu`, `logvar` min/mean/max, mean |z - mu| (absolute and relative to the
  spread of `mu`), active units, KL, reconstruction error and the
  sample-quality proxy below. For the AE, `z` is its code and `mu == z`, so
  |z - mu| is 0; it has no `logvar` or KL (`null`).

Sample-quality proxy (`sample_nn_ratio`): for each decoded random sample,
the RMS pixel distance to its nearest training image, averaged, divided by
the same average for real held-out images. About 1 means the samples lie as
close to the data as real unseen images do; larger is worse (smudges,
overlaid shapes, fragments). It is a cheap, model-free check of "do random
samples look like the data", not a perceptual metric.

Run:  python examples/latent_analysis.py [--epochs 6] [--name latent]
"""

import logging
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Three models' predict functions are traced in turn; TF's "retracing"
# warnings about that are noise here.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only examples/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from examples._common import build_conv_stack  # noqa: E402
from examples._common import build_vae  # noqa: E402
from examples._common import holdout_split  # noqa: E402
from examples._common import parse_ints  # noqa: E402
from examples._common import print_outputs  # noqa: E402
from examples._common import require_at_least  # noqa: E402
from examples._common import run_dir  # noqa: E402
from examples._common import run_parser  # noqa: E402
from examples._common import write_radius_histograms  # noqa: E402
from keras_vae_layers import ReconstructionLoss  # noqa: E402
from keras_vae_layers import diagnostics  # noqa: E402
from keras_vae_layers import losses  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402
from keras_vae_layers.images import save_grid  # noqa: E402
from keras_vae_layers.latents import latent_points  # noqa: E402

MODELS = ("ae", "vae_tiny_beta", "vae")
N_SHOWN = 8  # reconstructions shown per model

# Verdict thresholds (see `verdict`).
Z_EQUALS_MU = 0.05    # mean |z - mu| below 5 % of the spread of mu
LOGVAR_GAP = 2.0      # tiny-beta mean logvar at least this far below vae's


def parse_args(argv):
    parser = run_parser(__doc__, "latent")
    parser.add_argument("--n", type=int, default=6000, help="number of images")
    parser.add_argument("--size", type=int, default=32,
                        help="image size (a multiple of 2**len(filters))")
    parser.add_argument("--filters", type=parse_ints, default=(32, 64, 64),
                        help="encoder filters, comma-separated (stride 2 each)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--z-dim", type=int, default=8)
    parser.add_argument("--tiny-beta", type=float, default=1e-5)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-samples", type=int, default=32,
                        help="random latent points decoded per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stride_product = 2 ** len(args.filters)
    if args.size < 8 or args.size % stride_product:
        parser.error(f"--size must be a multiple of {stride_product} (stride 2 "
                     f"per conv layer, {len(args.filters)} layers) and >= 8, "
                     f"got {args.size}")
    require_at_least(parser, args, 1, "epochs", "z_dim", "batch_size",
                     "n_samples")
    require_at_least(parser, args, 20, "n")
    for flag in ("tiny_beta", "beta"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            parser.error(f"--{flag.replace('_', '-')} must be a finite number "
                         f">= 0, got {value}")
    return args


# ----------------------------------------------------------------------------
# The three models (same builder call, so the same stack and initial weights)
# ----------------------------------------------------------------------------


def stack_args(args):
    """The `build_conv_stack` arguments all three models share."""
    return ((args.size, args.size, 1), args.z_dim, args.filters, 4)


def build_ae(args):
    """Plain AE: the builder's encoder cut at `mu`, and its decoder.

    Returns `(autoencoder, code_model, decoder)`.
    """
    keras.utils.set_random_seed(args.seed)  # identical initial weights
    encoder, decoder = build_conv_stack(*stack_args(args), seed=args.seed)
    code = keras.Model(encoder.input, encoder.get_layer("mu").output,
                       name="ae_encoder")
    x = keras.Input((args.size, args.size, 1), name="ae_input")
    ae = keras.Model(x, decoder(code(x)), name="ae")
    ae.compile(optimizer=keras.optimizers.Adam(1e-3),
               loss=ReconstructionLoss("bce"))
    return ae, code, decoder


def train(args, x_train, x_val):
    """Trains the three models; returns `{name: (encode, decode, recon)}`.

    `encode(x)` returns numpy `(z, mu, logvar)` (`logvar` is `None` for the
    AE), `decode(z)` and `recon(x)` numpy images.
    """
    fit_kwargs = dict(epochs=args.epochs, batch_size=args.batch_size,
                      verbose=2)
    models = {}
    ae, code, ae_decoder = build_ae(args)
    print(f"--- ae ({ae.count_params():,} parameters)")
    keras.utils.set_random_seed(args.seed)  # same batch order for all
    ae.fit(x_train, x_train, validation_data=(x_val, x_val), **fit_kwargs)

    def ae_encode(x):
        c = code.predict(x, batch_size=256, verbose=0)
        return c, c, None

    models["ae"] = (
        ae_encode,
        lambda z: ae_decoder.predict(z, batch_size=256, verbose=0),
        lambda x: ae.predict(x, batch_size=256, verbose=0),
    )
    for name, beta in (("vae_tiny_beta", args.tiny_beta), ("vae", args.beta)):
        keras.utils.set_random_seed(args.seed)  # identical initial weights
        vae = build_vae(*stack_args(args), beta=beta, seed=args.seed)
        print(f"--- {name} (beta={beta:g})")
        keras.utils.set_random_seed(args.seed)
        vae.fit(x_train, validation_data=(x_val,), **fit_kwargs)
        models[name] = (
            lambda x, vae=vae: vae.encode(x, batch_size=256),
            lambda z, vae=vae: vae.decode(z, batch_size=256),
            lambda x, vae=vae: vae.reconstruct(x, batch_size=256),
        )
    return models


# ----------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------


def nearest_distances(images, reference, chunk=512):
    """RMS pixel distance of each image to its nearest `reference` image."""
    a = images.reshape(len(images), -1).astype("float64")
    b = reference.reshape(len(reference), -1).astype("float64")
    b_sq = np.sum(b * b, axis=1)
    best = np.full(len(a), np.inf)
    for start in range(0, len(b), chunk):
        part = b[start:start + chunk]
        d2 = (np.sum(a * a, axis=1)[:, None] + b_sq[None, start:start + chunk]
              - 2.0 * a @ part.T)
        best = np.minimum(best, d2.min(axis=1))
    return np.sqrt(np.maximum(best, 0.0) / a.shape[1])


def model_statistics(encode, recon, samples, x_val, x_train, real_nn):
    """The per-model numbers of `comparison.json` (see the module doc)."""
    z, mu, logvar = encode(x_val)
    has_var = logvar is not None
    stats = diagnostics.compute_latent_statistics(
        z, mu, logvar if has_var else np.zeros_like(mu))
    abs_dev = float(np.mean(np.abs(z - mu)))
    spread = float(np.mean(np.abs(mu - mu.mean(axis=0))))
    reco = losses.reconstruction_loss(x_val, recon(x_val), "bce", "sum")
    sample_nn = float(np.mean(nearest_distances(samples, x_train)))
    return {
        "z_radius_mean": stats["z_radius_mean"],
        "mu_radius_mean": stats["mu_radius_mean"],
        "logvar_min": stats["logvar_min"] if has_var else None,
        "logvar_mean": stats["logvar_mean"] if has_var else None,
        "logvar_max": stats["logvar_max"] if has_var else None,
        "posterior_std_mean": (float(np.mean(np.exp(0.5 * logvar)))
                               if has_var else None),
        "mean_abs_z_minus_mu": abs_dev,
        "mu_spread": spread,
        "rel_abs_z_minus_mu": abs_dev / spread if spread > 0 else None,
        "active_units": stats["active_units"],
        "kl": stats["kl_total"] if has_var else None,
        "reconstruction_bce": float(np.mean(keras.ops.convert_to_numpy(reco))),
        "sample_nn_distance": sample_nn,
        "sample_nn_ratio": sample_nn / real_nn,
    }, stats


def verdict(results):
    """Checks the expected behaviour; returns `(lines, ok)`."""
    tiny, vae, ae = results["vae_tiny_beta"], results["vae"], results["ae"]
    checks = []
    z_mu = tiny["rel_abs_z_minus_mu"] is not None and (
        tiny["rel_abs_z_minus_mu"] < Z_EQUALS_MU)
    checks.append((
        f"tiny-beta VAE: mean logvar {tiny['logvar_mean']:.2f} (mean std "
        f"{tiny['posterior_std_mean']:.3f}), z~mu: "
        f"{'yes' if z_mu else 'no'} (mean |z-mu| = "
        f"{100 * (tiny['rel_abs_z_minus_mu'] or 0):.1f}% of the spread of mu)",
        z_mu))
    gap = vae["logvar_mean"] - tiny["logvar_mean"]
    checks.append((
        f"logvar: tiny-beta {tiny['logvar_mean']:.2f} vs normal "
        f"{vae['logvar_mean']:.2f} (gap {gap:.2f}, expected > {LOGVAR_GAP:g})",
        gap > LOGVAR_GAP))
    not_z_mu = (vae["rel_abs_z_minus_mu"] or 0) >= Z_EQUALS_MU
    checks.append((
        f"normal VAE: z~mu: {'no' if not_z_mu else 'yes'} (mean |z-mu| = "
        f"{100 * (vae['rel_abs_z_minus_mu'] or 0):.1f}% of the spread of mu)",
        not_z_mu))
    worse = min(ae["sample_nn_ratio"], tiny["sample_nn_ratio"])
    checks.append((
        f"random samples: nearest-image ratio ae {ae['sample_nn_ratio']:.2f}, "
        f"tiny-beta {tiny['sample_nn_ratio']:.2f}, normal "
        f"{vae['sample_nn_ratio']:.2f} (expected: normal lowest)",
        vae["sample_nn_ratio"] < worse))
    lines = [f"  [{'ok' if ok else '!!'}] {text}" for text, ok in checks]
    return lines, all(ok for _, ok in checks)


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def comparison_table(results, z_dim):
    rows = [
        ("mean radius z", "z_radius_mean", ".2f"),
        ("mean radius mu", "mu_radius_mean", ".2f"),
        ("logvar min", "logvar_min", ".2f"),
        ("logvar mean", "logvar_mean", ".2f"),
        ("logvar max", "logvar_max", ".2f"),
        ("mean posterior std", "posterior_std_mean", ".3f"),
        ("mean |z - mu|", "mean_abs_z_minus_mu", ".4f"),
        ("  / spread of mu", "rel_abs_z_minus_mu", ".4f"),
        ("active units", "active_units", "d"),
        ("KL (nats)", "kl", ".2f"),
        ("reconstruction BCE", "reconstruction_bce", ".2f"),
        ("sample nearest-image dist", "sample_nn_distance", ".4f"),
        ("  / real images' dist", "sample_nn_ratio", ".2f"),
    ]
    width = 26
    lines = [f"{'':{width}s}" + "".join(f"{m:>15s}" for m in MODELS)]
    for label, key, spec in rows:
        lines.append(f"{label:{width}s}" + "".join(
            f"{fmt(results[m][key], spec):>15s}" for m in MODELS))
    lines.append(f"(sqrt(z_dim) = {math.sqrt(z_dim):.2f}, the radius of "
                 "N(0, I) points)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    out_dir = run_dir(args)
    t0 = time.time()

    images, _ = load_shapes(args.n, size=args.size, seed=args.seed)
    x_train, x_val = holdout_split(images)
    print(f"data: {len(x_train)} train / {len(x_val)} held-out shapes of "
          f"{x_train.shape[1:]}")

    models = train(args, x_train, x_val)

    # The same random latent points for every model.
    z_prior = latent_points(args.n_samples, args.z_dim, seed=args.seed)
    real_nn = float(np.mean(nearest_distances(x_val[:args.n_samples],
                                              x_train)))
    written, results, stats = {}, {}, {}
    shown = [x_val[:N_SHOWN]]
    rows = max(1, args.n_samples // 8)
    for name, (encode, decode, recon) in models.items():
        samples = decode(z_prior)
        results[name], stats[name] = model_statistics(
            encode, recon, samples, x_val, x_train, real_nn)
        written[f"samples_{name}"] = save_grid(
            samples, os.path.join(out_dir, f"samples_{name}.png"), rows=rows)
        shown.append(recon(x_val[:N_SHOWN]))
    written["reconstructions"] = save_grid(
        np.concatenate(shown), os.path.join(out_dir, "reconstructions.png"),
        rows=len(shown), cols=len(shown[0]))
    # Reference: as many N(0, I) points as held-out images (the decoded
    # points are the first `n_samples` of them).
    z_ref = latent_points(len(x_val), args.z_dim, seed=args.seed)
    series = {"N(0, I) points": np.linalg.norm(z_ref, axis=1)}
    series.update({f"{m} {'code' if m == 'ae' else 'z'}": stats[m]["z_radius"]
                   for m in MODELS})
    write_radius_histograms(
        written, "radius_histograms", series,
        os.path.join(out_dir, "radius_histograms.png"),
        title=f"latent radius on held-out images, z_dim={args.z_dim}")

    table = comparison_table(results, args.z_dim)
    lines, ok = verdict(results)
    written["comparison"] = os.path.join(out_dir, "comparison.json")
    write_json_atomic(written["comparison"], {
        "args": vars(args),
        "betas": {"ae": None, "vae_tiny_beta": args.tiny_beta,
                  "vae": args.beta},
        "real_nn_distance": real_nn,
        "models": results,
        "expected_behaviour": ok,
        "verdict": [line.strip() for line in lines],
    })

    print()
    print(table)
    print("verdict:")
    print("\n".join(lines))
    print("expected behaviour (tiny-beta VAE ~ AE, normal VAE not): "
          f"{'yes' if ok else 'NO'}")
    print_outputs(written, time.time() - t0, out_dir)
    return written


if __name__ == "__main__":
    main()
