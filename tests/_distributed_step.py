"""Run in its own process by test_distributed.py.

Splits the CPU into two logical devices (which must happen before
TensorFlow initialises, and would leak into other tests), then compares one
VAEModel training step under MirroredStrategy with the same step on one
device. Prints a JSON line with the largest weight difference.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vae_layers.models import VAEModel  # noqa: E402
from keras_vae_layers.models import build_conv_encoder_decoder  # noqa: E402


def make_vae():
    encoder, decoder = build_conv_encoder_decoder(
        (8, 8, 1), z_dim=2, encoder_filters=(4,), encoder_kernel_sizes=(3,),
        encoder_strides=(2,), decoder_filters=(1,), decoder_kernel_sizes=(3,),
        decoder_strides=(2,), batch_norm=False, intermediate_dim=6,
        kl_layer=False,
    )
    vae = VAEModel(encoder, decoder, beta=0.5)
    vae.set_deterministic(True)
    return vae


def main():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(size=(16, 8, 8, 1)).astype("float32")

    single = make_vae()
    single(x[:2])
    init = [w.copy() for w in single.get_weights()]
    single.compile(optimizer=keras.optimizers.SGD(0.1))
    single.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = make_vae()
        mirrored(x[:2])
        mirrored.set_weights(init)
        mirrored.compile(optimizer=keras.optimizers.SGD(0.1))
    mirrored.fit(x, batch_size=16, epochs=1, verbose=0, shuffle=False)

    moved = max(float(np.abs(a - b).max())
                for a, b in zip(single.get_weights(), init))
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(single.get_weights(), mirrored.get_weights()))
    print(json.dumps({"replicas": strategy.num_replicas_in_sync,
                      "max_diff": diff, "max_update": moved}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
