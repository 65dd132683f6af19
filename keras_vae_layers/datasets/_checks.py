"""Argument checks shared by the dataset loaders (private)."""

import numpy as np

from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._validation import check_range

DTYPES = ("uint8", "float32")
"""Image dtypes the loaders return: 0..255 or scaled to [0, 1]."""


def check_dtype(dtype, owner):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = dtype
    if name not in DTYPES:
        raise ValueError(
            f"{owner}: unknown `dtype` {dtype!r}; expected one of "
            f"{', '.join(repr(d) for d in DTYPES)}."
        )
    return name


def check_closed_range(value, name, owner, low_bound=None, high_bound=None,
                        low_exclusive=False):
    """A `(low, high)` pair with `low <= high` (equal means a fixed value)."""
    low, high = check_range(value, name, owner, allow_equal=True)
    too_low = low_bound is not None and (
        low <= low_bound if low_exclusive else low < low_bound)
    too_high = high_bound is not None and high > high_bound
    if too_low or too_high:
        left = "(" if low_exclusive else "["
        raise ValueError(
            f"{owner}: `{name}` must lie within {left}{low_bound}, "
            f"{high_bound}], received {value!r}."
        )
    return low, high


def check_seed(seed, owner):
    """`None`, or an int seed >= 0."""
    if seed is None:
        return None
    return check_positive_int(seed, "seed", owner, minimum=0)


def check_uint8_images(images, owner):
    """Shape `(n, h, w, c)` of non-empty `uint8` images of rank 3 or 4 (rank
    3 is grayscale: the channel axis is added to the shape)."""
    dtype = getattr(images, "dtype", None)
    if dtype != np.uint8:
        raise ValueError(
            f"{owner}: `images` must have dtype uint8 (0..255; scaled to "
            f"[0, 1] per batch), received dtype {dtype}. Convert "
            "float images in [0, 1] with "
            "`np.round(images * 255).astype('uint8')`."
        )
    shape = tuple(images.shape)
    if len(shape) == 3:
        shape = shape + (1,)
    if len(shape) != 4:
        raise ValueError(
            f"{owner}: `images` must have rank 4 (n, h, w, c) or rank 3 "
            f"(n, h, w), received shape {tuple(images.shape)}."
        )
    if shape[0] == 0:
        raise ValueError(
            f"{owner}: `images` is empty (shape {tuple(images.shape)}).")
    return shape


def import_tensorflow(owner):
    """TensorFlow, or an `ImportError` that says what to use without it."""
    try:
        import tensorflow as tf
    except ImportError as err:
        raise ImportError(
            f"{owner} builds a `tf.data` pipeline and needs TensorFlow, "
            f"which is not installed ({err}). Install it with "
            "`pip install tensorflow`, or, on the JAX or PyTorch backend, "
            "use the backend-neutral "
            "`keras_vae_layers.datasets.ImageBatches(images, batch_size=...)`"
            " (a `keras.utils.PyDataset`; for a shard directory: "
            "`ImageBatches(open_image_shards(out_dir), batch_size=...)`)."
        ) from err
    return tf
