"""Run in its own process by test_distributed.py (KERAS_BACKEND=jax).

Splits the host CPU into two XLA devices (an XLA flag that must be set
before JAX initialises, and would leak into other tests), then compares
one VAEModel training step under `keras.distribution.DataParallel` with the
same step on one device. Prints a JSON line with the largest weight
difference.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=2")

import jax  # noqa: E402
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

    devices = keras.distribution.list_devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        parallel = make_vae()
        parallel(x[:2])
        parallel.set_weights(init)
        parallel.compile(optimizer=keras.optimizers.SGD(0.1))
        history = parallel.fit(x, batch_size=16, epochs=1, verbose=0,
                               shuffle=False)
        kernel = parallel.trainable_variables[0].value

    moved = max(float(np.abs(a - b).max())
                for a, b in zip(single.get_weights(), init))
    diff = max(float(np.abs(a - b).max())
               for a, b in zip(single.get_weights(), parallel.get_weights()))
    print(json.dumps({
        "devices": len(devices),
        "jax_devices": jax.device_count(),
        "weight_devices": len(kernel.sharding.device_set),
        "max_diff": diff, "max_update": moved,
        "loss": history.history["loss"][0],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
