"""The ways of adding the KL term that `kl_strategies.py` compares.

`build_variants` builds each of them from one `build_conv_encoder_decoder`
call: every variant gets a fresh builder encoder/decoder pair holding the
same initial weights, so the conv stack, the heads and the decoder are
identical. A `Variant` carries the model, the data `fit()` gets, the loss
exactly as its training computes it, and its sampling layers (which the
parity check switches and rewinds). See the docstring of
`kl_strategies.py` and `benchmarks/README.md` for what each variant is.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_vae_layers import ReconstructionLoss
from keras_vae_layers import SamplingLayer
from keras_vae_layers import VAEModel
from keras_vae_layers import build_conv_encoder_decoder
from keras_vae_layers import losses as vae_losses

VARIANTS = ("ae", "kl_layer", "multi_output", "compute_loss", "train_step",
            "reference", "train_step_2out")
"""Every variant, in timing order (`ae` first: the ratios' denominator)."""

DEFAULT_VARIANTS = VARIANTS[:6]
"""The variants run by default; `train_step_2out` (VAEModel on a two-output
`[mu, logvar]` encoder, without the builder's KL and sampling layers) is
opt-in: it measures what the builder encoder's KL layer costs `VAEModel`."""

SHIPPED = ("kl_layer", "multi_output", "compute_loss", "train_step")
"""The four strategies the package ships (the 1.05x-of-`ae` target)."""


# ----------------------------------------------------------------------------
# Losses and models of the variants
# ----------------------------------------------------------------------------


def kl_mu_part(y_true, mu):
    """The `mu` half of the per-sample KL: `0.5 * sum(mu^2)`."""
    del y_true
    mu = ops.cast(mu, "float32")
    return 0.5 * ops.sum(ops.square(mu), axis=-1)


def kl_logvar_part(y_true, logvar):
    """The `logvar` half of the per-sample KL: `0.5 * sum(e^lv - 1 - lv)`.

    `logvar` is clipped like `losses.kl_divergence` does, so the two halves
    add up to exactly the package's KL.
    """
    del y_true
    low, high = vae_losses.DEFAULT_LOGVAR_CLIP
    logvar = ops.clip(ops.cast(logvar, "float32"), low, high)
    return 0.5 * ops.sum(ops.exp(logvar) - 1.0 - logvar, axis=-1)


class ComputeLossVAE(keras.Model):
    """Functional VAE whose `compute_loss` adds `beta * KL` (strategy c).

    Outputs `[x_hat, mu, logvar]`; compile it with the reconstruction loss
    only. Keras 3 removed symbolic `Model.add_loss()`; overriding
    `compute_loss` is its stand-in for a model-level loss.
    """

    def __init__(self, inputs, outputs, beta=1.0, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.kl_beta = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(beta),
            trainable=False, dtype="float32", name="kl_beta",
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        x_hat, mu, logvar = y_pred
        loss = super().compute_loss(x, y, x_hat, sample_weight, training)
        kl = ops.mean(vae_losses.kl_divergence(mu, logvar))
        return loss + self.kl_beta * kl


class ReferenceSampling(keras.layers.Layer):
    """The Keras example's `Sampling` layer (Keras 3 version).

    `parity_deterministic` is a benchmark-only hook (not in the example):
    the parity check sets it to get `z = mu` while still drawing `eps`, so
    the seed generators of all variants stay in step.
    """

    def __init__(self, seed=1337, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.parity_deterministic = False

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch = ops.shape(z_mean)[0]
        dim = ops.shape(z_mean)[1]
        epsilon = keras.random.normal(shape=(batch, dim),
                                      seed=self.seed_generator)
        if self.parity_deterministic:
            epsilon = epsilon * 0.0
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class ReferenceVAE(keras.Model):
    """The Keras example's `VAE` model with its custom `train_step`.

    Adaptations (see the docstring of `kl_strategies.py`): `training=True`
    for the sub-models, and the reconstruction times `reco_scale` (the
    number of channels) to undo the channel mean of `binary_crossentropy`.
    """

    def __init__(self, encoder, decoder, reco_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.reco_scale = float(reco_scale)
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [
            self.total_loss_tracker,
            self.reconstruction_loss_tracker,
            self.kl_loss_tracker,
        ]

    def example_losses(self, data):
        """The example's loss computation (inlined in its `train_step`)."""
        z_mean, z_log_var, z = self.encoder(data, training=True)
        reconstruction = self.decoder(z, training=True)
        reconstruction_loss = ops.mean(
            ops.sum(
                keras.losses.binary_crossentropy(data, reconstruction),
                axis=(1, 2),
            )
        )
        if self.reco_scale != 1.0:
            reconstruction_loss = reconstruction_loss * self.reco_scale
        kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean)
                          - ops.exp(z_log_var))
        kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
        total_loss = reconstruction_loss + kl_loss
        return total_loss, reconstruction_loss, kl_loss

    def train_step(self, data):
        with tf.GradientTape() as tape:
            total_loss, reconstruction_loss, kl_loss = self.example_losses(
                data
            )
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }

    def call(self, x):
        z_mean, z_log_var, z = self.encoder(x)
        return self.decoder(z)


class Variant:
    """One way of building the VAE: the model, its data, its loss."""

    def __init__(self, name, model, data_fn, loss_fn, samplers=()):
        self.name = name
        self.model = model
        self.data_fn = data_fn  # x -> the structure fit() gets per batch
        self.loss_fn = loss_fn  # (x) -> scalar loss, as training computes it
        self.samplers = list(samplers)

    def set_deterministic(self, deterministic):
        for layer in self.samplers:
            if isinstance(layer, SamplingLayer):
                layer.set_deterministic(deterministic)
            else:
                layer.parity_deterministic = bool(deterministic)

    def seed_states(self):
        return [
            ops.convert_to_numpy(layer.seed_generator.state).tolist()
            for layer in self.samplers
        ]

    def restore_seed_states(self, states):
        for layer, state in zip(self.samplers, states):
            gen = layer.seed_generator
            gen.state.assign(np.asarray(state, dtype=gen.state.dtype))


# ----------------------------------------------------------------------------
# Building the variants
# ----------------------------------------------------------------------------


class _Setting:
    """What every variant builder needs besides its encoder/decoder."""

    def __init__(self, kwargs, beta, seed, optimizer_lr):
        self.kwargs = kwargs
        self.beta = beta
        self.seed = seed
        self.optimizer_lr = optimizer_lr
        self.input_shape = tuple(kwargs["input_shape"])
        self.channels = int(kwargs["input_shape"][-1])
        self.z_dim = int(kwargs["z_dim"])

    def adam(self):
        return keras.optimizers.Adam(self.optimizer_lr)


def _same(x):
    return x


def _heads(encoder):
    """The builder encoder up to `[mu, logvar]`: no KL layer, no sampling."""
    return keras.Model(
        encoder.input,
        [encoder.get_layer("mu").output, encoder.get_layer("logvar").output],
        name="heads",
    )


def _without_kl_layer(setting, encoder):
    """The builder encoder rebuilt with `kl_layer=False`, same weights."""
    plain, _ = build_conv_encoder_decoder(**setting.kwargs, seed=setting.seed,
                                          kl_layer=False)
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(encoder.get_layer(layer.name).get_weights())
    return plain


def _compiled_variant(name, model, setting, loss, samplers=(), y_fn=_same,
                      **compile_kwargs):
    """A model trained by Keras' own `train_step` on `(x, y_fn(x))`; its
    parity loss is exactly what that `train_step` computes."""
    model.compile(optimizer=setting.adam(), loss=loss, **compile_kwargs)

    def loss_fn(x):
        y_pred = model(x, training=True)
        return model.compute_loss(x=x, y=y_fn(x), y_pred=y_pred,
                                  sample_weight=None, training=True)

    return Variant(name, model, lambda x: (x, y_fn(x)), loss_fn, samplers)


def _sampled_heads(encoder, decoder, setting):
    """`x -> [x_hat, mu, logvar]` with a fresh `SamplingLayer` on the
    builder's heads; returns `(x, outputs, sampler)`."""
    heads = _heads(encoder)
    x = keras.Input(setting.input_shape)
    mu, logvar = heads(x)
    sampler = SamplingLayer(seed=setting.seed, name="z_sampling")
    x_hat = decoder(sampler([mu, logvar]))
    return x, [x_hat, mu, logvar], sampler


def _vae_model_variant(name, encoder, decoder, setting, sampler=None):
    """`VAEModel` on `encoder`; `sampler` defaults to the model's own."""
    model = VAEModel(encoder, decoder, beta=setting.beta, seed=setting.seed,
                     name=name)
    model.build((None,) + setting.input_shape)
    model.compile(optimizer=setting.adam())

    def vae_loss(x):
        return model.compute_loss_terms(x, training=True)["total_loss"]

    return Variant(name, model, _same, vae_loss,
                   [model.sampler if sampler is None else sampler])


def _build_ae(encoder, decoder, setting):
    inner = keras.Model(encoder.input, encoder.get_layer("mu").output,
                        name="ae_encoder")
    x = keras.Input(setting.input_shape)
    model = keras.Model(x, decoder(inner(x)), name="ae")
    return _compiled_variant("ae", model, setting, ReconstructionLoss("bce"))


def _build_kl_layer(encoder, decoder, setting):
    x = keras.Input(setting.input_shape)
    z, _, _ = encoder(x)
    model = keras.Model(x, decoder(z), name="kl_layer")
    return _compiled_variant("kl_layer", model, setting,
                             ReconstructionLoss("bce"),
                             [encoder.get_layer("z")])


def _build_multi_output(encoder, decoder, setting):
    x, outputs, sampler = _sampled_heads(encoder, decoder, setting)
    model = keras.Model(x, outputs, name="multi_output")

    def targets(x):
        zeros = ops.zeros((ops.shape(x)[0], setting.z_dim), dtype="float32")
        return (x, zeros, zeros)

    # Module attributes read at build time, so a test can break one half.
    return _compiled_variant(
        "multi_output", model, setting,
        [ReconstructionLoss("bce"), kl_mu_part, kl_logvar_part], [sampler],
        y_fn=targets, loss_weights=[1.0, setting.beta, setting.beta])


def _build_compute_loss(encoder, decoder, setting):
    x, outputs, sampler = _sampled_heads(encoder, decoder, setting)
    model = ComputeLossVAE(x, outputs, beta=setting.beta,
                           name="compute_loss")
    return _compiled_variant("compute_loss", model, setting,
                             ReconstructionLoss("bce"), [sampler])


def _build_train_step(encoder, decoder, setting):
    # VAEModel owns the KL term: the same encoder without the layer.
    plain = _without_kl_layer(setting, encoder)
    return _vae_model_variant("train_step", plain, decoder, setting,
                              plain.get_layer("z"))


def _build_train_step_2out(encoder, decoder, setting):
    # VAEModel samples z itself (same seed) from [mu, logvar].
    return _vae_model_variant("train_step_2out", _heads(encoder), decoder,
                              setting)


def _build_reference(encoder, decoder, setting):
    heads = _heads(encoder)
    inp = keras.Input(setting.input_shape)
    z_mean, z_log_var = heads(inp)
    sampler = ReferenceSampling(seed=setting.seed, name="sampling")
    z = sampler([z_mean, z_log_var])
    ref_encoder = keras.Model(inp, [z_mean, z_log_var, z], name="encoder")
    model = ReferenceVAE(ref_encoder, decoder, reco_scale=setting.channels,
                         name="reference")
    model.compile(optimizer=setting.adam())
    return Variant("reference", model, _same,
                   lambda x: model.example_losses(x)[0], [sampler])


_BUILDERS = {
    "ae": _build_ae,
    "kl_layer": _build_kl_layer,
    "multi_output": _build_multi_output,
    "compute_loss": _build_compute_loss,
    "train_step": _build_train_step,
    "reference": _build_reference,
    "train_step_2out": _build_train_step_2out,
}


def build_variants(kwargs, names, beta=1.0, seed=0, optimizer_lr=1e-3):
    """Builds the requested variants with identical initial weights.

    Args:
        kwargs: `build_conv_encoder_decoder` arguments (without `seed`).
        names: Variants to build, from `VARIANTS`.
        beta: KL weight of every variant.
        seed: Seed of the weights and of every sampling layer.
        optimizer_lr: Learning rate of each model's `Adam`.

    Returns:
        Dict `name -> Variant`, every model compiled with `Adam(lr)`.
    """
    unknown = [name for name in names if name not in _BUILDERS]
    if unknown:
        raise ValueError(
            f"unknown variant {unknown[0]!r}; expected one of {VARIANTS}"
        )
    keras.utils.set_random_seed(seed)
    base_enc, base_dec = build_conv_encoder_decoder(**kwargs, seed=seed)
    weights = (base_enc.get_weights(), base_dec.get_weights())
    setting = _Setting(kwargs, beta, seed, optimizer_lr)
    variants = {}
    for name in names:
        encoder, decoder = build_conv_encoder_decoder(**kwargs, seed=seed)
        encoder.set_weights(weights[0])
        decoder.set_weights(weights[1])
        encoder.get_layer("kl_divergence").beta.assign(beta)
        variants[name] = _BUILDERS[name](encoder, decoder, setting)
    return variants
