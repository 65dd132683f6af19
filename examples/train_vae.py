"""Main demo: train a small conv VAE on the built-in shapes set.

Composes `KLDivergenceLayer` and `SamplingLayer` into a Functional encoder,
trains for a few epochs, then writes into `runs/<name>/`:

* `samples.png`        - decoded random latent points (N(0, I))
* `reconstructions.png` - originals (top row) and reconstructions (bottom)
* `vae.keras`          - the full model (reloads with safe_mode=True)
* `vae.weights.h5`     - the weights
* `metrics.json`       - the training history

Run:  python examples/train_vae.py [--epochs 5] [--name demo]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vae_layers import KLDivergenceLayer  # noqa: E402
from keras_vae_layers import SamplingLayer  # noqa: E402
from keras_vae_layers.losses import ReconstructionLoss  # noqa: E402
from keras_vae_layers._io import atomic_path  # noqa: E402
from keras_vae_layers._io import write_json_atomic  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402
from keras_vae_layers.images import save_grid  # noqa: E402


def build_vae(size, z_dim, beta, seed):
    x = keras.Input((size, size, 1), name="image")
    h = keras.layers.Conv2D(32, 3, 2, "same", activation="relu")(x)
    h = keras.layers.Conv2D(64, 3, 2, "same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    mu = keras.layers.Dense(z_dim, name="mu")(h)
    logvar = keras.layers.Dense(z_dim, name="logvar")(h)
    mu, logvar = KLDivergenceLayer(beta=beta, name="kl")([mu, logvar])
    z = SamplingLayer(seed=seed, name="sampling")([mu, logvar])
    encoder = keras.Model(x, [z, mu, logvar], name="encoder")

    z_in = keras.Input((z_dim,), name="z")
    s = size // 4
    h = keras.layers.Dense(s * s * 64, activation="relu")(z_in)
    h = keras.layers.Reshape((s, s, 64))(h)
    h = keras.layers.Conv2DTranspose(32, 3, 2, "same", activation="relu")(h)
    out = keras.layers.Conv2DTranspose(1, 3, 2, "same", activation="sigmoid")(h)
    decoder = keras.Model(z_in, out, name="decoder")

    vae = keras.Model(x, decoder(encoder(x)[0]), name="vae")
    # Per-sample BCE summed over pixels: the package's loss convention.
    vae.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=ReconstructionLoss("bce"))
    return vae, encoder, decoder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="demo", help="run name (runs/<name>)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--n", type=int, default=6000, help="training images")
    parser.add_argument("--size", type=int, default=32, help="image size")
    parser.add_argument("--z-dim", type=int, default=8)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.size % 4:
        parser.error(f"--size must be a multiple of 4, got {args.size}")
    if args.epochs < 1 or args.n < 2:
        parser.error("--epochs must be >= 1 and --n >= 2")

    out_dir = os.path.join(args.runs_dir, args.name)
    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    t0 = time.time()
    images, _ = load_shapes(args.n, size=args.size, seed=args.seed)
    x = images.astype("float32") / 255.0
    n_val = max(1, len(x) // 10)
    x_train, x_val = x[n_val:], x[:n_val]
    print(f"data: {len(x_train)} train / {n_val} val shapes "
          f"{x.shape[1:]} in {time.time() - t0:.1f}s")

    vae, encoder, decoder = build_vae(args.size, args.z_dim, args.beta,
                                      args.seed)
    hist = vae.fit(x_train, x_train, validation_data=(x_val, x_val),
                   epochs=args.epochs, batch_size=args.batch_size, verbose=2)

    rng = np.random.default_rng(args.seed)
    z = rng.standard_normal((32, args.z_dim)).astype("float32")
    written = {
        "samples": save_grid(decoder.predict(z, verbose=0),
                             os.path.join(out_dir, "samples.png"), 4, 8),
    }
    encoder.get_layer("sampling").set_deterministic(True)
    recon = vae.predict(x_val[:8], verbose=0)
    written["reconstructions"] = save_grid(
        np.concatenate([x_val[:8], recon]),
        os.path.join(out_dir, "reconstructions.png"), 2, 8,
    )
    model_path = os.path.join(out_dir, "vae.keras")
    with atomic_path(model_path) as tmp:
        vae.save(tmp)
    written["model"] = model_path
    weights_path = os.path.join(out_dir, "vae.weights.h5")
    with atomic_path(weights_path) as tmp:
        vae.save_weights(tmp)
    written["weights"] = weights_path
    metrics = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    written["metrics"] = os.path.join(out_dir, "metrics.json")
    write_json_atomic(written["metrics"], {"args": vars(args),
                                           "history": metrics})

    print(f"done in {time.time() - t0:.1f}s; "
          f"final loss {metrics['loss'][-1]:.2f}, kl_loss "
          f"{metrics['kl_loss'][-1]:.2f}")
    for what, path in written.items():
        print(f"  {what:16s} {path}")
    return written


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
