"""Train a faces-style VAE on a folder of images (the CelebA workflow).

Loads JPEG/PNG files from a folder (centre-crop, resize, kept as uint8 and
optionally cached to a file), trains a conv VAE with the faces configuration
(96x96x3, filters 32..256, batch norm, z_dim 256, optional intermediate
Dense) streaming float batches from a `tf.data` pipeline, then writes into
`runs/<name>/`:

* `samples.png` / `samples_sharpened.png` - random samples from N(0, I),
  without and with unsharp-mask sharpening (decoded images are blurry);
* `uniform_limit_<L>.png` - a sweep of grids decoded from latent points
  drawn uniformly in [-L, L]^z_dim for L = 0.5 ... 8, showing how far from
  the origin the decoder still produces sensible images;
* `reconstructions.png`, `decoder.weights.h5`, `metrics.json`.

Run:  python examples/image_folder_vae.py PATH/TO/FOLDER [--epochs 5]
"""

import os
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
from examples._common import parse_ints  # noqa: E402
from examples._common import print_outputs  # noqa: E402
from examples._common import run_dir  # noqa: E402
from examples._common import run_parser  # noqa: E402
from keras_vae_layers.io import atomic_path  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.datasets import load_image_folder  # noqa: E402
from keras_vae_layers.datasets import make_image_dataset  # noqa: E402
from keras_vae_layers.images import save_grid  # noqa: E402

LIMITS = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)


def main(argv=None):
    parser = run_parser(__doc__, "faces")
    parser.add_argument("folder", help="folder of JPEG/PNG images")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--filters", type=parse_ints, default=(32, 64, 128, 256),
                        help="encoder filters, comma-separated")
    parser.add_argument("--z-dim", type=int, default=256)
    parser.add_argument("--intermediate-dim", type=int, default=256,
                        help="Dense units between Flatten and mu/logvar; 0 = none")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-images", type=int, default=None,
                        help="decode only the first N files (sorted by name)")
    parser.add_argument("--cache", default=None, help="cache file for the images")
    parser.add_argument("--sharpen", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.folder):
        parser.error(f"folder {args.folder!r} does not exist or is not a directory")
    stride_product = 2 ** len(args.filters)
    if args.size % stride_product:
        parser.error(f"--size {args.size} must be a multiple of {stride_product} "
                     f"(stride 2 per conv layer, {len(args.filters)} layers)")

    out_dir = run_dir(args)
    keras.utils.set_random_seed(args.seed)

    t0 = time.time()
    images = load_image_folder(args.folder, size=(args.size, args.size),
                               cache=args.cache, max_images=args.max_images)
    n_val = max(1, min(len(images) // 10, 512))
    train, val = images[n_val:], images[:n_val]
    if len(train) == 0:
        parser.error(f"need at least 2 images, found {len(images)}")
    print(f"images: {len(train)} train / {len(val)} val, shape "
          f"{images.shape[1:]}, loaded in {time.time() - t0:.1f}s")

    vae = build_vae(images.shape[1:], args.z_dim, args.filters, 3,
                    beta=args.beta, batch_norm=True,
                    intermediate_dim=args.intermediate_dim or None)
    print(f"encoder {vae.encoder.count_params():,} params, decoder "
          f"{vae.decoder.count_params():,} params")
    ds = make_image_dataset(train, batch_size=args.batch_size, seed=args.seed)
    val_ds = make_image_dataset(val, batch_size=args.batch_size, shuffle=False)
    # The dataset shuffles itself; shuffle=False silences Keras' warning.
    hist = vae.fit(ds, validation_data=val_ds, epochs=args.epochs, verbose=2,
                   shuffle=False)

    written = {}
    samples = vae.sample(32, seed=args.seed)
    written["samples"] = save_grid(samples, os.path.join(out_dir, "samples.png"), 4, 8)
    written["samples_sharpened"] = save_grid(
        samples, os.path.join(out_dir, "samples_sharpened.png"), 4, 8,
        sharpen=args.sharpen)
    for limit in LIMITS:
        grid = vae.sample(16, seed=args.seed, distribution="uniform", limit=limit)
        written[f"uniform_limit_{limit:g}"] = save_grid(
            grid, os.path.join(out_dir, f"uniform_limit_{limit:g}.png"), 2, 8)
    originals = val[:8].astype("float32") / 255.0
    written["reconstructions"] = save_grid(
        np.concatenate([originals, vae.reconstruct(originals)]),
        os.path.join(out_dir, "reconstructions.png"), 2, len(originals))
    decoder_path = os.path.join(out_dir, "decoder.weights.h5")
    with atomic_path(decoder_path) as tmp:
        vae.decoder.save_weights(tmp)
    written["decoder_weights"] = decoder_path
    written["metrics"] = os.path.join(out_dir, "metrics.json")
    write_json_atomic(written["metrics"], {
        "args": {k: v for k, v in vars(args).items()},
        "history": history_as_floats(hist.history),
    })
    print_outputs(written, time.time() - t0, out_dir)
    return written


if __name__ == "__main__":
    main()
