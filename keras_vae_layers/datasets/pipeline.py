"""Feeding `uint8` image arrays to training, scaled to float per batch.

`ImageDataGenerator` is gone in Keras 3; large image sets stay `uint8` in
host memory (a quarter of float32) or on disk, and each batch is scaled on
the way in. Two sources:

* `ImageBatches`, a `keras.utils.PyDataset`: works on every Keras backend
  (TensorFlow, JAX, PyTorch) and over any array-like (a numpy array, an
  `np.memmap`, the memory-mapped view of a shard directory).
* `make_image_dataset`, a `tf.data.Dataset` (TensorFlow only).
"""

import math
import numbers

import keras
import numpy as np

from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.datasets._checks import check_seed
from keras_vae_layers.datasets._checks import check_uint8_images
from keras_vae_layers.datasets._checks import import_tensorflow

__all__ = ["ImageBatches", "make_image_dataset"]

_SCALE = np.float32(1.0 / 255.0)


class ImageBatches(keras.utils.PyDataset):
    """Float32 batches in [0, 1] from `uint8` images, on every backend.

    A `keras.utils.PyDataset`, so `fit`, `evaluate` and `predict` take it on
    the TensorFlow, JAX and PyTorch backends alike. Each batch is gathered
    by index from `images` (the indices of a batch sorted, so that a memory
    map or a shard view reads its records in file order), then cast and
    scaled to [0, 1]: nothing larger than one batch is ever converted to
    float. The order is reshuffled at the end of every epoch, the same way
    for the same `seed`.

    Since the batches are shuffled here, pass `shuffle=False` to `fit` (it
    would otherwise also shuffle the order of the batches with Python's
    global `random`, which is seeded only by `keras.utils.set_random_seed`).

    Args:
        images: `uint8` images `(n, h, w, c)`, or `(n, h, w)` for grayscale
            (a channel axis is added per batch): a numpy array, an
            `np.memmap`, the view `open_image_shards` returns, or any object
            with `shape`, `dtype` and numpy-style indexing by an integer
            array.
        batch_size: Batch size, an int >= 1.
        shuffle: Whether to shuffle the images (and reshuffle every epoch).
        seed: Optional int >= 0 for the shuffle order. Without it, a random
            seed is drawn once for this object.
        drop_remainder: Whether to drop the last, smaller batch.
        with_targets: If `False`, each batch is `x` alone, as `VAEModel.fit`
            expects; if `True`, `(x, x)`, for a model compiled with a
            reconstruction loss (a plain autoencoder).
        workers: Number of threads (or processes) that prepare batches
            while the model trains (`keras.utils.PyDataset`); 1 prepares
            them in the training loop's thread.
        use_multiprocessing: If `True`, the workers are processes (forked:
            the arrays and memory maps are shared, not copied).
        max_queue_size: Batches prepared ahead by the workers.

    Example:

    >>> images, _ = load_shapes(1000, size=32)
    >>> batches = ImageBatches(images, batch_size=64, seed=0)
    >>> len(batches), batches[0].shape
    (16, (64, 32, 32, 1))
    >>> vae.fit(batches, epochs=10, shuffle=False)
    """

    def __init__(self, images, batch_size=32, shuffle=True, seed=None,
                 drop_remainder=False, with_targets=False, workers=1,
                 use_multiprocessing=False, max_queue_size=10):
        owner = "ImageBatches"
        workers = check_positive_int(workers, "workers", owner)
        max_queue_size = check_positive_int(max_queue_size, "max_queue_size",
                                            owner)
        super().__init__(workers=workers,
                         use_multiprocessing=bool(use_multiprocessing),
                         max_queue_size=max_queue_size)
        if not hasattr(images, "__getitem__"):
            raise ValueError(
                f"{owner}: `images` must be an array-like with `shape`, "
                f"`dtype` and indexing, received {type(images).__name__}."
            )
        self._shape = check_uint8_images(images, owner)
        self.images = images
        self.batch_size = check_positive_int(batch_size, "batch_size", owner)
        self.shuffle = bool(shuffle)
        self.drop_remainder = bool(drop_remainder)
        self.with_targets = bool(with_targets)
        n = self._shape[0]
        if self.drop_remainder and n < self.batch_size:
            raise ValueError(
                f"{owner}: `drop_remainder=True` with {n} images and "
                f"`batch_size` {self.batch_size} leaves no batch; use a "
                "smaller batch size or `drop_remainder=False`."
            )
        seed = check_seed(seed, owner)
        # One entropy value for the object: every epoch's order derives from
        # it and the epoch number, so worker processes agree with the parent.
        self.seed = (seed if seed is not None
                     else int(np.random.SeedSequence().entropy))
        # Orders drawn so far; Keras calls `on_epoch_end` after each epoch
        # (and once more when `fit` sets up its epoch iterator).
        self.epoch = 0
        self._order = self._epoch_order()

    @property
    def num_images(self):
        """Number of images per epoch (all of them, even when dropped)."""
        return self._shape[0]

    @property
    def image_shape(self):
        """`(h, w, c)` of one image in a batch."""
        return self._shape[1:]

    def _epoch_order(self):
        n = self._shape[0]
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def __len__(self):
        n = self._shape[0]
        if self.drop_remainder:
            return n // self.batch_size
        return math.ceil(n / self.batch_size)

    def __getitem__(self, index):
        if (isinstance(index, bool) or not isinstance(index, numbers.Integral)
                or not 0 <= index < len(self)):
            raise IndexError(
                f"ImageBatches: batch index {index!r} out of range "
                f"[0, {len(self)}).")
        start = int(index) * self.batch_size
        indices = self._order[start:start + self.batch_size]
        if self.shuffle:
            indices = np.sort(indices)
        batch = np.asarray(self.images[indices])
        if batch.ndim == 3:
            batch = batch[..., None]
        # The same float32 product as make_image_dataset's tf.cast * 1/255.
        x = np.multiply(batch, _SCALE, dtype=np.float32)
        return (x, x) if self.with_targets else x

    def on_epoch_end(self):
        """Draws the next epoch's order (a new permutation per epoch)."""
        self.epoch += 1
        self._order = self._epoch_order()


