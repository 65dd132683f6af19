"""`VAEModel`: a Keras model with its own train/test/predict steps."""

import warnings

import keras
from keras import ops

from keras_vae_layers import _backend
from keras_vae_layers import _keras_compat
from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._validation import renamed
from keras_vae_layers.latents import SAMPLE_DISTRIBUTIONS
from keras_vae_layers.latents import latent_points
from keras_vae_layers.layers import KLDivergenceLayer
from keras_vae_layers.layers import SamplingLayer
from keras_vae_layers.models import _data_checks
from keras_vae_layers.models import _tf_multiworker
from keras_vae_layers.models import backends
from keras_vae_layers.models.encoder_outputs import check_encoder_outputs
from keras_vae_layers.models.encoder_outputs import split_encoder_outputs

METRIC_NAMES = ("loss", "total_loss", "reco_loss", "kl_loss", "neg_elbo")
"""Metrics `VAEModel` logs each step (plus `beta` in training logs)."""

LOGGED_METRICS = METRIC_NAMES + ("beta",) + tuple(
    f"val_{m}" for m in METRIC_NAMES
)
"""Every key `VAEModel.fit()` can put in its history."""


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class VAEModel(keras.Model):
    """A Variational Autoencoder you compile with an optimizer and `fit(x)`.

    `VAEModel` wires a user's encoder and decoder together and trains them on
    `total = reco + beta * kl (+ any regularization losses)` with its own
    `train_step`, so no targets and no loss need to be passed to `compile`.

    Loss convention: per sample, the KL term is summed over latent
    dimensions and the reconstruction term over all non-batch elements
    (`element_reduction="sum"`, a proper negative log-likelihood) or
    averaged over them (`element_reduction="mean"`); both are averaged over
    the batch (`losses.vae_loss_terms` computes them).

    The model owns the KL term: `VAEModel(beta=...)` is the one place its
    weight is set, and `total == reco + beta * kl` (+ regularizers) always
    holds. An encoder containing a `KLDivergenceLayer` would add a second
    KL term, so it is refused with a message that says how to build the
    encoder without one (`build_conv_encoder_decoder(..., kl_layer=False)`).

    Logged metrics: `loss` (== `total_loss`, so `EarlyStopping` and
    `ModelCheckpoint` defaults work), `total_loss`, `reco_loss`, `kl_loss`
    (unweighted), `neg_elbo` (`reco + kl`, comparable across `beta`) and
    `beta`; `val_*` versions with `validation_data`.

    Data checks: the reconstruction target (`y`, else `x`) must have the
    reconstruction's shape (labels are not targets) and, with
    `reconstruction_loss="bce"`, a float dtype and values in [0, 1]
    (unscaled uint8 images are the usual mistake). Dtypes and shapes are
    checked when the step is traced; values once per `fit()`/`evaluate()`
    call on the first batch (see `fit`). None of it adds work to a step.

    Backends: the same model trains on TensorFlow (`GradientTape` in a
    `tf.function`, `tf.distribute` strategies), JAX (a stateless `jax.jit`
    step; `keras.distribution` for several devices) and torch
    (`loss.backward()`, eagerly), with the same logs; `beta` and the
    sampling switch are variables read by the step on every backend.
    `tf.distribute` on JAX or torch raises a `ValueError` saying what to
    use instead.

    Args:
        encoder: A model mapping `x` to `[z, mu, logvar]` (this order), to
            `[mu, logvar]` (the model then samples `z` with its own
            `SamplingLayer`), or to a dict with keys `z`, `mu`, `logvar`
            (`z` optional). Functional, Sequential or subclassed.
        decoder: A model mapping `z` to the reconstruction `x_hat`
            (probabilities, or logits with `from_logits=True`).
        beta: Non-negative KL weight, held in the non-trainable variable
            `vae.beta` (assign to it between steps; no retrace).
        reconstruction_loss: `"bce"` or `"mse"`.
        element_reduction: `"sum"` or `"mean"` over the elements of one
            sample (`reduction` is the deprecated 0.1 spelling).
        from_logits: Whether the decoder outputs logits.
        free_bits: Per-latent-dimension KL floor (nats) for the trained
            term; `0` disables it. The logged `kl_loss` stays the raw KL.
        eps_clip: `eps_clip` of the model's own `SamplingLayer` (used only
            for two-output encoders).
        seed: Seed of that `SamplingLayer`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:

    ```python
    encoder, decoder = build_conv_encoder_decoder(
        (28, 28, 1), z_dim=8, kl_layer=False, ...)
    vae = VAEModel(encoder, decoder, beta=1.0)
    vae.compile(optimizer="adam")
    vae.fit(x_train, epochs=10, validation_data=(x_val,))
    images = vae.sample(16, seed=0)
    ```
    """

    def __init__(self, encoder, decoder, beta=1.0, reconstruction_loss="bce",
                 element_reduction="sum", from_logits=False, free_bits=0.0,
                 eps_clip=5.0, seed=None, **kwargs):
        element_reduction = renamed(kwargs, "reduction", "element_reduction",
                                    element_reduction, "sum", "VAEModel")
        _backend.check_no_tf_distribute("VAEModel")
        super().__init__(**kwargs)
        for arg, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, keras.layers.Layer):
                raise ValueError(
                    f"VAEModel: `{arg}` must be a Keras model or layer, "
                    f"received {value!r} of type {type(value).__name__}."
                )
        _refuse_kl_layers(encoder)
        check_encoder_outputs(encoder, "VAEModel",
                              f"(encoder '{encoder.name}')")
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction_loss = check_choice(
            reconstruction_loss, "reconstruction_loss",
            vae_losses.RECONSTRUCTION_LOSSES, "VAEModel",
        )
        self.element_reduction = check_choice(
            element_reduction, "element_reduction",
            vae_losses.ELEMENT_REDUCTIONS, "VAEModel",
        )
        if not isinstance(from_logits, bool):
            raise ValueError(
                "VAEModel: `from_logits` must be True or False, received "
                f"{from_logits!r}."
            )
        self.from_logits = from_logits
        self.free_bits = check_finite_number(
            free_bits, "free_bits", "VAEModel", minimum=0.0
        )
        beta = check_finite_number(beta, "beta", "VAEModel", minimum=0.0)
        self.eps_clip = eps_clip
        self.seed = seed
        try:
            self.sampler = SamplingLayer(eps_clip=eps_clip, seed=seed,
                                         name="vae_sampling")
        except ValueError as err:
            raise ValueError(f"VAEModel: {err}") from None
        self.beta = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(beta),
            trainable=False, dtype="float32", name="beta",
        )
        # Three trackers cover the five logged values: `total_loss` is
        # `loss` and `neg_elbo` is reco + kl of the same weighted means.
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reco_tracker = keras.metrics.Mean(name="reco_loss")
        self.kl_tracker = keras.metrics.Mean(name="kl_loss")
        self._z_dim = None

    @property
    def reduction(self):
        """Deprecated spelling of `element_reduction`."""
        return self.element_reduction

    def compile(self, optimizer="rmsprop", loss=None, metrics=None,
                **kwargs):
        """Configures the optimizer. The model owns its loss and metrics.

        Args:
            optimizer: Optimizer name or instance.
            loss: Must be `None`: the loss is `reco + beta * kl`, set with
                the constructor's `reconstruction_loss`, `element_reduction`
                and `beta`.
            metrics: Must be `None`: the model logs `loss`, `total_loss`,
                `reco_loss`, `kl_loss`, `neg_elbo` and `beta`; add other
                measurements with a callback.
            **kwargs: Other `keras.Model.compile` arguments (`run_eagerly`,
                `jit_compile`, `steps_per_execution`, ...).
        """
        for name, value in (("loss", loss), ("metrics", metrics)):
            if value is not None:
                raise ValueError(
                    f"VAEModel.compile: `{name}` must be None, received "
                    f"{value!r}. VAEModel computes reco + beta * kl itself "
                    "(choose it with VAEModel(reconstruction_loss=..., "
                    "element_reduction=..., beta=...)) and logs loss, "
                    "total_loss, "
                    "reco_loss, kl_loss, neg_elbo and beta; compile it with "
                    "just an optimizer."
                )
        _backend.check_no_tf_distribute("VAEModel.compile")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling on load for models that override compile();
        # ours only adds checks, so compile the saved optimizer as usual.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`, after checking the first batch of the data.

        Takes exactly `keras.Model.fit`'s arguments. Before training starts,
        the first batch of the training data and of `validation_data` is
        checked once: its shape against the model (and the target's shape
        against the reconstruction's), and with `reconstruction_loss="bce"`
        the target's values against [0, 1]. A mistake raises a `ValueError`
        before the first epoch, not after it. The batch is read without
        consuming the data: the first `batch_size` rows of arrays and
        tensors, `dataset.take(1)` of a `tf.data.Dataset` (one extra batch
        is produced), `dataset[0]` of a `keras.utils.PyDataset`. Python
        generators and other one-shot iterators cannot be read ahead; for
        them only the dtype and shape checks at trace time apply.

        Returns:
            The `History` object, as `keras.Model.fit`.
        """
        _data_checks.check_fit_call(self, super().fit, args, kwargs)
        return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`, after checking the first batch (as `fit`).

        Returns:
            What `keras.Model.evaluate` returns.
        """
        _data_checks.check_evaluate_call(self, super().evaluate, args,
                                         kwargs)
        return super().evaluate(*args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """`keras.Model.predict`: a dict of `z`, `mu`, `logvar` and the
        `reconstruction` (probabilities), each a numpy array.

        On JAX and torch, `tf.distribute` (a strategy scope, a distributed
        dataset) raises a `ValueError` naming what to use instead.
        """
        _backend.check_no_tf_distribute("VAEModel.predict", ("x", x))
        return super().predict(x, *args, **kwargs)

    # ------------------------------------------------------------ structure

    @property
    def sampling_layers(self):
        """Every `SamplingLayer` in the model, the model's own included."""
        return [
            layer for layer in _keras_compat.all_layers(self)
            if isinstance(layer, SamplingLayer)
        ]

    @property
    def metrics(self):
        return [self.loss_tracker, self.reco_tracker, self.kl_tracker]

    @property
    def z_dim(self):
        """The latent size: from the build, else the decoder's input, else
        `None`."""
        if self._z_dim is not None:
            return self._z_dim
        inputs = getattr(self.decoder, "inputs", None)
        if inputs and inputs[0].shape[-1] is not None:
            return int(inputs[0].shape[-1])
        return None

    def latent_dim(self):
        """Deprecated: use the `z_dim` property."""
        warnings.warn("VAEModel.latent_dim() is deprecated; use the `z_dim` "
                      "property.", DeprecationWarning, stacklevel=2)
        return self._require_z_dim()

    def _require_z_dim(self):
        if self.z_dim is None:
            raise ValueError(
                "VAEModel: the latent size is unknown until the model is "
                "built; call the model on a batch (or fit it) first."
            )
        return self.z_dim

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        _data_checks.check_data_shape(self.encoder, input_shape)
        x = keras.KerasTensor(input_shape)
        z, mu, logvar, x_hat = self._forward(x, training=False)
        self._z_dim = int(mu.shape[-1])
        if not self.sampler.built:
            self.sampler.build([tuple(mu.shape), tuple(logvar.shape)])
        if tuple(x_hat.shape[1:]) != input_shape[1:]:
            # Batch size shown as None: some backends build the model with
            # the first batch's size.
            raise ValueError(
                "VAEModel: the decoder output shape "
                f"{(None,) + tuple(x_hat.shape[1:])} does not match the "
                f"data shape {(None,) + input_shape[1:]}; the decoder must "
                "reconstruct inputs of the encoder's shape."
            )
        self.built = True

    # --------------------------------------------------------------- forward

    def _ensure_built(self, x):
        # Keras' TF trainer builds a model by tracing `self(x)` inside the
        # step; our steps call the sub-models directly, so make one symbolic
        # call here (once, during the first trace): it builds the model,
        # records the build config for saving and marks the model as called,
        # which `export()` requires.
        if not self.built or not _keras_compat.is_called(self):
            self._symbolic_call((None,) + tuple(x.shape)[1:], x.dtype)

    def _ensure_called(self):
        # The same for a model built with `build()` but never called, made
        # before any step function exists: JAX's steps run on the state
        # detached from the variables, where no symbolic call can run.
        if self.built and not _keras_compat.is_called(self):
            shape = (self.get_build_config() or {}).get("input_shape")
            if shape is not None:
                self._symbolic_call(tuple(shape))

    def make_train_function(self, force=False):
        self._ensure_called()
        return super().make_train_function(force)

    def make_test_function(self, force=False):
        self._ensure_called()
        return super().make_test_function(force)

    def make_predict_function(self, force=False):
        self._ensure_called()
        return super().make_predict_function(force)

    def _symbolic_call(self, input_shape, dtype="float32"):
        self(keras.KerasTensor(input_shape,
                               dtype=keras.backend.standardize_dtype(dtype)))

    def build_from_config(self, config):
        # Called when a saved model is loaded: also mark it as called so a
        # reloaded model can be exported straight away.
        super().build_from_config(config)
        if self.built and config and config.get("input_shape"):
            self._symbolic_call(tuple(config["input_shape"]))

    def _forward(self, x, training=False):
        outputs = self.encoder(x, training=training)
        z, mu, logvar = split_encoder_outputs(
            outputs, "VAEModel", f"(encoder '{self.encoder.name}')")
        if z is None:
            z = self.sampler([mu, logvar])
        x_hat = self.decoder(z, training=training)
        return z, mu, logvar, x_hat

    def _probabilities(self, x_hat):
        return ops.sigmoid(x_hat) if self.from_logits else x_hat

    def call(self, inputs, training=None):
        """Returns the reconstruction of `inputs` (probabilities, also when
        the decoder outputs logits with `from_logits=True`)."""
        return self._probabilities(self._forward(inputs, training=training)[3])

    # ------------------------------------------------------------ the terms

    def _extra_losses(self):
        """Losses added by sub-layers (weight and activity regularizers)."""
        extra = [ops.cast(ops.sum(loss), "float32") for loss in self.losses]
        if not extra:
            return None
        return ops.sum(ops.stack(extra))

    def compute_loss_terms(self, x, target=None, sample_weight=None,
                           training=False):
        """Forward pass and the batch-averaged loss terms (float32).

        Args:
            x: Input batch.
            target: Reconstruction target (defaults to `x`; pass a clean
                image here to train a denoising VAE on noisy inputs).
            sample_weight: Optional per-sample weights.
            training: Forward in training mode.

        Returns:
            Dict with `total_loss`, `reco_loss`, `kl_loss`, `neg_elbo` and
            the tensors `z`, `mu`, `logvar`, `reconstruction`.

        Raises:
            ValueError: if the target's non-batch shape differs from the
                reconstruction's, or the target is an integer tensor with
                `reconstruction_loss="bce"` (static checks: in a traced
                step they run once, while tracing).
        """
        target = x if target is None else target
        z, mu, logvar, x_hat = self._forward(x, training=training)
        _data_checks.check_target(self.reconstruction_loss, target.shape,
                                  target.dtype, x_hat.shape)
        terms = vae_losses.vae_loss_terms(
            target, x_hat, mu, logvar, beta=self.beta,
            reconstruction_loss=self.reconstruction_loss,
            element_reduction=self.element_reduction,
            from_logits=self.from_logits, free_bits=self.free_bits,
            sample_weight=sample_weight,
        )
        extra = self._extra_losses()
        if extra is not None:
            terms["total_loss"] = terms["total_loss"] + extra
        terms.update(z=z, mu=mu, logvar=logvar, reconstruction=x_hat)
        return terms

    def _update_metrics(self, terms, batch_size):
        self.loss_tracker.update_state(terms["total_loss"], batch_size)
        self.reco_tracker.update_state(terms["reco_loss"], batch_size)
        self.kl_tracker.update_state(terms["kl_loss"], batch_size)
        loss = self.loss_tracker.result()
        reco = self.reco_tracker.result()
        kl = self.kl_tracker.result()
        return {"loss": loss, "total_loss": loss, "reco_loss": reco,
                "kl_loss": kl, "neg_elbo": reco + kl}

    # ----------------------------------------------------------------- steps

    def _logs(self, terms, x, training):
        logs = self._update_metrics(terms, ops.shape(x)[0])
        if training:
            logs["beta"] = ops.convert_to_tensor(self.beta)
        return logs

    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._ensure_built(x)
        return x, y, sample_weight

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Multi-worker hook (keras-team/keras#20585) on a private method of
        # Keras' TF trainer, the only caller: see _tf_multiworker.
        iterator, data_batch = _tf_multiworker.symbolic_build_inputs(
            self, iterator, data_batch)
        return super()._maybe_symbolic_build(iterator=iterator,
                                             data_batch=data_batch)

    def _test_logs(self, data):
        x, y, sample_weight = self._unpack(data)
        terms = self.compute_loss_terms(x, y, sample_weight, training=False)
        return self._logs(terms, x, training=False)

    def _predict_outputs(self, data):
        x, _, _ = self._unpack(data)
        z, mu, logvar, x_hat = self._forward(x, training=False)
        return {"z": z, "mu": mu, "logvar": logvar,
                "reconstruction": self._probabilities(x_hat)}

    # The steps: one implementation per backend (`models.backends`). Keras
    # calls them as `step(data)` on TensorFlow and torch and as
    # `step(state, data)`, returning `(outputs, new_state)`, on JAX.

    def train_step(self, *args):
        """One training step: the gradient step on `total_loss`.

        Returns:
            The logs (`loss`, `total_loss`, `reco_loss`, `kl_loss`,
            `neg_elbo`, `beta`); on JAX `(logs, new_state)`.
        """
        return backends.step_module().train_step(self, *args)

    def test_step(self, *args):
        """One evaluation step; returns the logs (JAX: with the state)."""
        return backends.step_module().test_step(self, *args)

    def predict_step(self, *args):
        """One prediction step: a dict with `z`, `mu`, `logvar` and the
        `reconstruction` (probabilities); JAX: with the state."""
        return backends.step_module().predict_step(self, *args)

    # ----------------------------------------------------------- convenience

    def set_deterministic(self, deterministic=True):
        """Switches every `SamplingLayer` inside to `z == mu` (or back).

        The switch is a variable assignment: `predict()` honours it at once,
        also after a first `predict()` call, without recompiling.

        Args:
            deterministic: `True` for `z == mu`, `False` to sample again.

        Example:

        ```python
        vae.set_deterministic(True)
        out = vae.predict(x)      # out["z"] == out["mu"]
        ```
        """
        for layer in self.sampling_layers:
            layer.set_deterministic(deterministic)

    def encode(self, x, deterministic=False, batch_size=None):
        """Encodes `x` in batches.

        Args:
            x: Input images (numpy array or dataset).
            deterministic: If `True`, `z` is `mu` (no sampling).
            batch_size: Prediction batch size.

        Returns:
            Tuple of numpy arrays `(z, mu, logvar)`.
        """
        out = self.predict(x, batch_size=batch_size, verbose=0)
        z = out["mu"] if deterministic else out["z"]
        return z, out["mu"], out["logvar"]

    def decode(self, z, batch_size=None):
        """Decodes latent points.

        Args:
            z: Array `(n, z_dim)` of latent points.
            batch_size: Prediction batch size.

        Returns:
            numpy array of decoded images (probabilities, also with
            `from_logits=True`).
        """
        x_hat = self.decoder.predict(z, batch_size=batch_size, verbose=0)
        if self.from_logits:
            x_hat = ops.convert_to_numpy(ops.sigmoid(x_hat))
        return x_hat

    def reconstruct(self, x, batch_size=None):
        """Deterministic reconstruction (`z == mu`) of `x`.

        The sampling switches are set for the call and restored afterwards.

        Args:
            x: Input images.
            batch_size: Prediction batch size.

        Returns:
            numpy array of reconstructions (probabilities).
        """
        saved = [
            (layer, ops.convert_to_numpy(layer.eps_factor))
            for layer in self.sampling_layers
        ]
        self.set_deterministic(True)
        try:
            x_hat = self.predict(x, batch_size=batch_size, verbose=0)[
                "reconstruction"
            ]
        finally:
            for layer, value in saved:
                layer.eps_factor.assign(value)
        return x_hat

    def sample(self, n, seed=None, distribution="normal", limit=3.0,
               batch_size=None):
        """Decodes `n` latent points drawn from the prior or a uniform box.

        Args:
            n: Number of samples.
            seed: Seed of the numpy generator drawing the latent points.
            distribution: `"normal"` (N(0, I)) or `"uniform"` (uniform in
                `[-limit, limit]^z_dim`, to probe how far from the origin the
                decoder still produces sensible images).
            limit: Half-width of the uniform box.
            batch_size: Prediction batch size.

        Returns:
            numpy array of `n` decoded images (probabilities).
        """
        n = check_positive_int(n, "n", "VAEModel.sample")
        check_choice(distribution, "distribution", SAMPLE_DISTRIBUTIONS,
                     "VAEModel.sample")
        limit = check_finite_number(limit, "limit", "VAEModel.sample",
                                    minimum=0.0, strict_minimum=True)
        z = latent_points(n, self._require_z_dim(), seed, distribution, limit)
        return self.decode(z, batch_size=batch_size)

    # --------------------------------------------------------- serialization

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": float(ops.convert_to_numpy(self.beta)),
            "reconstruction_loss": self.reconstruction_loss,
            "element_reduction": self.element_reduction,
            "from_logits": self.from_logits,
            "free_bits": self.free_bits,
            "eps_clip": self.eps_clip,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)


def _refuse_kl_layers(encoder):
    """The model owns the KL term; a KL layer in the encoder would add a
    second one (with its own `beta`)."""
    found = [
        layer.name for layer in _keras_compat.all_layers(encoder,
                                                         include_self=True)
        if isinstance(layer, KLDivergenceLayer)
    ]
    if found:
        raise ValueError(
            f"VAEModel: encoder '{encoder.name}' contains "
            f"KLDivergenceLayer(s) {found}, but VAEModel adds beta * KL "
            "itself (its `beta` is the one KL weight of the model), so the "
            "KL term would be counted twice. Build the encoder without the "
            "layer: build_conv_encoder_decoder(..., kl_layer=False), or "
            "remove it from your encoder; pass the KL weight as "
            "VAEModel(beta=...). Keep KLDivergenceLayer for VAEs you "
            "compose as Functional models and train with compile(loss=...)."
        )
