"""Reading shards: `load_image_shards` (tf.data) and `open_image_shards`
(a memory-mapped array for any backend)."""

import math
import numbers
import os

import numpy as np

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.datasets._checks import check_seed
from keras_vae_layers.datasets._checks import import_tensorflow
from keras_vae_layers.datasets.image_folder import COLOR_MODES
from keras_vae_layers.datasets.image_folder import CROPS
from keras_vae_layers.datasets.image_folder import check_size_pair
from keras_vae_layers.datasets.shards._format import MANIFEST_NAME
from keras_vae_layers.datasets.shards._format import check_manifest
from keras_vae_layers.datasets.shards._format import check_shard
from keras_vae_layers.datasets.shards._format import load_manifest
from keras_vae_layers.datasets.shards._format import manifest_record_bytes


def _open_manifest(out_dir, owner, verify, size, crop, color_mode):
    """The manifest of a complete shard directory, after checking it, the
    expected settings and every shard (size and header; with `verify`, its
    checksum too)."""
    expected = {}
    if size is not None:
        expected["size"] = list(check_size_pair(size, owner))
    if crop is not None:
        expected["crop"] = check_choice(crop, "crop", CROPS, owner)
    if color_mode is not None:
        expected["color_mode"] = check_choice(
            color_mode, "color_mode", tuple(COLOR_MODES), owner)
    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(
            f"{owner}: shard directory {out_dir!r} does not exist.")
    manifest = load_manifest(out_dir, owner)
    path = os.path.join(out_dir, MANIFEST_NAME)
    if manifest is None:
        raise FileNotFoundError(
            f"{owner}: {path!r} does not exist: {out_dir!r} is not a shard "
            "directory written by `write_image_shards`."
        )
    check_manifest(manifest, out_dir, owner, hint=(
        "Convert the image folder again with `write_image_shards`."))
    settings = manifest["settings"]
    if not manifest["complete"]:
        total = math.ceil(manifest["source"]["files"]
                          / settings["images_per_shard"])
        raise ValueError(
            f"{owner}: {out_dir!r} holds an unfinished conversion "
            f"({len(manifest['shards'])} of {total} shards); rerun "
            "`write_image_shards` with the same settings to finish it."
        )
    differ = [f"{key}={settings[key]!r} (expected {value!r})"
              for key, value in expected.items() if settings[key] != value]
    if differ:
        raise ValueError(
            f"{owner}: {path!r} was written with {', '.join(differ)}.")
    for entry in manifest["shards"]:
        check_shard(out_dir, entry, manifest, verify, owner)
    return manifest


class ShardedImages:
    """A shard directory as one read-only `uint8` array, memory-mapped.

    Returned by `open_image_shards`. Supports `len()`, `shape`, `dtype`,
    `ndim` and indexing by an int, a slice or a 1-D integer array (the
    result is a new in-memory numpy array); the shards are mapped on first
    use, one memory map (and file descriptor) per shard. Pickling keeps the
    paths only (worker processes map the files themselves). Pass it to
    `ImageBatches` for a backend-neutral, globally shuffled batch source.

    Example:

    >>> images = open_image_shards("celeba64")
    >>> images.shape, images[[5, 70_000]].shape
    ((202599, 64, 64, 3), (2, 64, 64, 3))
    """

    def __init__(self, out_dir, manifest):
        self.out_dir = os.fspath(out_dir)
        self.manifest = manifest
        # Empty shards (every file unreadable) cannot be mapped: left out.
        entries = [e for e in manifest["shards"] if e["count"] > 0]
        self.files = [os.path.join(self.out_dir, e["file"]) for e in entries]
        self._counts = [e["count"] for e in entries]
        self._ends = np.cumsum(self._counts)
        self._starts = self._ends - self._counts
        self._header_bytes = manifest["header_bytes"]
        self.shape = (int(manifest["count"]),) + tuple(
            manifest["record_shape"])
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self._maps = [None] * len(self.files)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return (f"ShardedImages({self.out_dir!r}, shape={self.shape}, "
                f"shards={len(self.files)})")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = [None] * len(self.files)
        return state

    def _map(self, s):
        if self._maps[s] is None:
            self._maps[s] = np.memmap(
                self.files[s], dtype=np.uint8, mode="r",
                offset=self._header_bytes,
                shape=(self._counts[s],) + self.shape[1:])
        return self._maps[s]

    def __getitem__(self, key):
        n = self.shape[0]
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if not -n <= key < n:
                raise IndexError(
                    f"ShardedImages: index {key} out of range for {n} "
                    "images.")
            return self[np.array([key % n])][0]
        if isinstance(key, slice):
            key = np.arange(*key.indices(n))
        idx = np.asarray(key)
        if idx.ndim != 1 or not (idx.dtype.kind in "iu" or idx.size == 0):
            raise TypeError(
                "ShardedImages: index with an int, a slice or a 1-D integer "
                f"array, received {type(key).__name__}"
                f"{f' of shape {idx.shape}' if idx.ndim != 1 else ''}.")
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(
                f"ShardedImages: index out of range for {n} images.")
        idx = idx.astype(np.int64) % max(n, 1)
        out = np.empty((idx.size,) + self.shape[1:], np.uint8)
        shard_of = np.searchsorted(self._ends, idx, side="right")
        for s in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == s)
            out[rows] = self._map(s)[idx[rows] - self._starts[s]]
        return out


