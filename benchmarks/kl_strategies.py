"""Compare the four ways of adding the KL term to a Keras 3 VAE (+ baselines).

Builds the **same** conv VAE (one `build_conv_encoder_decoder` call; every
variant gets a fresh copy of its layers with the same initial weights) in
each of these ways (docs/design.md, "Four ways to add the KL term, and what
they cost"):

* `kl_layer`     -- `KLDivergenceLayer` inside the encoder (`add_loss` in
  `call`), functional model compiled with `ReconstructionLoss("bce")`.
* `multi_output` -- `mu` and `logvar` as extra model outputs with compiled
  per-output losses `0.5 * sum(mu^2)` and `0.5 * sum(exp(lv) - 1 - lv)`
  (weights `[1, beta, beta]`); their sum is exactly the KL term.
* `compute_loss` -- a functional `keras.Model` subclass with outputs
  `[x_hat, mu, logvar]` that overrides `compute_loss` (compiled
  reconstruction loss + `beta * KL`): the Keras 3 stand-in for the removed
  symbolic `model.add_loss()`.
* `train_step`   -- the package's `VAEModel` (custom `train_step` with
  `tf.GradientTape`) on the builder's encoder/decoder.

and two baselines:

* `ae`        -- plain autoencoder: the same conv stack with a single Dense
  latent (the `mu` head), the same decoder, `ReconstructionLoss("bce")`.
  It does strictly less work than any VAE: the speed floor.
* `reference` -- a VAE written the way the official Keras example
  (keras-io `examples/generative/vae.py`) writes it: a `Sampling` layer with
  its own `SeedGenerator`, encoder/decoder models, a `VAE(keras.Model)` with
  a custom `train_step` (`GradientTape`) and the example's reductions
  (`mean(sum(binary_crossentropy(x, x_hat), axis=(1, 2)))` and
  `mean(sum(kl, axis=1))`). Two adaptations, both documented in the README:
  the sub-models are called with `training=True` (the example has no
  BatchNormalization; without it BN layers would run in inference mode), and
  for `C > 1` channels the reconstruction is multiplied by `C`, because
  `keras.losses.binary_crossentropy` averages the channel axis
  ("matching reductions"; a no-op for the example's 1-channel digits).

Opt-in (`--variants ...,train_step_2out`): `train_step_2out`, `VAEModel` on
a two-output `[mu, logvar]` encoder (it samples `z` itself), i.e. without
the builder encoder's `KLDivergenceLayer` (which skips its work while
`VAEModel` runs it): it checks that the layer costs `train_step` nothing.

Parts (all by default, pick with `--parts`):

1. `parity` -- on one fixed batch, with identical weights, each variant's
   total loss and gradients (computed the way its training computes them,
   in a `tf.function`) are compared with `train_step` (`VAEModel`):
   relative difference `<= --tolerance` (1e-5) for the loss and for every
   gradients (the largest `|g - g_ref|` over all variables divided by the
   largest `|g_ref|` entry of the model; the same ratio per variable is
   reported too, see `_compare`). Once with deterministic sampling (`z = mu`),
   once stochastic with the same seed (every sampling layer is fresh with
   the same seed, so the draws are identical). `ae` is checked against
   `VAEModel`'s reconstruction term with `z = mu` on the shared variables.
   A PASS/FAIL line per variant; any FAIL makes the exit status 1.
2. `speed` -- every variant is compiled with `Adam(1e-3)` and warmed up,
   then timed interleaved (`A B C ... A B C ...`) for `--rounds` rounds of
   `--steps` training steps each, on a fixed in-memory batch (a repeated
   `tf.data` dataset, so no input pipeline cost). `--timing train_function`
   (default) calls the compiled `model.train_function(iterator)` directly,
   exactly what `fit()` calls per step, without `fit()`'s per-call set-up
   (iterator, callbacks); `--timing fit` times `model.fit(...,
   steps_per_epoch=steps)` instead. Reports ms/step per round, min, median
   and the ratio to `ae` (per round, of the mins and of the medians).
3. `switch` -- inference-time switching of sampling on/off (see
   `benchmarks/inference_switch.py`).
4. `params` -- encoder parameter counts with and without an intermediate
   Dense layer (see `benchmarks/encoder_params.py`).

Outputs in `--out` (default `benchmarks/results/`), written atomically:
`kl_strategies.json`, `kl_strategies.md` and, with matplotlib installed and
no `--no-plot`, `kl_strategies.png`.

Usage:

    python benchmarks/kl_strategies.py                     # full run
    python benchmarks/kl_strategies.py --quick             # a minute or two
    python benchmarks/kl_strategies.py --shapes digits,faces96 \
        --batch-size 64 --rounds 7 --steps 50 --variants ae,kl_layer,train_step
    python benchmarks/kl_strategies.py --parts parity      # parity only

Exit status: 0 when every parity check passes (or parity was not run),
1 on any parity FAIL, 2 on bad arguments. Speed targets never affect the
exit status: timings are machine- and load-dependent.
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

import encoder_params as encoder_params_bench  # noqa: E402
import inference_switch as switch_bench  # noqa: E402
import keras_vae_layers  # noqa: E402
from keras_vae_layers import ReconstructionLoss  # noqa: E402
from keras_vae_layers import SamplingLayer  # noqa: E402
from keras_vae_layers import VAEModel  # noqa: E402
from keras_vae_layers import build_conv_encoder_decoder  # noqa: E402
from keras_vae_layers import losses as vae_losses  # noqa: E402
from keras_vae_layers.io import atomic_path  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402

VARIANTS = ("ae", "kl_layer", "multi_output", "compute_loss", "train_step",
            "reference", "train_step_2out")
"""Every variant, in timing order (`ae` first: the ratios' denominator)."""

DEFAULT_VARIANTS = VARIANTS[:6]
"""The variants run by default; `train_step_2out` (VAEModel on a two-output
`[mu, logvar]` encoder, without the builder's KL and sampling layers) is
opt-in: it measures what the builder encoder's KL layer costs `VAEModel`."""

SHIPPED = ("kl_layer", "multi_output", "compute_loss", "train_step")
"""The four strategies the package ships (the 1.05x-of-`ae` target)."""

PARTS = ("parity", "speed", "switch", "params")

SHAPES = {
    # MNIST-like, the conv stack of the Keras example (28 -> 14 -> 7 -> 28).
    # ReLU as in the example (with leaky_relu and no BN, TF's grappler
    # remapper fails on the `ae` graph -- "remapper failed: ... LeakyReluGrad
    # ... missing node BiasAdd" -- and runs it unfused, skewing the ratios).
    "digits": dict(input_shape=(28, 28, 1), encoder_filters=(32, 64),
                   encoder_strides=2, decoder_filters=(64, 32, 1),
                   decoder_strides=(2, 2, 1), batch_norm=False, z_dim=16,
                   activation="relu"),
    # CelebA-like faces: four stride-2 convs with BatchNormalization.
    "faces": dict(input_shape=(64, 64, 3),
                  encoder_filters=(32, 64, 128, 256), encoder_strides=2,
                  decoder_filters=(128, 64, 32, 3), decoder_strides=2,
                  batch_norm=True, z_dim=128),
    "faces96": dict(input_shape=(96, 96, 3),
                    encoder_filters=(32, 64, 128, 256), encoder_strides=2,
                    decoder_filters=(128, 64, 32, 3), decoder_strides=2,
                    batch_norm=True, z_dim=256),
    # Tiny shapes for smoke tests (seconds, not minutes).
    "tiny-digits": dict(input_shape=(16, 16, 1), encoder_filters=(4, 8),
                        encoder_strides=2, decoder_filters=(8, 4, 1),
                        decoder_strides=(2, 2, 1), batch_norm=False, z_dim=4,
                        activation="relu"),
    "tiny-faces": dict(input_shape=(16, 16, 3), encoder_filters=(4, 8),
                       encoder_strides=2, decoder_filters=(4, 3),
                       decoder_strides=2, batch_norm=True, z_dim=4),
}

DEFAULTS = dict(shapes="digits,faces", batch_size=32, rounds=11, steps=20,
                warmup_steps=5, switch_repeats=5)
QUICK = dict(shapes="digits,faces", batch_size=16, rounds=2, steps=5,
             warmup_steps=2, switch_repeats=2)

TARGET_RATIO_TO_AE = 1.05
TARGET_SWITCH_MS = 1.0


_T0 = time.perf_counter()


def log(*args):
    """Progress line, prefixed with the seconds since the module loaded."""
    print(f"[{time.perf_counter() - _T0:7.1f}s]", *args, flush=True)


def build_kwargs(spec, z_dim, intermediate_dim=None):
    """`build_conv_encoder_decoder` arguments for a `SHAPES` entry."""
    return dict(
        input_shape=spec["input_shape"], z_dim=int(z_dim),
        encoder_filters=spec["encoder_filters"], encoder_kernel_sizes=3,
        encoder_strides=spec["encoder_strides"],
        decoder_filters=spec["decoder_filters"], decoder_kernel_sizes=3,
        decoder_strides=spec["decoder_strides"],
        batch_norm=spec["batch_norm"], intermediate_dim=intermediate_dim,
        activation=spec.get("activation", "leaky_relu"),
    )


# ----------------------------------------------------------------------------
# The variants
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

    Adaptations (see the module docstring): `training=True` for the
    sub-models, and the reconstruction times `reco_scale` (the number of
    channels) to undo the channel mean of `binary_crossentropy`.
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


def _fresh_parts(kwargs, seed, weights):
    """A new builder encoder/decoder pair holding `weights`."""
    encoder, decoder = build_conv_encoder_decoder(**kwargs, seed=seed)
    encoder.set_weights(weights[0])
    decoder.set_weights(weights[1])
    return encoder, decoder


def _without_kl_layer(kwargs, seed, encoder):
    """The builder encoder rebuilt with `kl_layer=False`, same weights."""
    plain, _ = build_conv_encoder_decoder(**kwargs, seed=seed,
                                          kl_layer=False)
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(encoder.get_layer(layer.name).get_weights())
    return plain


def _heads(encoder):
    """The builder encoder up to `[mu, logvar]`: no KL layer, no sampling."""
    return keras.Model(
        encoder.input,
        [encoder.get_layer("mu").output, encoder.get_layer("logvar").output],
        name="heads",
    )


def _compiled_loss_fn(model, y_fn):
    """The loss exactly as Keras' own `train_step` computes it."""
    def loss_fn(x):
        y_pred = model(x, training=True)
        return model.compute_loss(x=x, y=y_fn(x), y_pred=y_pred,
                                  sample_weight=None, training=True)
    return loss_fn


def build_variants(kwargs, names, beta=1.0, seed=0, optimizer_lr=1e-3):
    """Builds the requested variants with identical initial weights.

    Returns:
        Dict `name -> Variant`, every model compiled with `Adam(lr)`.
    """
    keras.utils.set_random_seed(seed)
    base_enc, base_dec = build_conv_encoder_decoder(**kwargs, seed=seed)
    weights = (base_enc.get_weights(), base_dec.get_weights())
    channels = int(kwargs["input_shape"][-1])
    z_dim = int(kwargs["z_dim"])
    input_shape = tuple(kwargs["input_shape"])
    variants = {}

    def adam():
        return keras.optimizers.Adam(optimizer_lr)

    def same(x):
        return x

    for name in names:
        enc, dec = _fresh_parts(kwargs, seed, weights)
        enc.get_layer("kl_divergence").beta.assign(beta)
        if name == "ae":
            inner = keras.Model(enc.input, enc.get_layer("mu").output,
                                name="ae_encoder")
            x = keras.Input(input_shape)
            model = keras.Model(x, dec(inner(x)), name="ae")
            model.compile(optimizer=adam(), loss=ReconstructionLoss("bce"))
            v = Variant(name, model, lambda x: (x, x),
                        _compiled_loss_fn(model, same))
        elif name == "kl_layer":
            x = keras.Input(input_shape)
            z, _, _ = enc(x)
            model = keras.Model(x, dec(z), name="kl_layer")
            model.compile(optimizer=adam(), loss=ReconstructionLoss("bce"))
            v = Variant(name, model, lambda x: (x, x),
                        _compiled_loss_fn(model, same),
                        [enc.get_layer("z")])
        elif name == "multi_output":
            heads = _heads(enc)
            x = keras.Input(input_shape)
            mu, logvar = heads(x)
            sampler = SamplingLayer(seed=seed, name="z_sampling")
            x_hat = dec(sampler([mu, logvar]))
            model = keras.Model(x, [x_hat, mu, logvar], name="multi_output")
            model.compile(
                optimizer=adam(),
                loss=[ReconstructionLoss("bce"), kl_mu_part, kl_logvar_part],
                loss_weights=[1.0, beta, beta],
            )

            def mo_targets(x, _z=z_dim):
                zeros = ops.zeros((ops.shape(x)[0], _z), dtype="float32")
                return (x, zeros, zeros)

            v = Variant(name, model, lambda x, f=mo_targets: (x, f(x)),
                        _compiled_loss_fn(model, mo_targets), [sampler])
        elif name == "compute_loss":
            heads = _heads(enc)
            x = keras.Input(input_shape)
            mu, logvar = heads(x)
            sampler = SamplingLayer(seed=seed, name="z_sampling")
            x_hat = dec(sampler([mu, logvar]))
            model = ComputeLossVAE(x, [x_hat, mu, logvar], beta=beta,
                                   name="compute_loss")
            model.compile(optimizer=adam(), loss=ReconstructionLoss("bce"))
            v = Variant(name, model, lambda x: (x, x),
                        _compiled_loss_fn(model, same), [sampler])
        elif name == "train_step":
            # VAEModel owns the KL term: the same encoder without the layer.
            enc = _without_kl_layer(kwargs, seed, enc)
            model = VAEModel(enc, dec, beta=beta, seed=seed,
                             name="train_step")
            model.build((None,) + input_shape)
            model.compile(optimizer=adam())

            def vae_loss(x, m=model):
                return m.compute_loss_terms(x, training=True)["total_loss"]

            v = Variant(name, model, lambda x: x, vae_loss,
                        [enc.get_layer("z")])
        elif name == "train_step_2out":
            # VAEModel samples z itself (same seed) from [mu, logvar].
            model = VAEModel(_heads(enc), dec, beta=beta, seed=seed,
                             name="train_step_2out")
            model.build((None,) + input_shape)
            model.compile(optimizer=adam())

            def vae2_loss(x, m=model):
                return m.compute_loss_terms(x, training=True)["total_loss"]

            v = Variant(name, model, lambda x: x, vae2_loss, [model.sampler])
        elif name == "reference":
            heads = _heads(enc)
            inp = keras.Input(input_shape)
            z_mean, z_log_var = heads(inp)
            sampler = ReferenceSampling(seed=seed, name="sampling")
            z = sampler([z_mean, z_log_var])
            ref_encoder = keras.Model(inp, [z_mean, z_log_var, z],
                                      name="encoder")
            model = ReferenceVAE(ref_encoder, dec, reco_scale=channels,
                                 name="reference")
            model.compile(optimizer=adam())

            def ref_loss(x, m=model):
                return m.example_losses(x)[0]

            v = Variant(name, model, lambda x: x, ref_loss, [sampler])
        else:
            raise ValueError(
                f"unknown variant {name!r}; expected one of {VARIANTS}"
            )
        variants[name] = v
    return variants


# ----------------------------------------------------------------------------
# Parity
# ----------------------------------------------------------------------------


def _weight_key(variable):
    # "<layer>/<variable>": builder layer names are unique across the
    # encoder and the decoder, and every variant reuses them.
    return "/".join(variable.path.split("/")[-2:])


def loss_and_grads(variant, x, loss_fn=None):
    """Loss and `{weight key: gradient}` in one traced call, like training.

    The traced function is kept on the variant and reused, so the
    deterministic and the stochastic check share one trace -- except for
    the reference, whose Python-attribute switch needs a fresh trace (the
    very pitfall of docs/design.md, "Inference-time switches live in
    variables").
    """
    model = variant.model
    weights = model.trainable_weights
    keys = [_weight_key(w) for w in weights]
    if len(set(keys)) != len(keys):
        raise RuntimeError(f"{variant.name}: duplicate weight keys {keys}")
    cache = variant.__dict__.setdefault("_traced", {})
    key = (id(loss_fn), tuple(getattr(s, "parity_deterministic", None)
                              for s in variant.samplers))
    step = cache.get(key)
    if step is None:
        fn = loss_fn or variant.loss_fn

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                loss = fn(x)
            return loss, tape.gradient(loss, weights)

        cache[key] = step
    loss, grads = step(x)
    return float(loss), {
        k: (None if g is None else ops.convert_to_numpy(g))
        for k, g in zip(keys, grads)
    }


ZERO_GRADIENT_FLOOR = 1e-5
"""A reference gradient whose largest entry is below this fraction of the
model's largest gradient entry is numerically zero (e.g. the bias of a layer
followed by BatchNormalization, whose exact gradient is 0: BN removes any
per-channel constant); its entries are pure float32 round-off."""


def _compare(loss, grads, ref_loss, ref_grads, tolerance, keys=None):
    """Relative loss and gradient differences of a variant vs. reference.

    `grad_rel_diff` (the pass criterion) is the largest `|g - g_ref|` over
    all variables divided by the largest `|g_ref|` entry of the model: the
    gradient scale the optimizer sees. `grad_rel_diff_per_variable` divides
    by each variable's own largest entry instead (numerically zero
    gradients left out); it is reported, not tested, because float32
    summation order alone moves it to ~1e-5 for gradients that are large
    sums with cancellation (e.g. a first-layer BatchNormalization `gamma`,
    a sum over batch x height x width positions).
    """
    loss_rel = abs(loss - ref_loss) / max(abs(ref_loss), 1e-12)
    keys = sorted(ref_grads) if keys is None else keys
    global_scale = max(
        (float(np.max(np.abs(ref_grads[k]))) for k in keys
         if ref_grads.get(k) is not None), default=0.0
    ) or 1.0
    worst = worst_var = 0.0
    worst_key = worst_var_key = None
    missing, zero_vars = [], []
    for k in keys:
        g, r = grads.get(k), ref_grads.get(k)
        if g is None or r is None:
            missing.append(k)
            continue
        diff = float(np.max(np.abs(g - r)))
        if diff / global_scale > worst:
            worst, worst_key = diff / global_scale, k
        scale = float(np.max(np.abs(r)))
        if scale <= ZERO_GRADIENT_FLOOR * global_scale:
            zero_vars.append(k)
        elif diff / scale > worst_var:
            worst_var, worst_var_key = diff / scale, k
    return {
        "loss": loss,
        "reference_loss": ref_loss,
        "loss_rel_diff": loss_rel,
        "grad_rel_diff": worst,
        "worst_variable": worst_key,
        "grad_rel_diff_per_variable": worst_var,
        "worst_variable_per_variable": worst_var_key,
        "numerically_zero_gradients": zero_vars,
        "missing_gradients": missing,
        "pass": bool(loss_rel <= tolerance and worst <= tolerance
                     and not missing),
    }


def run_parity(variants, x, tolerance=1e-5, seed=0):
    """Loss/gradient parity of every variant against `train_step`.

    Returns:
        `{variant: {"deterministic": {...}, "stochastic": {...}}}`; `ae`
        has `"deterministic"` only (it has no sampling) and a `"note"`.
    """
    ref = variants["train_step"]
    results = {name: {} for name in variants if name != "train_step"}
    x = tf.convert_to_tensor(x)

    def check_states(mode):
        states = {n: v.seed_states() for n, v in variants.items()
                  if v.samplers}
        distinct = {json.dumps(s) for s in states.values()}
        if len(distinct) > 1:
            raise RuntimeError(
                f"parity ({mode}): sampling seed states differ before the "
                f"check: {states}"
            )

    # -- deterministic: z = mu (every sampler still draws once). --------
    for v in variants.values():
        v.set_deterministic(True)
    check_states("deterministic")
    ref_states = ref.seed_states()
    reco_loss, reco_grads = loss_and_grads(
        ref, x, lambda x: ref.model.compute_loss_terms(
            x, training=True)["reco_loss"]
    )
    ref.restore_seed_states(ref_states)  # that extra pass drew once more
    ref_loss, ref_grads = loss_and_grads(ref, x)
    for name, v in variants.items():
        if name == "train_step":
            continue
        loss, grads = loss_and_grads(v, x)
        if name == "ae":
            common = sorted(set(grads) & set(reco_grads))
            results[name]["deterministic"] = _compare(
                loss, grads, reco_loss, reco_grads, tolerance, keys=common
            )
            results[name]["note"] = (
                "no sampling and no KL: compared with VAEModel's "
                "reconstruction term with z = mu, on the shared variables "
                "(all but the logvar head)"
            )
        else:
            results[name]["deterministic"] = _compare(
                loss, grads, ref_loss, ref_grads, tolerance
            )
    # Every sampler drew exactly once above (the extra reconstruction pass
    # of `train_step` was rewound), so the generators are still in step;
    # check_states verifies it.
    for v in variants.values():
        v.set_deterministic(False)
    check_states("stochastic")

    # -- stochastic: the same seed and the same number of draws. --------
    gen_states = [v.seed_states() for v in variants.values() if v.samplers]
    ref_loss, ref_grads = loss_and_grads(ref, x)
    for name, v in variants.items():
        if name in ("train_step", "ae"):
            continue
        loss, grads = loss_and_grads(v, x)
        results[name]["stochastic"] = _compare(
            loss, grads, ref_loss, ref_grads, tolerance
        )
    # The clamp |eps| <= 5 of our layers is the only designed difference
    # from the reference: record the largest |eps| of the stochastic draw.
    if gen_states:
        # Replay the draw: a generator in the state the samplers had.
        gen = keras.random.SeedGenerator(seed)
        gen.state.assign(np.asarray(gen_states[0][0], dtype=gen.state.dtype))
        eps = keras.random.normal(
            (int(x.shape[0]), ref.model.z_dim), seed=gen
        )
        max_eps = float(np.max(np.abs(ops.convert_to_numpy(eps))))
        for name, r in results.items():
            if "stochastic" in r:
                r["stochastic"]["max_abs_eps"] = max_eps
    return results


# ----------------------------------------------------------------------------
# Speed
# ----------------------------------------------------------------------------


def _dataset(variant, x):
    data = variant.data_fn(tf.convert_to_tensor(x))
    return tf.data.Dataset.from_tensors(data).repeat()


def _sync(logs):
    # Fetch one value: the step has finished once its outputs exist.
    for value in logs.values():
        ops.convert_to_numpy(value)
        break


def warm_up(variant, x, steps, timing):
    """Builds, traces and runs a few steps so the timed rounds trace nothing.
    """
    model = variant.model
    ds = _dataset(variant, x)
    model.fit(ds, epochs=1, steps_per_epoch=max(1, steps), verbose=0,
              shuffle=False)
    variant.dataset = ds
    if timing == "train_function":
        variant.iterator = iter(ds)
        for _ in range(max(1, steps)):
            logs = model.train_function(variant.iterator)
        _sync(logs)


def time_steps(variant, steps, timing):
    """Wall and process-CPU ms per training step over `steps` steps."""
    model = variant.model
    if timing == "train_function":
        fn, iterator = model.train_function, variant.iterator
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            logs = fn(iterator)
        _sync(logs)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        c0, t0 = time.process_time(), time.perf_counter()
        model.fit(variant.dataset, epochs=1, steps_per_epoch=steps,
                  verbose=0, shuffle=False)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return 1e3 * elapsed / steps, 1e3 * cpu / steps


def _summary(per_round, base=None):
    entry = {
        "ms_per_step": per_round,
        "min": min(per_round),
        "median": statistics.median(per_round),
    }
    if base:
        ratios = [a / b for a, b in zip(per_round, base)]
        entry.update({
            "ratios": ratios,
            "ratio_to_ae_min": min(per_round) / min(base),
            "ratio_to_ae_median": statistics.median(per_round)
            / statistics.median(base),
            "median_of_round_ratios": statistics.median(ratios),
        })
    return entry


_BOOKKEEPING_OPS = frozenset(("Const", "Identity", "NoOp", "Placeholder"))


def count_step_ops(variant, x):
    """Ops in one traced training step (before grappler), a noise-free
    measure of per-step overhead: `{"total": n, "compute": n}` where
    `compute` leaves out Const/Identity/NoOp/Placeholder nodes.

    Traces `model.train_step` once more in a throw-away `tf.function`
    (nothing runs); call it after `warm_up`, when every variable exists.
    """
    data = variant.data_fn(tf.convert_to_tensor(x))
    graph_def = tf.function(variant.model.train_step).get_concrete_function(
        data).graph.as_graph_def()
    ops_ = [n.op for n in graph_def.node]
    for fn in graph_def.library.function:
        ops_.extend(n.op for n in fn.node_def)
    return {
        "total": len(ops_),
        "compute": sum(op not in _BOOKKEEPING_OPS for op in ops_),
    }


def run_speed(variants, x, rounds, steps, warmup_steps, timing,
              shape_name=""):
    """Interleaved timing; returns `{variant: {...}}` for one shape.

    Each entry holds the wall-clock figures (`ms_per_step` per round,
    `min`, `median`, `ratios` to `ae` per round, `ratio_to_ae_min`,
    `ratio_to_ae_median`, `median_of_round_ratios`) and the same for the
    process CPU time under `"cpu"` (all threads; on a machine shared with
    other jobs it is much less disturbed by them than wall time).
    """
    names = list(variants)
    for name in names:
        t0 = time.perf_counter()
        warm_up(variants[name], x, warmup_steps, timing)
        log(f"  [{shape_name}] warmed up {name} "
            f"({time.perf_counter() - t0:.1f} s)")
    graph_ops = {name: count_step_ops(variants[name], x) for name in names}
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(rounds):
        for name in names:
            w, c = time_steps(variants[name], steps, timing)
            wall[name].append(w)
            cpu[name].append(c)
        line = "  ".join(f"{n} {wall[n][-1]:.1f}" for n in names)
        log(f"  [{shape_name}] round {r + 1}/{rounds} ms/step: {line}")
    out = {}
    for name in names:
        entry = _summary(wall[name], wall.get("ae"))
        entry["cpu"] = _summary(cpu[name], cpu.get("ae"))
        entry["step_graph_ops"] = graph_ops[name]
        entry["trainable_variables"] = len(
            variants[name].model.trainable_weights)
        entry["jit_compile"] = bool(variants[name].model.jit_compile)
        out[name] = entry
    return out


# ----------------------------------------------------------------------------
# Targets and reports
# ----------------------------------------------------------------------------


def evaluate_targets(report):
    """The issue's targets, each `{"met": bool, "detail": str}`."""
    targets = {}
    for shape, res in report.get("speed", {}).items():
        if "ae" not in res:
            continue
        for name in SHIPPED:
            if name in res:
                ratio = res[name]["ratio_to_ae_min"]
                targets[f"{shape}: {name} <= {TARGET_RATIO_TO_AE}x ae"] = {
                    "met": ratio <= TARGET_RATIO_TO_AE,
                    "detail": f"{ratio:.3f}x (min over rounds); median "
                              f"{res[name]['ratio_to_ae_median']:.3f}x; "
                              f"CPU time "
                              f"{res[name]['cpu']['ratio_to_ae_min']:.3f}x",
                }
        if "train_step" in res and "reference" in res:
            ratio = res["train_step"]["min"] / res["reference"]["min"]
            med = res["train_step"]["median"] / res["reference"]["median"]
            cpu = (res["train_step"]["cpu"]["min"]
                   / res["reference"]["cpu"]["min"])
            targets[f"{shape}: train_step no slower than reference"] = {
                "met": ratio <= 1.0,
                "detail": f"{ratio:.3f}x (min over rounds); median "
                          f"{med:.3f}x; CPU time {cpu:.3f}x",
            }
    for shape, res in report.get("switch", {}).items():
        m = res["methods"]["eps_factor_assign"]
        targets[f"{shape}: sampling switch < {TARGET_SWITCH_MS} ms, "
                f"0 retraces"] = {
            "met": (m["switch_ms"]["median"] < TARGET_SWITCH_MS
                    and m["retraces_total"] == 0 and m["honoured"]),
            "detail": f"{m['switch_ms']['median'] * 1e3:.0f} us median, "
                      f"{m['retraces_total']} retraces, honoured: "
                      f"{m['honoured']}",
        }
    return targets


def markdown_report(report):
    meta = report["meta"]
    lines = [
        "# KL strategies benchmark",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}, {meta['cpu_count']} CPUs, "
        f"devices: {', '.join(meta['devices'])}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in
                                    meta["versions"].items()),
        f"- flags: `{json.dumps(meta['flags'], sort_keys=True)}`",
        f"- load average (1 min) at start / end: {meta['loadavg_start']} / "
        f"{meta.get('loadavg_end')}",
        "",
    ]
    if "parity" in report:
        tol = meta["flags"]["tolerance"]
        lines += [
            "## Parity with `train_step` (VAEModel)",
            "",
            f"Relative differences on one fixed batch, same weights; "
            f"pass when all are <= {tol:g}. Gradient columns: the largest "
            f"`|g - g_ref|` over all variables divided by the model's "
            f"largest `|g_ref|` entry; `per var.`: the largest ratio to each "
            f"variable's own largest entry (information only: float32 "
            f"summation order alone moves it towards 1e-5 for big sums "
            f"with cancellation such as a first-layer BN `gamma`; "
            f"numerically zero gradients, e.g. biases followed by "
            f"BatchNormalization, left out).",
            "",
        ]
        for shape, parity in report["parity"].items():
            lines += [
                f"### {shape}",
                "",
                "| variant | det. loss | det. grads | det. grads per var. | "
                "stoch. loss | stoch. grads | stoch. grads per var. | "
                "result |",
                "|---|---:|---:|---:|---:|---:|---:|---|",
            ]
            for name, r in parity.items():
                det = r["deterministic"]
                sto = r.get("stochastic")
                ok = det["pass"] and (sto is None or sto["pass"])
                lines.append(
                    f"| {name} | {det['loss_rel_diff']:.1e} | "
                    f"{det['grad_rel_diff']:.1e} | "
                    f"{det['grad_rel_diff_per_variable']:.1e} | "
                    + (f"{sto['loss_rel_diff']:.1e} | "
                       f"{sto['grad_rel_diff']:.1e} | "
                       f"{sto['grad_rel_diff_per_variable']:.1e} | "
                       if sto else "n/a | n/a | n/a | ")
                    + ("PASS" if ok else "FAIL") + " |"
                )
            notes = [f"`{n}`: {r['note']}" for n, r in parity.items()
                     if "note" in r]
            eps = [r["stochastic"].get("max_abs_eps") for r in
                   parity.values() if "stochastic" in r]
            if eps and eps[0] is not None:
                notes.append(f"largest |eps| in the stochastic draw: "
                             f"{eps[0]:.2f} (our layers clamp at 5)")
            lines += [""] + [f"- {n}" for n in notes] + [""]
    if "speed" in report:
        flags = meta["flags"]
        lines += [
            "## Speed (ms per training step)",
            "",
            f"{flags['rounds']} interleaved rounds of {flags['steps']} "
            f"steps after {flags['warmup_steps']} warm-up steps, batch "
            f"{flags['batch_size']}, timing `{flags['timing']}`. Ratios are "
            f"to `ae` (the plain autoencoder, the speed floor): of the mins, "
            f"of the medians, and per round. Wall-clock ms unless marked "
            f"CPU: process CPU time (all threads) per step, which other "
            f"jobs on a shared machine disturb much less than wall time. "
            f"`step ops`: ops in the traced training step before grappler "
            f"(without Const/Identity/NoOp/Placeholder), a noise-free "
            f"measure of fixed per-step work.",
            "",
        ]
        for shape, res in report["speed"].items():
            cfg = report["shapes"][shape]
            lines += [
                f"### {shape} ({'x'.join(map(str, cfg['input_shape']))}, "
                f"z_dim {cfg['z_dim']})",
                "",
                "| variant | min | median | / ae (min) | / ae (median) | "
                "per-round / ae | CPU min | CPU / ae (min) | "
                "CPU / ae (median) | step ops |",
                "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
            ]
            nan = float("nan")
            for name, e in res.items():
                per = ", ".join(f"{r:.2f}" for r in e.get("ratios", []))
                c = e.get("cpu", {})
                lines.append(
                    f"| {name} | {e['min']:.2f} | {e['median']:.2f} | "
                    f"{e.get('ratio_to_ae_min', nan):.3f} | "
                    f"{e.get('ratio_to_ae_median', nan):.3f} | "
                    f"{per} | {c.get('min', nan):.2f} | "
                    f"{c.get('ratio_to_ae_min', nan):.3f} | "
                    f"{c.get('ratio_to_ae_median', nan):.3f} | "
                    f"{e.get('step_graph_ops', {}).get('compute', '')} |"
                )
            lines.append("")
    if "switch" in report:
        lines += [
            "## Switching sampling on/off at inference time",
            "",
            switch_bench.markdown_table(report["switch"]),
        ]
    if "encoder_params" in report:
        lines += [
            "## Encoder parameters with and without `intermediate_dim`",
            "",
            encoder_params_bench.markdown_table(report["encoder_params"]),
        ]
    if report.get("targets"):
        lines += ["## Targets", "", "| target | met | measured |",
                  "|---|---|---|"]
        for name, t in report["targets"].items():
            lines.append(f"| {name} | {'yes' if t['met'] else 'NO'} | "
                         f"{t['detail']} |")
        lines.append("")
    return "\n".join(lines)


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def plot_report(report, path):
    """Bar chart of ms/step (min, with the median as a marker) per shape.

    Returns the path written, or `None` when matplotlib is missing.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: skipping the PNG chart "
            "(pip install matplotlib, or the [plot] extra).")
        return None
    speed = report["speed"]
    fig, axes = plt.subplots(1, len(speed), figsize=(6 * len(speed), 4.2),
                             squeeze=False)
    for ax, (shape, res) in zip(axes[0], speed.items()):
        names = list(res)
        mins = [res[n]["min"] for n in names]
        meds = [res[n]["median"] for n in names]
        colors = ["0.6" if n in ("ae", "reference") else "C0" for n in names]
        bars = ax.bar(range(len(names)), mins, color=colors, label="min")
        ax.scatter(range(len(names)), meds, color="C3", zorder=3,
                   label="median")
        for bar, n in zip(bars, names):
            ratio = res[n].get("ratio_to_ae_min")
            if ratio is not None:
                ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width()
                                              / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        if "ae" in res:
            ax.axhline(res["ae"]["min"] * TARGET_RATIO_TO_AE, color="C2",
                       linestyle="--", linewidth=1,
                       label=f"{TARGET_RATIO_TO_AE}x ae (min)")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel("ms / training step")
        cfg = report["shapes"][shape]
        ax.set_title(f"{shape} {'x'.join(map(str, cfg['input_shape']))}, "
                     f"batch {report['meta']['flags']['batch_size']}")
        ax.set_ylim(0, max(mins + meds) * 1.25)
        ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------


def _csv(text):
    return [p.strip() for p in str(text).split(",") if p.strip()]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="kl_strategies.py",
        description="Parity and speed of the four ways of adding the KL "
                    "term to a Keras 3 VAE, against a plain autoencoder and "
                    "the official Keras example; plus the cost of "
                    "inference-time sampling switches and encoder "
                    "parameter counts.",
        epilog="Exit status: 1 on any parity FAIL, 2 on bad arguments. "
               "See benchmarks/README.md.",
    )
    parser.add_argument("--shapes", default=None,
                        help="comma-separated presets from "
                             f"{sorted(SHAPES)} (default "
                             f"{DEFAULTS['shapes']})")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"comma-separated subset of {list(VARIANTS)}; "
                             "`ae` and `train_step` are always added "
                             f"(default: {','.join(DEFAULT_VARIANTS)})")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated subset of {PARTS} (default: "
                             "all)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"default {DEFAULTS['batch_size']}")
    parser.add_argument("--z-dim", type=int, default=None,
                        help="latent size for every shape (default: the "
                             "preset's, digits 16, faces 128, faces96 256)")
    parser.add_argument("--intermediate-dim", type=int, default=None,
                        help="Dense layer between Flatten and the heads "
                             "(default: none)")
    parser.add_argument("--beta", type=float, default=1.0,
                        help="KL weight (default 1; the reference has none: "
                             "it is compared with VAEModel at beta=1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"timed rounds (default {DEFAULTS['rounds']})")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"training steps per round and variant "
                             f"(default {DEFAULTS['steps']})")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help=f"default {DEFAULTS['warmup_steps']}")
    parser.add_argument("--timing", choices=("train_function", "fit"),
                        default="train_function",
                        help="what is timed per round (default "
                             "train_function)")
    parser.add_argument("--switch-repeats", type=int, default=None,
                        help="switches timed per method (default "
                             f"{DEFAULTS['switch_repeats']})")
    parser.add_argument("--params-input-shape", default="96x96x3",
                        help="encoder-parameter table: HxWxC (default "
                             "96x96x3)")
    parser.add_argument("--params-z-dims", default="256,512",
                        help="encoder-parameter table (default 256,512)")
    parser.add_argument("--params-intermediate-dims", default="none,256,512",
                        help="encoder-parameter table, 'none' = no layer "
                             "(default none,256,512)")
    parser.add_argument("--params-filters", default="32,64,128,256",
                        help="encoder-parameter table (default "
                             "32,64,128,256)")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="parity: max relative difference (default "
                             "1e-5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="weights, data and sampling (default 0)")
    parser.add_argument("--out", default=os.path.join(_HERE, "results"),
                        help="output directory (default "
                             "benchmarks/results)")
    parser.add_argument("--no-plot", action="store_true",
                        help="do not write the PNG chart")
    parser.add_argument("--quick", action="store_true",
                        help="small settings for a quick look: "
                             + ", ".join(f"{k}={v}" for k, v in
                                         QUICK.items()))
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.shapes = _csv(args.shapes)
    unknown = [s for s in args.shapes if s not in SHAPES]
    if unknown or not args.shapes:
        parser.error(f"--shapes: unknown {unknown}; choose from "
                     f"{sorted(SHAPES)}")
    variants = _csv(args.variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from "
                     f"{list(VARIANTS)}")
    args.variants = [v for v in VARIANTS
                     if v in variants or v in ("ae", "train_step")]
    args.parts = _csv(args.parts)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown or not args.parts:
        parser.error(f"--parts: unknown {unknown}; choose from {PARTS}")
    for name in ("batch_size", "rounds", "steps", "switch_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup_steps < 1:
        parser.error("--warmup-steps must be >= 1")
    if not (args.beta >= 0 and math.isfinite(args.beta)):
        parser.error("--beta must be a finite number >= 0")
    return args


def _display_path(path):
    """`path` relative to the repository when inside it (no local prefix
    in committed reports), else as given."""
    root = os.path.dirname(_HERE)
    full = os.path.abspath(path)
    if os.path.commonpath([root, full]) == root:
        return os.path.relpath(full, root)
    return path


def _meta(args):
    try:
        loadavg = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        loadavg = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "keras_vae_layers": keras_vae_layers.__version__,
        },
        "machine": f"{platform.system()} {platform.machine()} "
                   f"({platform.processor() or 'unknown processor'})",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "devices": [d.device_type + ":" + d.name.split(":")[-1]
                    for d in tf.config.list_physical_devices()],
        "flags": dict(vars(args), out=_display_path(args.out)),
        "loadavg_start": loadavg,
    }


def main(argv=None):
    """Runs the benchmark; returns the exit status (1 on a parity FAIL)."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    report = {"meta": _meta(args), "shapes": {}}
    log(f"kl_strategies: shapes {args.shapes}, variants {args.variants}, "
        f"parts {args.parts}, batch {args.batch_size}, rounds "
        f"{args.rounds}, steps {args.steps}, timing {args.timing}")
    parity_ok = True
    rng = np.random.default_rng(args.seed)
    for shape in args.shapes:
        spec = SHAPES[shape]
        z_dim = args.z_dim or spec["z_dim"]
        kwargs = build_kwargs(spec, z_dim, args.intermediate_dim)
        report["shapes"][shape] = {
            "input_shape": list(spec["input_shape"]), "z_dim": z_dim,
            "encoder_filters": list(spec["encoder_filters"]),
            "decoder_filters": list(spec["decoder_filters"]),
            "batch_norm": spec["batch_norm"],
            "activation": kwargs["activation"],
            "intermediate_dim": args.intermediate_dim,
        }
        x = rng.uniform(size=(args.batch_size,) + spec["input_shape"])
        x = x.astype("float32")
        if "parity" in args.parts or "speed" in args.parts:
            keras.backend.clear_session()
            log(f"[{shape}] building {len(args.variants)} variants "
                f"({'x'.join(map(str, spec['input_shape']))}, z_dim "
                f"{z_dim})")
            variants = build_variants(kwargs, args.variants, args.beta,
                                      args.seed)
        if "parity" in args.parts:
            log(f"[{shape}] parity (tolerance {args.tolerance:g})")
            par_variants = dict(variants)
            if args.beta != 1.0 and "reference" in par_variants:
                # The example has no beta: check it at beta = 1 separately.
                ref_only = build_variants(kwargs, ["train_step", "reference"],
                                          1.0, args.seed)
                par_variants.pop("reference")
            parity = run_parity(par_variants, x, args.tolerance, args.seed)
            if args.beta != 1.0 and "reference" in variants:
                parity.update(run_parity(ref_only, x, args.tolerance,
                                         args.seed))
                parity["reference"]["note"] = "checked at beta = 1"
            report.setdefault("parity", {})[shape] = parity
            for name, r in parity.items():
                det = r["deterministic"]
                sto = r.get("stochastic")
                ok = det["pass"] and (sto is None or sto["pass"])
                parity_ok &= ok
                log(f"  {'PASS' if ok else 'FAIL'} {shape} {name}: "
                    f"deterministic loss {det['loss_rel_diff']:.1e} grads "
                    f"{det['grad_rel_diff']:.1e}"
                    + (f"; stochastic loss {sto['loss_rel_diff']:.1e} grads "
                       f"{sto['grad_rel_diff']:.1e}" if sto else
                       "; stochastic n/a"))
        if "speed" in args.parts:
            log(f"[{shape}] speed: warm-up {args.warmup_steps} steps, then "
                f"{args.rounds} rounds x {args.steps} steps")
            report.setdefault("speed", {})[shape] = run_speed(
                variants, x, args.rounds, args.steps, args.warmup_steps,
                args.timing, shape,
            )
        if "switch" in args.parts:
            log(f"[{shape}] inference-time sampling switch")
            keras.backend.clear_session()
            report.setdefault("switch", {})[shape] = (
                switch_bench.run_switch_benchmark(
                    build_kwargs(spec, z_dim, args.intermediate_dim),
                    args.batch_size, args.switch_repeats, seed=args.seed,
                    log=log,
                )
            )
        variants = None
    if "params" in args.parts:
        log("encoder parameter counts")
        report["encoder_params"] = encoder_params_bench.count_encoder_params(
            encoder_params_bench.parse_shape(args.params_input_shape),
            encoder_params_bench.parse_int_list(args.params_z_dims),
            encoder_params_bench.parse_int_list(
                args.params_intermediate_dims, allow_none=True),
            encoder_params_bench.parse_int_list(args.params_filters),
            log=log,
        )
    try:
        report["meta"]["loadavg_end"] = [round(v, 2)
                                         for v in os.getloadavg()]
    except OSError:
        report["meta"]["loadavg_end"] = None
    report["parity_pass"] = parity_ok if "parity" in args.parts else None
    report["targets"] = evaluate_targets(report)

    json_path = os.path.join(args.out, "kl_strategies.json")
    md_path = os.path.join(args.out, "kl_strategies.md")
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, markdown_report(report))
    log(f"wrote {json_path}")
    log(f"wrote {md_path}")
    if "speed" in report and not args.no_plot:
        png = plot_report(report, os.path.join(args.out, "kl_strategies.png"))
        if png:
            log(f"wrote {png}")
    for name, t in report["targets"].items():
        log(f"  target {'met   ' if t['met'] else 'MISSED'} {name}: "
            f"{t['detail']}")
    if "parity" in args.parts:
        log("parity: " + ("all PASS" if parity_ok else "FAIL"))
    return 0 if parity_ok else 1


if __name__ == "__main__":
    sys.exit(main())
