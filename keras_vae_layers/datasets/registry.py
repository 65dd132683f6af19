"""Training sets by name, for scripts with a `--dataset` option.

`load_dataset(name, ...)` looks the name up in `_LOADERS`; adding a dataset
is one entry there: a function `(n, size, seed, dtype) -> (images, labels)`.
"""

import numpy as np

from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.datasets.keras_datasets import load_fashion_mnist
from keras_vae_layers.datasets.keras_datasets import load_mnist
from keras_vae_layers.datasets.shapes import load_shapes

__all__ = ["DATASET_NAMES", "load_dataset"]

_OWNER = "load_dataset"


def _shapes(n, size, seed, dtype):
    return load_shapes(10_000 if n is None else n,
                       size=64 if size is None else size, seed=seed,
                       dtype=dtype)


def _keras_digits(loader, label):
    """A loader for a 28x28 Keras set, native or zero-padded to 32."""

    def load(n, size, seed, dtype):
        del seed  # the Keras sets come in a fixed order
        if size not in (None, 28, 32):
            raise ValueError(
                f"{_OWNER}: {label} images are 28x28; `size` must be 28 or "
                f"32 (zero-padded), received {size!r}."
            )
        (x, y), _ = loader(dtype=dtype)
        if n is not None:
            x, y = x[:n], y[:n]
        if size == 32:
            # Two pixels on each side: stride-2 conv stacks divide evenly.
            x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
        return x, y

    return load


_LOADERS = {
    "shapes": _shapes,
    "mnist": _keras_digits(load_mnist, "mnist"),
    "fashion_mnist": _keras_digits(load_fashion_mnist, "fashion_mnist"),
}

DATASET_NAMES = tuple(_LOADERS)
"""Names `load_dataset` accepts."""


def load_dataset(name, n=None, size=None, seed=0, dtype="uint8"):
    """Loads a training set by name, for scripts with a `--dataset` option.

    Args:
        name: `"shapes"` (built-in, procedural, offline), `"mnist"` or
            `"fashion_mnist"` (Keras' loaders; need network access once).
        n: Number of images (`None`: 10,000 shapes, or the whole training
            split).
        size: Image size. Shapes: any size >= 8 (default 64). MNIST and
            Fashion-MNIST: 28 (native) or 32 (zero-padded by 2 pixels on
            each side, so stride-2 conv stacks divide evenly).
        seed: Seed for the shapes set.
        dtype: `"uint8"` or `"float32"` (scaled to [0, 1]).

    Returns:
        `(images, labels)`: images `(n, size, size, 1)`; labels are the class
        ids for MNIST-style sets and the factor dict for shapes.

    Example:

    >>> images, factors = load_dataset("shapes", n=1000, size=32)
    """
    loader = _LOADERS.get(name) if isinstance(name, str) else None
    if loader is None:
        raise ValueError(
            f"{_OWNER}: unknown dataset name {name!r}; expected one of "
            f"{', '.join(repr(d) for d in DATASET_NAMES)} (or load your own "
            "images with load_image_folder)."
        )
    if n is not None:
        n = check_positive_int(n, "n", _OWNER)
    return loader(n, size, seed, dtype)
