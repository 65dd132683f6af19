"""Logs latent-space statistics of a fixed validation sample every epoch."""

import keras
import numpy as np

from keras_vae_layers import diagnostics
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.evaluation import likelihood as _likelihood
from keras_vae_layers.evaluation._factors import check_informative
from keras_vae_layers.evaluation._factors import discretize_factors
from keras_vae_layers.evaluation.disentanglement import mutual_information_gap

__all__ = ["LatentStatisticsLogger"]

LOGGED_STATISTICS = (
    ("z_radius", "z_radius_mean"),
    ("mu_radius", "mu_radius_mean"),
    ("logvar_min", "logvar_min"),
    ("logvar_mean", "logvar_mean"),
    ("logvar_max", "logvar_max"),
    ("active_units", "active_units"),
    ("kl_per_dim", "kl_per_dim_mean"),
    ("kl_total", "kl_total"),
)
"""`(log key suffix, diagnostics statistic)` pairs the callback writes."""


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class LatentStatisticsLogger(CopySafeCallback):
    """Adds latent-space statistics of a fixed validation sample to the logs.

    At the end of every `every_n_epochs` epochs the sample is encoded (in
    batches, with the encoder's cached `predict_on_batch` function: no
    retrace per epoch) and these entries are added to `logs`, so they show
    up in `fit()`'s `History`, in `CSVLogger` and `TensorBoard` (place this
    callback before those), and can drive `EarlyStopping`:

    * `{prefix}z_radius`, `{prefix}mu_radius`: mean L2 norm of `z` / `mu`.
    * `{prefix}logvar_min`, `_mean`, `_max`: over all samples and dims.
    * `{prefix}active_units`: latent dimensions whose `mu` varies over the
      sample by more than `active_threshold` (Burda et al., 2016). Units
      that collapsed to the prior drop out of this count.
    * `{prefix}kl_per_dim`: the KL per latent dimension, averaged over data
      and dimensions; `{prefix}kl_total`: the mean per-sample KL (summed
      over dimensions, the unweighted `kl_loss` of training).

    Two opt-in entries cost more (see the README for measured costs):

    * `{prefix}log_likelihood` with `log_likelihood_samples=K > 0`: the
      mean importance-weighted `log p(x)` estimate of the sample in nats
      (`evaluation.log_likelihood` with `K` samples and the fixed `seed`,
      so epochs see the same draws). Needs a `VAEModel` (encoder, decoder,
      likelihood from its `reconstruction_loss`).
    * `{prefix}mig` with `factors=`: the mutual information gap
      (`evaluation.mutual_information_gap`) of `mu` against the sample's
      ground-truth factors.

    All values come from `diagnostics` and `evaluation` functions, so they
    match a later offline analysis. With `every_n_epochs > 1` the keys are
    only present for logging epochs, so their `History` lists are shorter
    than the loss lists.

    The sample is cut to its first `max_samples` rows (512 by default:
    measured at well under 5% of an epoch of a small conv VAE; see the
    README). `z` of `[z, mu, logvar]` encoders is the encoder's own sample;
    for `[mu, logvar]` encoders it is drawn with numpy and `seed`, the
    same draw every epoch. Encoding advances the `SamplingLayer`'s seed
    generator, as any `predict()` does.

    The encoder is `encoder=` if given, else `model.encoder` (`VAEModel`),
    else the nested sub-model holding a `SamplingLayer`, else a
    `[z, mu, logvar]` view of a flat Functional VAE's graph. The callback
    holds no model until training starts and deep-copies without one.

    Args:
        x_val_sample: numpy array of validation inputs (batch axis first).
        batch_size: Rows per encoder call.
        prefix: Prefix of the log keys.
        every_n_epochs: Compute after every n-th epoch (>= 1).
        encoder: Optional encoder (or VAE) to use instead of the model's.
        active_threshold: Variance threshold of an active unit (>= 0).
        max_samples: Keep at most this many rows of `x_val_sample`.
        seed: Seed of the numpy `z` for `[mu, logvar]` encoders and of the
            log-likelihood draws.
        log_likelihood_samples: Importance samples per row for the
            per-epoch log-likelihood, `0` (default) to skip it.
        factors: Ground-truth factors of the rows of `x_val_sample` (an
            `(n, k)` array or a dict as `load_shapes` returns; continuous
            ones are binned, see `evaluation.discretize_factors`) to log
            the MIG, or `None`.

    Example:

    ```python
    history = vae.fit(x_train, epochs=10, callbacks=[
        LatentStatisticsLogger(x_val),
        keras.callbacks.CSVLogger("log.csv"),
    ])
    history.history["latent_active_units"]
    ```
    """

    _OWNER = "LatentStatisticsLogger"
    _TRANSIENT = ("_encoder", "_likelihood")
    _SHARED = ("encoder",)

    def __init__(self, x_val_sample, batch_size=256, prefix="latent_",
                 every_n_epochs=1, encoder=None, active_threshold=0.01,
                 max_samples=512, seed=0, log_likelihood_samples=0,
                 factors=None):
        super().__init__()
        owner = self._OWNER
        self.max_samples = check_positive_int(max_samples, "max_samples",
                                              owner)
        x = np.asarray(x_val_sample)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(
                f"{owner}: `x_val_sample` must be a non-empty numpy array "
                f"(n, ...) with the batch axis first, received shape "
                f"{x.shape}."
            )
        # A private copy: later changes to the caller's array do not change
        # what is logged, and epochs stay comparable.
        self.x_val_sample = np.array(x[:self.max_samples])
        self.batch_size = check_positive_int(batch_size, "batch_size", owner)
        if not isinstance(prefix, str):
            raise ValueError(
                f"{owner}: `prefix` must be a string, received {prefix!r}."
            )
        self.prefix = prefix
        self.every_n_epochs = check_positive_int(every_n_epochs,
                                                 "every_n_epochs", owner)
        if encoder is not None and not isinstance(encoder, keras.layers.Layer):
            raise ValueError(
                f"{owner}: `encoder` must be a Keras model or layer, received "
                f"{encoder!r} of type {type(encoder).__name__}."
            )
        self.encoder = encoder
        self.active_threshold = check_finite_number(
            active_threshold, "active_threshold", owner, minimum=0.0)
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, int)):
            raise ValueError(
                f"{owner}: `seed` must be an int or None, received {seed!r}."
            )
        self.seed = seed
        self.log_likelihood_samples = check_positive_int(
            log_likelihood_samples, "log_likelihood_samples", owner,
            minimum=0)
        self.factors = None
        if factors is not None:
            codes, names = discretize_factors(factors, owner=owner)
            if len(codes) != len(x):
                raise ValueError(
                    f"{owner}: `factors` must have one row per row of "
                    f"`x_val_sample` ({len(x)}), received {len(codes)}."
                )
            codes = codes[:self.max_samples]
            check_informative(codes, names, owner)
            self.factors = codes
        self.last_statistics = None
        self._encoder = None
        self._likelihood = None

    def _setup(self):
        owner = self._OWNER
        source = self.encoder if self.encoder is not None else self.model
        if source is None:
            raise ValueError(
                f"{owner}: no model is attached and no `encoder=` was given."
            )
        encoder = diagnostics.find_encoder(source, owner)
        expected = diagnostics.encoding.expected_input_shape(encoder)
        diagnostics.encoding.check_batch_shape(self.x_val_sample.shape, expected,
                                       owner, "`x_val_sample`")
        self._encoder = encoder
        if self.log_likelihood_samples:
            model = self.model if self.model is not None else self.encoder
            try:
                self._likelihood = _likelihood._Likelihood(model, owner=owner)
                self._likelihood.check_data(self.x_val_sample)
            except ValueError as err:
                raise ValueError(
                    f"{err} (needed by `log_likelihood_samples`)") from None

    def on_train_begin(self, logs=None):
        self._setup()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if self._encoder is None:
            self._setup()
        # Touch `self.model` first: on JAX it syncs the model state.
        _ = self.model
        values = self.compute()
        if logs is not None:
            logs.update(values)

    def on_train_end(self, logs=None):
        self._encoder = None
        self._likelihood = None

    def compute(self):
        """Encodes the sample now; returns the log entries (floats)."""
        if self._encoder is None:
            self._setup()
        enc = diagnostics.encode_dataset(self._encoder, self.x_val_sample,
                                         self.batch_size, seed=self.seed)
        stats = diagnostics.compute_latent_statistics(
            enc["z"], enc["mu"], enc["logvar"],
            active_threshold=self.active_threshold,
        )
        self.last_statistics = stats
        values = {
            f"{self.prefix}{key}": float(stats[name])
            for key, name in LOGGED_STATISTICS
        }
        if self._likelihood is not None:
            ll = _likelihood._estimate(
                self._likelihood, self.x_val_sample,
                self.log_likelihood_samples, None,
                self.seed if self.seed is not None else 0, verbose=0)
            values[f"{self.prefix}log_likelihood"] = float(ll.mean())
        if self.factors is not None:
            values[f"{self.prefix}mig"] = mutual_information_gap(
                enc["mu"].reshape(len(enc["mu"]), -1), self.factors)
        return values

    def get_config(self):
        return {
            "x_val_sample": keras.saving.serialize_keras_object(
                self.x_val_sample),
            "batch_size": self.batch_size,
            "prefix": self.prefix,
            "every_n_epochs": self.every_n_epochs,
            "encoder": (
                None if self.encoder is None
                else keras.saving.serialize_keras_object(self.encoder)
            ),
            "active_threshold": self.active_threshold,
            "max_samples": self.max_samples,
            "seed": self.seed,
            "log_likelihood_samples": self.log_likelihood_samples,
            "factors": (
                None if self.factors is None
                else keras.saving.serialize_keras_object(self.factors)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("x_val_sample", "encoder", "factors"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key])
        return cls(**config)
