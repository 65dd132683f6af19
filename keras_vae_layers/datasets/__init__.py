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
* `pipeline`: `ImageBatches` (a `keras.utils.PyDataset`, every backend)
  and `make_image_dataset` (`tf.data`) feed `uint8` images to
  `VAEModel.fit`, scaling to float32 per batch.
* `shards`: `write_image_shards` converts an image folder larger than
  memory into `uint8` `.npy` shards, resumably; `load_image_shards` streams
  them through `tf.data`, `open_image_shards` memory-maps them for
  `ImageBatches`.
"""

import importlib

from keras_vae_layers.datasets.image_folder import IMAGE_EXTENSIONS
from keras_vae_layers.datasets.image_folder import decode_image
from keras_vae_layers.datasets.image_folder import list_image_files
from keras_vae_layers.datasets.image_folder import load_image_folder
from keras_vae_layers.datasets.keras_datasets import DatasetUnavailableError
from keras_vae_layers.datasets.keras_datasets import load_fashion_mnist
from keras_vae_layers.datasets.keras_datasets import load_mnist
from keras_vae_layers.datasets.registry import DATASET_NAMES
from keras_vae_layers.datasets.registry import load_dataset
from keras_vae_layers.datasets.shapes import SHAPE_NAMES
from keras_vae_layers.datasets.shapes import load_shapes
from keras_vae_layers.datasets.shapes import render_shapes
from keras_vae_layers.datasets.shapes import sample_shapes_with_fixed_factor
from keras_vae_layers.datasets.shards import ShardedImages
from keras_vae_layers.datasets.shards import load_image_shards
from keras_vae_layers.datasets.shards import open_image_shards
from keras_vae_layers.datasets.shards import write_image_shards

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
    "ImageBatches",
    "write_image_shards",
    "load_image_shards",
    "open_image_shards",
    "ShardedImages",
]

# `pipeline` subclasses `keras.utils.PyDataset`, so importing it imports
# Keras and, through Keras, a backend: its names load on first access, and
# the loaders and the shard writer stay importable without either.
_LAZY_NAMES = {"ImageBatches": "pipeline", "make_image_dataset": "pipeline"}


def __getattr__(name):
    if name in _LAZY_NAMES:
        module = importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))
