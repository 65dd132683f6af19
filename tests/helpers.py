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


def trace_mark(counter, *models):
    """What a retrace changes: `counter.traces` where Keras traces its
    steps (TensorFlow, JAX); on torch, where steps run eagerly and the
    counter counts calls, the identity of the models' step functions (a
    rebuilt function is the eager analogue of a retrace)."""
    if STEPS_ARE_TRACED:
        return counter.traces
    return tuple(id(getattr(model, f"{kind}_function", None))
                 for model in models
                 for kind in ("train", "test", "predict"))


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


def saved_weights(model):
    """`model.get_weights()` without the KL layers' running KL sum and
    count: non-trainable weights that are logged, never saved."""
    running = {id(v) for layer in _keras_compat.all_layers(model)
               if isinstance(layer, KLDivergenceLayer)
               for v in (layer.kl_total, layer.kl_count)}
    return [np.array(w) for w in model.weights if id(w) not in running]


def find_layer(model, cls):
    for layer in _keras_compat.all_layers(model):
        if isinstance(layer, cls):
            return layer
    raise LookupError(cls)


def binary_data(n=64, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, dim)) > 0.5).astype("float32")
