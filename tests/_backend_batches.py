"""Trains a plain Keras autoencoder from `ImageBatches` on one backend.

Run by `tests/test_pipeline.py` in a fresh process per backend (Keras reads
`KERAS_BACKEND` once, at import):

    KERAS_BACKEND=jax python tests/_backend_batches.py SHARD_DIR [--processes]

Feeds the batch source two ways, over a numpy array and over the
memory-mapped view of the shard directory `SHARD_DIR`, fits 2 epochs and
prints one JSON line: the backend, the losses, the steps run per epoch, the
epochs the source saw and every batch shape and value range it served.
"""

import json
import sys

import keras
import numpy as np

from keras_vae_layers.datasets import ImageBatches
from keras_vae_layers.datasets import load_shapes
from keras_vae_layers.datasets import open_image_shards


class _Steps(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.counts = getattr(self, "counts", []) + [0]

    def on_train_batch_end(self, batch, logs=None):
        self.counts[-1] += 1


def _autoencoder(shape):
    inputs = keras.Input(shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.Dense(int(np.prod(shape)), activation="sigmoid")(x)
    model = keras.Model(inputs, keras.layers.Reshape(shape)(x))
    model.compile(optimizer="adam", loss="mse")
    return model


def main(shard_dir, processes):
    keras.utils.set_random_seed(0)
    images, _ = load_shapes(40, size=8, seed=0)
    result = {"backend": keras.backend.backend()}
    sources = {"array": images, "shards": open_image_shards(shard_dir)}
    for name, source in sources.items():
        batches = ImageBatches(source, batch_size=16, seed=0,
                               with_targets=True,
                               workers=2 if processes else 1,
                               use_multiprocessing=processes)
        served = []
        for i in range(len(batches)):
            x, y = batches[i]
            served.append([list(x.shape), str(x.dtype), float(x.min()),
                           float(x.max()), bool(x is y)])
        steps = _Steps()
        model = _autoencoder(batches.image_shape)
        history = model.fit(batches, epochs=2, shuffle=False, verbose=0,
                            callbacks=[steps])
        result[name] = {"loss": [float(v) for v in history.history["loss"]],
                        "steps": steps.counts, "batches": len(batches),
                        "epoch": batches.epoch, "served": served}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], "--processes" in sys.argv[2:])