def open_image_shards(out_dir, verify=False, size=None, crop=None,
                      color_mode=None):
    """Opens a shard directory as one memory-mapped `uint8` array-like.

    Needs no TensorFlow: for the JAX and PyTorch backends, wrap it in
    `ImageBatches`, which gathers each (globally shuffled) batch from the
    memory maps and scales it to float32 [0, 1].

    Checks on open, before anything is read: the manifest is a complete one
    of this package's shard format, the expected settings match, and every
    shard is present with the size and `.npy` header the manifest lists.
    `verify=True` also compares every shard's SHA-256 (reads the whole
    directory once: about 1 GB/s from the page cache).

    Args:
        out_dir: Directory written by `write_image_shards`.
        verify: If `True`, also check every shard's checksum.
        size: Optional expected `(height, width)` (or int); a directory
            written with another size is refused.
        crop: Optional expected crop (`"center"` or `"none"`).
        color_mode: Optional expected color mode (`"rgb"`, `"grayscale"`).

    Returns:
        A `ShardedImages` of shape `(count, height, width, channels)`.

    Raises:
        FileNotFoundError: If `out_dir`, its manifest or a shard is missing.
        ValueError: If the manifest is not ours, from another format
            version, unfinished or of other settings, or a shard is
            truncated or corrupt.

    Example:

    >>> images = open_image_shards("celeba64", size=64)
    >>> batches = ImageBatches(images, batch_size=128, seed=0)
    >>> vae.fit(batches, epochs=10, shuffle=False)
    """
    manifest = _open_manifest(out_dir, "open_image_shards", verify, size,
                              crop, color_mode)
    return ShardedImages(out_dir, manifest)


def load_image_shards(out_dir, batch_size, shuffle=True, seed=None,
                      repeat=False, shuffle_buffer=None, drop_remainder=False,
                      verify=False, size=None, crop=None, color_mode=None):
    """Streams a shard directory as a `tf.data.Dataset` of float32 batches.

    The pipeline: the shard files (shuffled per epoch with `shuffle`) are
    read 8 at a time in parallel by `tf.data.FixedLengthRecordDataset`
    (one image per record, the `.npy` header skipped), their records
    interleaved and mixed in a bounded shuffle buffer, batched, decoded to
    `uint8` and scaled to [0, 1] per batch, and prefetched. Without
    `shuffle`, the images come in conversion order (sorted file names).

    Under `tf.distribute` (e.g. `MultiWorkerMirroredStrategy`), the dataset
    is auto-sharded by file: each worker reads whole shards of its own
    (`AutoShardPolicy.FILE`, which `AUTO` selects here), so there should be
    at least as many shards as workers.

    Checks on open as `open_image_shards` (with `verify`, full checksums).

    Args:
        out_dir: Directory written by `write_image_shards`.
        batch_size: Batch size, an int >= 1.
        shuffle: Whether to shuffle (file order, then a record buffer).
        seed: Optional int >= 0 for both shuffles.
        repeat: If `True`, repeat forever (then pass `steps_per_epoch`).
        shuffle_buffer: Records in the shuffle buffer. Defaults to about
            256 MB of records (21,000 at 64x64x3, 9,500 at 96x96x3), at
            least one batch and at most all images.
        drop_remainder: Whether to drop the last, smaller batch.
        verify: If `True`, check every shard's checksum on open.
        size, crop, color_mode: Optional expected settings (see
            `open_image_shards`).

    Returns:
        A `tf.data.Dataset` of float32 tensors `(batch, h, w, c)`, the
        batch `x` alone as `VAEModel.fit(x)` expects.

    Raises:
        ImportError: Without TensorFlow (use `open_image_shards` with
            `ImageBatches`).
        FileNotFoundError, ValueError: As `open_image_shards`.

    Example:

    >>> ds = load_image_shards("celeba64", batch_size=128, seed=0)
    >>> vae.fit(ds, epochs=10)
    """
    owner = "load_image_shards"
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    seed = check_seed(seed, owner)
    manifest = _open_manifest(out_dir, owner, verify, size, crop, color_mode)
    tf = import_tensorflow(owner)
    record_shape = tuple(manifest["record_shape"])
    record_bytes = manifest_record_bytes(manifest)
    count = manifest["count"]
    if shuffle_buffer is None:
        shuffle_buffer = min(count, max(batch_size,
                                        (256 << 20) // record_bytes))
    shuffle_buffer = check_positive_int(shuffle_buffer, "shuffle_buffer",
                                        owner)
    files = [os.path.join(os.fspath(out_dir), e["file"])
             for e in manifest["shards"] if e["count"] > 0]
    header_bytes = manifest["header_bytes"]

    def read(file):
        return tf.data.FixedLengthRecordDataset(
            file, record_bytes, header_bytes=header_bytes,
            buffer_size=1 << 20)

    def to_float(records):
        batch = tf.reshape(tf.io.decode_raw(records, tf.uint8),
                           (-1,) + record_shape)
        batch.set_shape((batch_size if drop_remainder else None,)
                        + record_shape)
        return tf.cast(batch, tf.float32) * (1.0 / 255.0)

    # A dataset of file names feeding a reader: what tf.distribute's
    # file-level auto-sharding looks for.
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(read, cycle_length=min(len(files), 8),
                           block_length=1,
                           num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed,
                        reshuffle_each_iteration=True)
    else:
        ds = ds.interleave(read, cycle_length=1)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
