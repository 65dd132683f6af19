"""One worker of the two-worker cluster that test_multiworker.py starts.

Usage: python _multiworker_worker.py INDEX PORT0,PORT1 WORKDIR

Loads the initial weights and the data the test wrote into WORKDIR, trains
one step of global batch `BATCH` (half per worker) under
MultiWorkerMirroredStrategy with the package callbacks writing into
per-worker folders (`ckpt<INDEX>`, `grids<INDEX>`), and prints one JSON line
describing what it did. The chief also saves the trained weights
(`weights.npz`).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vae_layers import diagnostics  # noqa: E402
from keras_vae_layers import distribute  # noqa: E402
from keras_vae_layers.callbacks import LatentStatisticsLogger  # noqa: E402
from keras_vae_layers.callbacks import SampleGridLogger  # noqa: E402
from keras_vae_layers.callbacks import VAECheckpoint  # noqa: E402
from keras_vae_layers.models import VAEModel  # noqa: E402
from keras_vae_layers.models import build_conv_encoder_decoder  # noqa: E402

BATCH = 8
"""Global batch: one step over all the data, 4 rows per worker."""

INPUT_SHAPE = (8, 8, 1)


def make_vae():
    """The tiny VAE both the workers and the single-process reference use."""
    encoder, decoder = build_conv_encoder_decoder(
        INPUT_SHAPE, z_dim=2, encoder_filters=(4,), encoder_kernel_sizes=(3,),
        encoder_strides=(2,), decoder_filters=(1,), decoder_kernel_sizes=(3,),
        decoder_strides=(2,), batch_norm=False, intermediate_dim=6,
        kl_layer=False,
    )
    vae = VAEModel(encoder, decoder, beta=0.5)
    vae.build((None,) + INPUT_SHAPE)
    return vae


def train_one_step(vae, x, callbacks=()):
    """The step under test: `fit(x, x)` (an `(x, y)` batch, which stock
    Keras cannot build from under a multi-worker strategy) with
    validation, so both the train and the test step run."""
    vae.compile(optimizer=keras.optimizers.SGD(0.1))
    vae.set_deterministic(True)
    return vae.fit(x, x, batch_size=BATCH, epochs=1, shuffle=False,
                   validation_data=(x, x), callbacks=list(callbacks),
                   verbose=0)


def main(index, ports, workdir):
    workers = [f"localhost:{port}" for port in ports.split(",")]
    os.environ["TF_CONFIG"] = json.dumps(distribute.tf_config(workers, index))
    strategy = distribute.multi_worker_strategy(collective_timeout=60,
                                                startup_timeout=60)
    x = np.load(os.path.join(workdir, "x.npy"))
    grids = SampleGridLogger(os.path.join(workdir, f"grids{index}"), rows=2,
                             cols=2, reconstruction_images=x[:2])
    checkpoint = VAECheckpoint(os.path.join(workdir, f"ckpt{index}"))
    with strategy.scope():
        vae = make_vae()
        vae.load_weights(os.path.join(workdir, "init.weights.h5"))
        history = train_one_step(
            vae, x, [checkpoint, grids, LatentStatisticsLogger(x[:4])])
    # A callback-style forward pass after training (collective here too).
    mu = diagnostics.encode_dataset(vae, x[:3], batch_size=3)["mu"]
    chief = distribute.is_chief(vae)
    if chief:
        np.savez(os.path.join(workdir, "weights.npz"), *vae.get_weights())
    print(json.dumps({
        "index": index,
        "chief": chief,
        "replicas": strategy.num_replicas_in_sync,
        "history": {k: [float(v) for v in vals]
                    for k, vals in history.history.items()},
        "grid_paths": grids.last_paths,
        "checkpoint_run": checkpoint.run_id,
        "encoded_rows": int(mu.shape[0]),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
