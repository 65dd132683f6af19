"""`VAEModel`: a Keras model with its own train/test/predict steps."""

import inspect
import warnings

import keras
import numpy as np
from keras import ops

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._validation import shapes_compatible
# `latent_points` lives in the numpy-only `latents` module; still importable
# from here.
from keras_vae_layers.latents import SAMPLE_DISTRIBUTIONS
from keras_vae_layers.latents import latent_points
from keras_vae_layers.layers import KLDivergenceLayer
from keras_vae_layers.layers import SamplingLayer
from keras_vae_layers.layers.kl_divergence import kl_term_managed_by_model
from keras_vae_layers.models import _tf_step

METRIC_NAMES = ("loss", "total_loss", "reco_loss", "kl_loss", "neg_elbo")
"""Metrics `VAEModel` logs each step (plus `beta` in training logs)."""

LOGGED_METRICS = METRIC_NAMES + ("beta",) + tuple(
    f"val_{m}" for m in METRIC_NAMES
)
"""Every key `VAEModel.fit()` can put in its history."""

_KERAS_DEFAULT_BATCH_SIZE = 32

_SCALE_HINT = (
    "Scale images by 1/255 (`x.astype('float32') / 255`) or feed uint8 "
    "images through keras_vae_layers.datasets.make_image_dataset(), which "
    "scales each batch to [0, 1]."
)


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class VAEModel(keras.Model):
    """A Variational Autoencoder you compile with an optimizer and `fit(x)`.

    `VAEModel` wires a user's encoder and decoder together and trains them on
    `total = reco + beta * kl (+ any regularization losses)` with its own
    `train_step`, so no targets and no loss need to be passed to `compile`.

    Loss convention: per sample, the KL term is summed over latent
    dimensions and the reconstruction term over all non-batch elements
    (`reduction="sum"`, a proper negative log-likelihood) or averaged over
    them (`reduction="mean"`); both are averaged over the batch.

    `VAEModel(beta=...)` is the single place the KL weight is set. If the
    encoder contains `KLDivergenceLayer`s, their `add_loss` terms are
    excluded from the total and the model's own `beta * kl` is used, so the
    KL is never counted twice and `total == reco + beta * kl` holds.

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
        reduction: `"sum"` or `"mean"` over the elements of one sample.
        from_logits: Whether the decoder outputs logits.
        free_bits: Per-latent-dimension KL floor (nats) for the trained
            term; `0` disables it. The logged `kl_loss` stays the raw KL.
        eps_clip: `eps_clip` of the model's own `SamplingLayer` (used only
            for two-output encoders).
        seed: Seed of that `SamplingLayer`.
        **kwargs: `keras.Model` arguments (`name`, ...).

    Example:

    ```python
    encoder, decoder = build_conv_encoder_decoder((28, 28, 1), z_dim=8, ...)
    vae = VAEModel(encoder, decoder, beta=1.0)
    vae.compile(optimizer="adam")
    vae.fit(x_train, epochs=10, validation_data=(x_val,))
    images = vae.sample(16, seed=0)
    ```
    """

    def __init__(self, encoder, decoder, beta=1.0, reconstruction_loss="bce",
                 reduction="sum", from_logits=False, free_bits=0.0,
                 eps_clip=5.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(value, keras.layers.Layer):
                raise ValueError(
                    f"VAEModel: `{arg}` must be a Keras model or layer, "
                    f"received {value!r} of type {type(value).__name__}."
                )
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction_loss = check_choice(
            reconstruction_loss, "reconstruction_loss",
            vae_losses.RECONSTRUCTION_KINDS, "VAEModel",
        )
        self.reduction = check_choice(
            reduction, "reduction", vae_losses.REDUCTIONS, "VAEModel"
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
        self.z_dim = None
        _check_functional_encoder_outputs(encoder)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None,
                **kwargs):
        """Configures the optimizer. The model owns its loss and metrics.

        Args:
            optimizer: Optimizer name or instance.
            loss: Must be `None`: the loss is `reco + beta * kl`, set with
                the constructor's `reconstruction_loss`, `reduction` and
                `beta`.
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
                    "reduction=..., beta=...)) and logs loss, total_loss, "
                    "reco_loss, kl_loss, neg_elbo and beta; compile it with "
                    "just an optimizer."
                )
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
        arguments = _bind(super().fit, args, kwargs)
        if arguments is not None:
            data_shape = self._check_first_batch(
                arguments.get("x"), arguments.get("y"),
                arguments.get("batch_size"), "training data",
            )
            validation = arguments.get("validation_data")
            if validation is not None:
                val_x, val_y, _ = keras.utils.unpack_x_y_sample_weight(
                    validation
                )
                self._check_first_batch(
                    val_x, val_y,
                    arguments.get("validation_batch_size")
                    or arguments.get("batch_size"),
                    "validation data", data_shape,
                )
        return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`, after checking the first batch (as `fit`).

        Returns:
            What `keras.Model.evaluate` returns.
        """
        # fit() calls evaluate() on its validation data after every epoch;
        # fit() has checked that data already.
        if not kwargs.get("_use_cached_eval_dataset"):
            arguments = _bind(super().evaluate, args, kwargs)
            if arguments is not None:
                self._check_first_batch(
                    arguments.get("x"), arguments.get("y"),
                    arguments.get("batch_size"), "evaluation data",
                )
        return super().evaluate(*args, **kwargs)

    # ---------------------------------------------------------- data checks

    def _check_target(self, target_shape, target_dtype, reconstruction_shape,
                      where=None, warn=True):
        """Static checks of the reconstruction target: shape and dtype.

        Python only: inside a traced step it runs while tracing and adds no
        operation to the step. `warn=False` skips the MSE warning (the
        trace-time check gives it once).
        """
        of = f" of the {where}" if where else ""
        target_shape = tuple(target_shape)
        reconstruction_shape = tuple(reconstruction_shape)
        if not shapes_compatible(target_shape[1:], reconstruction_shape[1:]):
            raise ValueError(
                f"VAEModel: the reconstruction target{of} has shape "
                f"{(None,) + target_shape[1:]}, but the reconstruction has "
                f"shape {(None,) + reconstruction_shape[1:]}. The target "
                "(`y`, or `x` when no `y` is given) must have the shape of "
                "the reconstruction; labels are not targets: fit(x) trains "
                "on `x` alone, fit(noisy_x, clean_x) trains a denoising VAE."
            )
        dtype = keras.backend.standardize_dtype(target_dtype)
        if not dtype.startswith(("int", "uint")):
            return
        if self.reconstruction_loss == "bce":
            raise ValueError(
                f"VAEModel: the reconstruction target{of} has integer dtype "
                f"{dtype}, but reconstruction_loss='bce' needs float values "
                f"in [0, 1] (unscaled images?). {_SCALE_HINT} Cast binary "
                "{0, 1} data to float32."
            )
        if warn:
            warnings.warn(
                f"VAEModel: the reconstruction target{of} has integer "
                f"dtype {dtype} with reconstruction_loss='mse'. If these "
                "are images in 0..255, the decoder must reproduce that "
                f"range: {_SCALE_HINT}",
                stacklevel=2,
            )

    def _check_first_batch(self, x, y, batch_size, where, data_shape=None):
        """Checks the first batch of `fit`/`evaluate` data, if readable.

        Args:
            x, y, batch_size: As given to `fit`/`evaluate`.
            where: Name of the data in error messages.
            data_shape: Input shape the data must have (the training data's,
                when checking `validation_data`); defaults to the shape the
                model was built for.

        Returns:
            The batch's input shape `(None, ...)`, or `None` if the batch
            could not be read.
        """
        batch = _first_batch(x, y, batch_size)
        if batch is None:
            return None
        x, y = batch
        shape = (None,) + tuple(x.shape[1:])
        _check_data_shape(self.encoder, shape)
        if data_shape is None and self.built:
            data_shape = (self.get_build_config() or {}).get("input_shape")
        if data_shape is not None and not shapes_compatible(
            shape[1:], tuple(data_shape)[1:]
        ):
            raise ValueError(
                f"VAEModel: the {where} has inputs of shape {shape}, but the "
                "model takes inputs of shape "
                f"{(None,) + tuple(data_shape)[1:]}."
            )
        target = x if y is None else y
        # The decoder reproduces the input's shape (checked when the model
        # is built), so the input's shape is the reconstruction's.
        self._check_target(target.shape, target.dtype, shape, where,
                           warn=False)
        if self.reconstruction_loss == "bce" and target.size:
            low, high = float(np.min(target)), float(np.max(target))
            if not (low >= 0.0 and high <= 1.0):
                role = "`x`, the target" if y is None else "the target `y`"
                raise ValueError(
                    "VAEModel: reconstruction_loss='bce' needs targets in "
                    f"[0, 1], but the first batch of the {where} ({role}) "
                    f"has values in [{low:g}, {high:g}]. {_SCALE_HINT} Clip "
                    "data that overshoots [0, 1] slightly (e.g. after "
                    "resizing)."
                )
        return shape

    # ------------------------------------------------------------ structure

    @property
    def kl_layers(self):
        """The `KLDivergenceLayer`s inside the encoder (silenced while the
        model runs them: the model adds `beta * kl` itself)."""
        return [
            layer for layer in self.encoder._flatten_layers(include_self=True)
            if isinstance(layer, KLDivergenceLayer)
        ]

    @property
    def sampling_layers(self):
        """Every `SamplingLayer` in the model, the model's own included."""
        return [
            layer for layer in self._flatten_layers(include_self=False)
            if isinstance(layer, SamplingLayer)
        ]

    @property
    def metrics(self):
        # Only our trackers: the encoder's KLDivergenceLayer tracker is
        # also named `kl_loss` and would otherwise shadow ours in the logs.
        return [self.loss_tracker, self.reco_tracker, self.kl_tracker]

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        _check_data_shape(self.encoder, input_shape)
        x = keras.KerasTensor(input_shape)
        z, mu, logvar, x_hat = self._forward(x, training=False)
        self.z_dim = int(mu.shape[-1])
        if not self.sampler.built:
            self.sampler.build([tuple(mu.shape), tuple(logvar.shape)])
        if tuple(x_hat.shape[1:]) != input_shape[1:]:
            raise ValueError(
                "VAEModel: the decoder output shape "
                f"{tuple(x_hat.shape)} does not match the data shape "
                f"{input_shape}; the decoder must reconstruct inputs of the "
                "encoder's shape."
            )
        self.built = True

    # --------------------------------------------------------------- forward

    def _split_encoder_outputs(self, outputs):
        if isinstance(outputs, dict):
            missing = {"mu", "logvar"} - set(outputs)
            if missing:
                raise ValueError(
                    "VAEModel: a dict returned by the encoder needs the keys "
                    f"'mu' and 'logvar' (and optionally 'z'); received keys "
                    f"{sorted(outputs)}."
                )
            return outputs.get("z"), outputs["mu"], outputs["logvar"]
        if isinstance(outputs, (list, tuple)) and len(outputs) in (2, 3):
            if len(outputs) == 3:
                return tuple(outputs)
            return (None,) + tuple(outputs)
        count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
        raise ValueError(
            "VAEModel: the encoder must return [z, mu, logvar], [mu, logvar] "
            "or a dict with keys 'z', 'mu', 'logvar'; received "
            f"{count} output(s): {_describe(outputs)}."
        )

    def _ensure_built(self, x):
        # Keras' TF trainer builds a model by tracing `self(x)` inside the
        # step; our steps call the sub-models directly, so make one symbolic
        # call here (once, during the first trace): it builds the model,
        # records the build config for saving and marks the model as called,
        # which `export()` requires.
        if not self.built or not getattr(self, "_called", True):
            self._symbolic_call((None,) + tuple(x.shape)[1:], x.dtype)

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
        # The model computes the KL term itself; KLDivergenceLayers inside
        # the encoder skip their add_loss and tracker while it runs (a
        # trace-time switch: the encoder used on its own is unaffected).
        with kl_term_managed_by_model():
            outputs = self.encoder(x, training=training)
        z, mu, logvar = self._split_encoder_outputs(outputs)
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
        """Losses added by sub-layers (regularizers). The encoder's
        KLDivergenceLayers add none here: `_forward` runs them silenced."""
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
        self._check_target(target.shape, target.dtype, x_hat.shape)
        reco = vae_losses.reconstruction_loss(
            target, x_hat, self.reconstruction_loss, self.reduction,
            self.from_logits,
        )
        kl_dims = vae_losses.kl_divergence_per_dim(mu, logvar)
        kl = ops.sum(kl_dims, axis=-1)
        reco_mean = _weighted_mean(reco, sample_weight)
        kl_mean = _weighted_mean(kl, sample_weight)
        if self.free_bits > 0.0:
            per_dim = ops.mean(ops.reshape(kl_dims, (-1, kl_dims.shape[-1])),
                               axis=0)
            kl_trained = ops.sum(ops.maximum(per_dim, self.free_bits))
        else:
            kl_trained = kl_mean
        total = reco_mean + self.beta * kl_trained
        extra = self._extra_losses()
        if extra is not None:
            total = total + extra
        return {
            "total_loss": total,
            "reco_loss": reco_mean,
            "kl_loss": kl_mean,
            "neg_elbo": reco_mean + kl_mean,
            "z": z,
            "mu": mu,
            "logvar": logvar,
            "reconstruction": x_hat,
        }

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

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._ensure_built(x)

        def loss_fn():
            terms = self.compute_loss_terms(x, y, sample_weight, training=True)
            return terms["total_loss"], terms

        terms = _tf_step.apply_gradient_step(self, loss_fn)
        logs = self._update_metrics(terms, ops.shape(x)[0])
        logs["beta"] = ops.convert_to_tensor(self.beta)
        return logs

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        self._ensure_built(x)
        terms = self.compute_loss_terms(x, y, sample_weight, training=False)
        return self._update_metrics(terms, ops.shape(x)[0])

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        self._ensure_built(x)
        z, mu, logvar, x_hat = self._forward(x, training=False)
        return {"z": z, "mu": mu, "logvar": logvar,
                "reconstruction": self._probabilities(x_hat)}

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
            x_hat = 1.0 / (1.0 + np.exp(-x_hat))
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

    def latent_dim(self):
        """Size of the latent space (from the decoder input or the build)."""
        if self.z_dim is not None:
            return self.z_dim
        inputs = getattr(self.decoder, "inputs", None)
        if inputs:
            return int(inputs[0].shape[-1])
        raise ValueError(
            "VAEModel: the latent size is unknown until the model is built; "
            "call the model on a batch (or fit it) first."
        )

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
        z = latent_points(n, self.latent_dim(), seed, distribution, limit)
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
            "reduction": self.reduction,
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


def _bind(method, args, kwargs):
    """`method`'s arguments by name, or `None` if they do not bind (Keras
    then raises its own error)."""
    try:
        return inspect.signature(method).bind(*args, **kwargs).arguments
    except TypeError:
        return None


def _is_array(value):
    shape = getattr(value, "shape", None)
    return (
        shape is not None and hasattr(value, "dtype")
        and hasattr(value, "__getitem__") and len(shape) >= 1
    )


def _to_numpy(value):
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        return ops.convert_to_numpy(value)


def _first_batch(x, y=None, batch_size=None):
    """The first batch `(x, y)` of `fit`/`evaluate` data as numpy arrays.

    Only data that can be read ahead without being consumed is read:
    arrays/tensors (their first `batch_size` rows), a `tf.data.Dataset`
    (`take(1)`, recognised by duck typing) and a `keras.utils.PyDataset`
    (`[0]`). Returns `None` for anything else (Python generators,
    iterators, dicts of inputs) and for an empty dataset.
    """
    if isinstance(x, keras.utils.PyDataset):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(x[0])
    elif callable(getattr(x, "take", None)) and hasattr(x, "element_spec"):
        # Only a tf.data.Dataset gets here, so tensorflow is loaded already.
        import tensorflow as tf

        try:
            # One op, no iterator: ~1 ms where next(iter(...)) takes ~40.
            batch = x.take(1).get_single_element()
        except tf.errors.InvalidArgumentError:
            return None  # empty; fit() reports pipeline errors itself
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
    elif _is_array(x):
        n = batch_size or _KERAS_DEFAULT_BATCH_SIZE
        x = x[:n]
        y = y[:n] if _is_array(y) else None
    else:
        return None
    if not _is_array(x):
        return None
    return _to_numpy(x), (_to_numpy(y) if _is_array(y) else None)


def _weighted_mean(values, sample_weight):
    if sample_weight is None:
        return ops.mean(values)
    w = ops.cast(ops.reshape(sample_weight, ops.shape(values)), "float32")
    return ops.sum(values * w) / ops.maximum(ops.sum(w), 1e-12)


def _describe(outputs):
    def one(t):
        shape = getattr(t, "shape", None)
        return f"tensor of shape {tuple(shape)}" if shape is not None else repr(t)
    if isinstance(outputs, (list, tuple)):
        return "[" + ", ".join(one(t) for t in outputs) + "]"
    return one(outputs)


def _check_functional_encoder_outputs(encoder):
    """Fails at construction for Functional encoders of the wrong arity."""
    outputs = getattr(encoder, "_outputs_struct", None)
    if outputs is None or isinstance(outputs, dict):
        return
    if not isinstance(outputs, (list, tuple)) or len(outputs) not in (2, 3):
        count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
        raise ValueError(
            "VAEModel: the encoder must return [z, mu, logvar] or "
            f"[mu, logvar]; encoder '{encoder.name}' has {count} output(s): "
            f"{_describe(outputs)}."
        )


def _check_data_shape(encoder, input_shape):
    inputs = getattr(encoder, "inputs", None)
    if not inputs or len(inputs) != 1:
        return
    expected = tuple(inputs[0].shape)
    got = tuple(input_shape)
    if not shapes_compatible(got, expected):
        raise ValueError(
            f"VAEModel: data of shape {got} does not match the encoder input "
            f"shape {expected} (encoder '{encoder.name}')."
        )
