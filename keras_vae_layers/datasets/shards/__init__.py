"""Image folders converted once into `uint8` shards, streamed from disk.

For image sets larger than memory (CelebA at 128x128 is about 10 GB as
`uint8`). `write_image_shards` decodes a folder by the rules of
`load_image_folder` into raw `.npy` shards plus a `manifest.json`;
`load_image_shards` streams them through `tf.data` (shardable by file across
`tf.distribute` workers) and `open_image_shards` maps them into memory as
one read-only array for `ImageBatches` (any backend, no TensorFlow).

Why raw `.npy` shards rather than TFRecord: a record is the image's bytes
at a fixed offset, so the same files serve `tf.data`
(`FixedLengthRecordDataset` skips the 128-byte header) and a plain memory
map (random access for a global shuffle, no TensorFlow, no parsing); the
conversion writes each shard through a memory map, so memory stays bounded
by one shard.

Directory layout: `shard-00000.npy`, `shard-00001.npy`, ... and
`manifest.json`. Shard `k` holds the readable images among the files
`k * images_per_shard` to `(k + 1) * images_per_shard - 1` of the sorted
listing, so a shard's content depends only on its files: an interrupted
conversion redoes exactly the shards it had not finished.
"""

from keras_vae_layers.datasets.shards._format import MANIFEST_NAME
from keras_vae_layers.datasets.shards._format import SHARD_FORMAT_VERSION
from keras_vae_layers.datasets.shards.readers import ShardedImages
from keras_vae_layers.datasets.shards.readers import load_image_shards
from keras_vae_layers.datasets.shards.readers import open_image_shards
from keras_vae_layers.datasets.shards.writer import write_image_shards

__all__ = ["write_image_shards", "load_image_shards", "open_image_shards",
           "ShardedImages", "MANIFEST_NAME", "SHARD_FORMAT_VERSION"]