def make_image_dataset(images, batch_size=32, shuffle=True, seed=None,
                       buffer_size=None, drop_remainder=False, repeat=False):
    """Builds a `tf.data.Dataset` of float32 batches from `uint8` images.

    The images stay `uint8` in host memory (no float copy of the whole set,
    no copy into a graph constant, which also avoids TensorFlow's 2 GB
    constant limit); each batch is gathered by index, then cast and scaled to
    [0, 1]. Elements are the batch `x` alone, as `VAEModel.fit(x)` expects.

    Needs TensorFlow (any Keras backend can consume the dataset while
    TensorFlow is installed); `ImageBatches` is the backend-neutral
    alternative.

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

    Raises:
        ImportError: If TensorFlow is not installed (the message names what
            to install and the alternative).

    Example:

    >>> images, _ = load_shapes(1000, size=32)
    >>> ds = make_image_dataset(images, batch_size=64, seed=0)
    >>> next(iter(ds)).shape
    TensorShape([64, 32, 32, 1])
    """
    owner = "make_image_dataset"
    if not isinstance(images, np.ndarray):
        raise ValueError(
            f"{owner}: `images` must be a numpy array, received "
            f"{type(images).__name__}."
        )
    shape = check_uint8_images(images, owner)
    images = images.reshape(shape)
    n = shape[0]
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    seed = check_seed(seed, owner)
    if buffer_size is None:
        buffer_size = n
    buffer_size = check_positive_int(buffer_size, "buffer_size", owner)
    tf = import_tensorflow(owner)

    def gather(idx):
        return images[idx]

    def to_float(idx):
        batch = tf.numpy_function(gather, [idx], tf.uint8, stateful=False)
        batch.set_shape((batch_size if drop_remainder else None,) + shape[1:])
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
