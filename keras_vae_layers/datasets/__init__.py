"""Datasets for VAE experiments: built-in sprites, MNIST and image folders.

One module per job:

* `shapes`: `load_shapes` draws a dSprites-style set (one white shape on
  black per image, with known generative factors) procedurally: no download,
  so it works offline and in tests. `render_shapes` draws chosen factors,
  `sample_shapes_with_fixed_factor` batches with one factor held fixed.
* `keras_datasets`: `load_mnist` / `load_fashion_mnist` wrap the Keras
  loaders (they download on first use) and fail with a clear message
  pointing at `load_shapes` when there is no network.
* `registry`: `load_dataset(name, ...)` for scripts with a `--dataset`
  option.
* `image_folder`: `load_image_folder` turns a folder of images (e.g. CelebA)
  into one `uint8` array, with centre cropping, resizing and an atomic
  on-disk cache. Its two halves, `list_image_files` and `decode_image`, hold
  the listing and decoding rules and work on their own.
* `pipeline`: `make_image_dataset` feeds a `uint8` array to `VAEModel.fit`
  through `tf.data`, scaling to float32 per batch.
"""

from keras_vae_layers.datasets.image_folder import IMAGE_EXTENSIONS
from keras_vae_layers.datasets.image_folder import decode_image
from keras_vae_layers.datasets.image_folder import list_image_files
from keras_vae_layers.datasets.image_folder import load_image_folder
from keras_vae_layers.datasets.keras_datasets import DatasetUnavailableError
from keras_vae_layers.datasets.keras_datasets import load_fashion_mnist
from keras_vae_layers.datasets.keras_datasets import load_mnist
from keras_vae_layers.datasets.pipeline import make_image_dataset
from keras_vae_layers.datasets.registry import DATASET_NAMES
from keras_vae_layers.datasets.registry import load_dataset
from keras_vae_layers.datasets.shapes import SHAPE_NAMES
from keras_vae_layers.datasets.shapes import load_shapes
from keras_vae_layers.datasets.shapes import render_shapes
from keras_vae_layers.datasets.shapes import sample_shapes_with_fixed_factor

__all__ = [
    "SHAPE_NAMES",
    "DatasetUnavailableError",
    "load_shapes",
    "render_shapes",
    "sample_shapes_with_fixed_factor",
    "load_mnist",
    "load_fashion_mnist",
    "load_dataset",
    "DATASET_NAMES",
    "IMAGE_EXTENSIONS",
    "load_image_folder",
    "list_image_files",
    "decode_image",
    "make_image_dataset",
]
