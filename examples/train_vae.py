"""Main demo: train a conv VAE on the built-in shapes set.

Builds an encoder/decoder with `build_conv_encoder_decoder`, trains a
`VAEModel` on procedurally generated sprites (no download; `--dataset
mnist` or `fashion_mnist` with `--size 32` for those, online) with the
package's callbacks, and writes into `runs/<name>/`:

* `samples/samples_epochNNNN.png`  - the same 32 latent points decoded after
  every epoch (sharpened), so epochs are comparable;
* `samples/reconstructions_epochNNNN.png` - validation images (top) over
  their deterministic reconstructions (bottom);
* `reconstructions.png`, `samples_final.png` - the final model's grids;
* `radius_histogram.png` - latent radius histograms of z and mu;
* `checkpoints/`  - atomic weight checkpoints (full model, encoder, decoder)
  with JSON manifests; rerunning the same command resumes from the latest;
* `vae.keras`     - the final model (reloads with `safe_mode=True`);
* `metrics.json`  - per-epoch history and final latent statistics.

Run:  python examples/train_vae.py [--epochs 10] [--name demo]
"""

import json
import os
import shutil
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only examples/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from examples._common import build_vae  # noqa: E402
from examples._common import history_as_floats  # noqa: E402
from examples._common import holdout_split  # noqa: E402
from examples._common import print_outputs  # noqa: E402
from examples._common import require_at_least  # noqa: E402
from examples._common import run_dir  # noqa: E402
from examples._common import run_parser  # noqa: E402
from examples._common import write_radius_histograms  # noqa: E402
from keras_vae_layers import diagnostics  # noqa: E402
from keras_vae_layers.io import atomic_path  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.callbacks import KLAnnealing  # noqa: E402
from keras_vae_layers.callbacks import LatentStatisticsLogger  # noqa: E402
from keras_vae_layers.callbacks import SampleGridLogger  # noqa: E402
from keras_vae_layers.callbacks import VAECheckpoint  # noqa: E402
from keras_vae_layers.callbacks import restore_latest  # noqa: E402
from keras_vae_layers.datasets import load_dataset  # noqa: E402
from keras_vae_layers.images import save_grid  # noqa: E402


def merged_history(metrics_path, initial_epoch, history):
    """This run's history, preceded by the epochs a resumed run already
    recorded in `metrics.json` (so a resume does not lose them)."""
    previous = {}
    if initial_epoch and os.path.isfile(metrics_path):
        with open(metrics_path, encoding="utf-8") as f:
            previous = json.load(f).get("history", {})
    return {k: list(previous.get(k, []))[:initial_epoch] + vals
            for k, vals in history_as_floats(history).items()}


def parse_args(argv):
    parser = run_parser(__doc__, "demo")
    parser.add_argument("--dataset", default="shapes",
                        help="shapes (built-in, default), mnist or "
                             "fashion_mnist (need network access once; "
                             "use --size 32)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n", type=int, default=8000, help="number of images")
    parser.add_argument("--size", type=int, default=32,
                        help="image size (multiple of 8)")
    parser.add_argument("--z-dim", type=int, default=8)
    parser.add_argument("--intermediate-dim", type=int, default=128,
                        help="Dense units before mu/logvar (0 = none)")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="final KL weight (reached after the warm-up)")
    parser.add_argument("--warmup-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sharpen", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true",
                        help="delete this run's checkpoints and start over "
                             "instead of resuming")
    args = parser.parse_args(argv)
    if args.size % 8 or args.size < 8:
        parser.error(f"--size must be a positive multiple of 8, got {args.size}")
    require_at_least(parser, args, 1, "epochs", "warmup_epochs")
    require_at_least(parser, args, 20, "n")
    return args


