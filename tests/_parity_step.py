"""One deterministic SGD step of a VAEModel, for the cross-backend parity
test (tests/test_backend_parity.py).

`python tests/_parity_step.py KIND WEIGHTS X` runs it on the backend named
by KERAS_BACKEND and prints one JSON line; the test imports `run` to get
the same numbers in its own process. The step starts from weights saved on
another backend, samples nothing (`set_deterministic`: z = mu) and uses
plain SGD, so every backend must produce the same update.
"""

import json
import sys

import keras
import numpy as np

from keras_vae_layers import VAEModel
from keras_vae_layers import build_conv_encoder_decoder

KINDS = ("dense", "conv")


def make_vae(kind):
    """The same architecture on every backend (weights come from a file)."""
    if kind == "dense":
        from helpers import dense_vae

        base = dense_vae(nested=True, kl_layer=False, seed=1)
        encoder, decoder = base.get_layer("encoder"), base.get_layer("decoder")
        sample = np.zeros((1, 16), "float32")
    elif kind == "conv":
        # BatchNormalization included: its moving statistics are
        # non-trainable state each backend's step must update alike.
        encoder, decoder = build_conv_encoder_decoder(
            (8, 8, 1), z_dim=2, encoder_filters=(4, 8),
            encoder_kernel_sizes=(3, 3), encoder_strides=(2, 2),
            decoder_filters=(4, 1), decoder_kernel_sizes=(3, 3),
            decoder_strides=(2, 2), batch_norm=True, intermediate_dim=6,
            kl_layer=False, seed=1)
        sample = np.zeros((1, 8, 8, 1), "float32")
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    vae = VAEModel(encoder, decoder, beta=0.5)
    vae(sample)
    return vae


def run(kind, weights_path, x):
    """Loads `weights_path`, runs `train_on_batch(x)` with SGD(0.1), then
    `evaluate(x)`: the logs of both and the updated weights (lists)."""
    vae = make_vae(kind)
    vae.load_weights(weights_path)
    vae.set_deterministic(True)
    vae.compile(optimizer=keras.optimizers.SGD(0.1))
    train = vae.train_on_batch(x, return_dict=True)
    weights = [np.asarray(w, "float64").tolist() for w in vae.get_weights()]
    evaluate = vae.evaluate(x, batch_size=len(x), verbose=0, return_dict=True)
    return {
        "backend": keras.backend.backend(),
        "train": {k: float(v) for k, v in train.items()},
        "evaluate": {k: float(v) for k, v in evaluate.items()},
        "weights": weights,
    }


if __name__ == "__main__":
    kind, weights_path, x_path = sys.argv[1:4]
    print(json.dumps(run(kind, weights_path, np.load(x_path))))
