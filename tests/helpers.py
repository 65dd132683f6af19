"""Small model factories and utilities shared by the tests."""

import keras
import numpy as np

from keras_vae_layers import KLDivergenceLayer
from keras_vae_layers import _keras_compat
from keras_vae_layers import SamplingLayer


BACKEND = keras.backend.backend()

STEPS_ARE_TRACED = BACKEND != "torch"
"""Whether Keras traces its step functions: `tf.function` on TensorFlow,
`jax.jit` on JAX. On torch (Keras' default `jit_compile=False` there) the
steps run eagerly, so there is no trace to count or repeat."""


def assert_no_retrace(counter, traces_before, new_traces, model=None,
                      functions=None):
    """Asserts the traced steps were reused (TensorFlow, JAX), or on torch
    that Keras kept the same step functions (`functions`: the
    `{"train": model.train_function, ...}` captured before)."""
    if STEPS_ARE_TRACED:
        assert counter.traces == traces_before + new_traces
        return
    for kind, function in (functions or {}).items():
        assert getattr(model, f"{kind}_function") is function, kind


class TraceCounter(keras.layers.Layer):
    """Identity layer whose Python `call` runs once per graph trace (on
    torch, once per eager call)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, x):
        self.traces += 1
        return x


def dense_vae(input_dim=16, latent_dim=2, beta=1.0, nested=False, seed=1,
              counter=None, kl_layer=True):
    """A small Functional VAE built from the package layers.

    With `nested=True` the KL and sampling layers live inside an encoder
    sub-model that the outer VAE calls (the usual encoder/decoder split).
    """
    x = keras.Input((input_dim,))
    h = keras.layers.Dense(8, activation="relu")(x)
    if counter is not None:
        h = counter(h)
    mu = keras.layers.Dense(latent_dim, name="mu")(h)
    logvar = keras.layers.Dense(latent_dim, name="logvar")(h)
    if kl_layer:  # VAEModel owns the KL term: its encoders have none
        mu, logvar = KLDivergenceLayer(beta=beta, name="kl")([mu, logvar])
    z = SamplingLayer(seed=seed, name="sampling")([mu, logvar])
    dec_dense = keras.layers.Dense(input_dim, activation="sigmoid")
    if nested:
        encoder = keras.Model(x, [z, mu, logvar], name="encoder")
        z_in = keras.Input((latent_dim,))
        decoder = keras.Model(z_in, dec_dense(z_in), name="decoder")
        x2 = keras.Input((input_dim,))
        out = decoder(encoder(x2)[0])
        return keras.Model(x2, out, name="vae")
    return keras.Model(x, dec_dense(z), name="vae")


def find_layer(model, cls):
    for layer in _keras_compat.all_layers(model):
        if isinstance(layer, cls):
            return layer
    raise LookupError(cls)


def binary_data(n=64, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, dim)) > 0.5).astype("float32")