def main(argv=None):
    args = parse_args(argv)
    out_dir = run_dir(args)
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    keras.utils.set_random_seed(args.seed)
    t0 = time.time()

    try:
        images, _ = load_dataset(args.dataset, n=args.n, size=args.size,
                                 seed=args.seed)
    except ValueError as err:
        sys.exit(f"error: {err}")
    x_train, x_val = holdout_split(images)
    print(f"data ({args.dataset}): {len(x_train)} train / {len(x_val)} "
          f"validation images of "
          f"{x_train.shape[1:]} ({time.time() - t0:.1f}s)")

    # A small dSprites-style VAE: three stride-2 convs, optional Dense.
    vae = build_vae((args.size, args.size, 1), args.z_dim, (32, 64, 64), 4,
                    beta=args.beta, seed=args.seed,
                    intermediate_dim=args.intermediate_dim or None)
    if args.fresh and os.path.isdir(ckpt_dir):
        shutil.rmtree(ckpt_dir)  # a new run must not inherit the old "best"
    initial_epoch = restore_latest(vae, ckpt_dir)
    if initial_epoch >= args.epochs:
        # Nothing to train: leave the finished run's outputs as they are.
        print(f"the checkpoints in {ckpt_dir} already reach epoch "
              f"{initial_epoch} >= --epochs {args.epochs}; nothing to do. "
              "Pass a larger --epochs to continue or --fresh to start over.")
        return {}
    if initial_epoch:
        print(f"resuming from the checkpoint of epoch {initial_epoch}")
    print(f"encoder {vae.encoder.count_params():,} parameters, decoder "
          f"{vae.decoder.count_params():,}")

    callbacks = [
        KLAnnealing("linear", beta_max=args.beta,
                    warmup_epochs=args.warmup_epochs),
        SampleGridLogger(os.path.join(out_dir, "samples"), rows=4, cols=8,
                         seed=args.seed, sharpen=args.sharpen,
                         reconstruction_images=x_val[:8]),
        LatentStatisticsLogger(x_val),
        # neg_elbo does not depend on beta, so "best" stays meaningful while
        # the KL weight is annealed.
        VAECheckpoint(ckpt_dir, monitor="val_neg_elbo", keep_last=2),
    ]
    hist = vae.fit(x_train, validation_data=(x_val,), epochs=args.epochs,
                   initial_epoch=initial_epoch,
                   batch_size=args.batch_size, callbacks=callbacks, verbose=2)

    written = {"samples per epoch": os.path.join(out_dir, "samples"),
               "checkpoints": ckpt_dir}
    written["reconstructions"] = save_grid(
        np.concatenate([x_val[:8], vae.reconstruct(x_val[:8])]),
        os.path.join(out_dir, "reconstructions.png"), 2, 8)
    written["samples_final"] = save_grid(
        vae.sample(32, seed=args.seed), os.path.join(out_dir,
                                                     "samples_final.png"),
        4, 8, sharpen=args.sharpen)
    stats = diagnostics.latent_statistics(vae, x_val)
    write_radius_histograms(
        written, "radius_histogram",
        {"z": stats["z_radius"], "mu": stats["mu_radius"]},
        os.path.join(out_dir, "radius_histogram.png"),
        title=f"latent radius, z_dim={args.z_dim} "
              f"(sqrt(z_dim) = {np.sqrt(args.z_dim):.2f})")
    model_path = os.path.join(out_dir, "vae.keras")
    with atomic_path(model_path) as tmp:
        vae.save(tmp)
    written["model"] = model_path
    written["metrics"] = os.path.join(out_dir, "metrics.json")
    write_json_atomic(written["metrics"], {
        "args": vars(args),
        "initial_epoch": initial_epoch,
        "history": merged_history(written["metrics"], initial_epoch,
                                  hist.history),
        "latent_statistics": diagnostics.summary(stats),
    })

    last = {k: v[-1] for k, v in hist.history.items()}
    if last:
        print(f"final: val_neg_elbo {last['val_neg_elbo']:.1f}, val_reco_loss "
              f"{last['val_reco_loss']:.1f}, val_kl_loss "
              f"{last['val_kl_loss']:.2f}, active units "
              f"{int(last.get('latent_active_units', 0))}/{args.z_dim}")
    print_outputs(written, time.time() - t0, out_dir)
    return written


if __name__ == "__main__":
    main()
