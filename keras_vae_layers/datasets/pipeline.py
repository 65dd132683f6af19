"""Feeding `uint8` image arrays to training, scaled to float per batch.

`ImageDataGenerator` is gone in Keras 3; large image sets stay `uint8` in
host memory (a quarter of float32) and each batch is scaled on the way in.
"""

import numpy as np

from keras_vae_layers._validation import check_positive_int

__all__ = ["make_image_dataset"]


def make_image_dataset(images, batch_size=32, shuffle=True, seed=None,
                       buffer_size=None, drop_remainder=False, repeat=False):
    """Builds a `tf.data.Dataset` of float32 batches from `uint8` images.

    The images stay `uint8` in host memory (no float copy of the whole set,
    no copy into a graph constant, which also avoids TensorFlow's 2 GB
    constant limit); each batch is gathered by index, then cast and scaled to
    [0, 1]. Elements are the batch `x` alone, as `VAEModel.fit(x)` expects.

    Args:
        images: `uint8` array `(n, h, w, c)`, or `(n, h, w)` for grayscale
            (a channel axis is added).
        batch_size: Batch size, an int >= 1.
        shuffle: Whether to reshuffle the images every epoch.
        seed: Optional int seed for the shuffle order.
        buffer_size: Shuffle buffer (in images). Defaults to all of them:
            only indices are buffered, so a full shuffle is cheap.
        drop_remainder: Whether to drop the last, smaller batch (gives a
            static batch dimension).
        repeat: If `True`, repeat forever (then pass `steps_per_epoch` to
            `fit`).

    Returns:
        A `tf.data.Dataset` of float32 tensors `(batch, h, w, c)`.

    Example:

    >>> images, _ = load_shapes(1000, size=32)
    >>> ds = make_image_dataset(images, batch_size=64, seed=0)
    >>> next(iter(ds)).shape
    TensorShape([64, 32, 32, 1])
    """
    import tensorflow as tf

    owner = "make_image_dataset"
    if not isinstance(images, np.ndarray):
        raise ValueError(
            f"{owner}: `images` must be a numpy array, received "
            f"{type(images).__name__}."
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"{owner}: `images` must have dtype uint8 (0..255; scaled to "
            f"[0, 1] per batch), received dtype {images.dtype}. Convert "
            "float images in [0, 1] with "
            "`np.round(images * 255).astype('uint8')`."
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"{owner}: `images` must have rank 4 (n, h, w, c) or rank 3 "
            f"(n, h, w), received shape {images.shape}."
        )
    n = images.shape[0]
    if n == 0:
        raise ValueError(f"{owner}: `images` is empty (shape {images.shape}).")
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    if seed is not None:
        seed = int(check_positive_int(seed, "seed", owner, minimum=0))
    if buffer_size is None:
        buffer_size = n
    buffer_size = check_positive_int(buffer_size, "buffer_size", owner)
    def gather(idx):
        return images[idx]

    def to_float(idx):
        batch = tf.numpy_function(gather, [idx], tf.uint8, stateful=False)
        batch.set_shape((batch_size if drop_remainder else None,)
                        + images.shape[1:])
        return tf.cast(batch, tf.float32) * (1.0 / 255.0)

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # Batch the indices first so that gathering, casting and scaling run once
    # per batch instead of once per image.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
