"""Pass-through layer that adds the KL divergence term as a layer loss."""

import keras
from keras import ops

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_mu_logvar_shapes
from keras_vae_layers._validation import check_range


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class KLDivergenceLayer(keras.layers.Layer):
    """Adds `beta * KL(N(mu, exp(logvar)) || N(0, I))` to the model's losses.

    The layer is a pass-through: `call([mu, logvar])` returns `[mu, logvar]`
    unchanged, so it can be dropped between an encoder's heads and the
    sampling layer. The KL term is summed over latent dimensions and averaged
    over the batch, always in float32 (mixed precision safe), and added with
    `self.add_loss()` from inside `call()`, which is the Keras 3 way (symbolic
    `Model.add_loss()` no longer exists).

    Because Keras 3 removed `Layer.add_metric()`, the layer owns a
    `keras.metrics.Mean` tracker (named `metric_name`, default `"kl_loss"`)
    of the **unweighted** KL, so `fit()` logs show it, also when the layer
    sits inside an encoder sub-model.

    `beta` lives in a non-trainable float32 variable, `layer.beta`. Assign to
    it (`layer.beta.assign(0.5)`) at any time, e.g. for KL annealing: the new
    value is used by the next step without retracing.

    Args:
        beta: Non-negative finite KL weight (`fact` in older recipes).
        free_bits: Optional non-negative floor (in nats) applied per latent
            dimension to the batch-averaged KL before summing ("free bits",
            Kingma et al. 2016). Only the added loss is floored; the logged
            `kl_loss` is the raw KL. `0.0` disables it.
        logvar_clip: `(low, high)` range `logvar` is clipped to before `exp`.
        metric_name: Name of the KL tracker (and its key in `fit()` logs).
            Give distinct names if a model holds several KL layers.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: List `[mu, logvar]` of two tensors of identical shape
            `(batch, ..., latent_dim)`.

    Returns:
        `[mu, logvar]`, unchanged.

    Example:

    ```python
    h = keras.layers.Dense(64, activation="relu")(keras.Input((784,)))
    mu = keras.layers.Dense(2)(h)
    logvar = keras.layers.Dense(2)(h)
    mu, logvar = KLDivergenceLayer(beta=1.0)([mu, logvar])
    ```
    """

    def __init__(self, beta=1.0, free_bits=0.0,
                 logvar_clip=vae_losses.DEFAULT_LOGVAR_CLIP,
                 metric_name="kl_loss", **kwargs):
        super().__init__(**kwargs)
        owner = f"KLDivergenceLayer '{self.name}'"
        beta = check_finite_number(beta, "beta", owner, minimum=0.0)
        self.free_bits = check_finite_number(
            free_bits, "free_bits", owner, minimum=0.0
        )
        self.logvar_clip = (
            None if logvar_clip is None
            else check_range(logvar_clip, "logvar_clip", owner)
        )
        if not isinstance(metric_name, str) or not metric_name:
            raise ValueError(
                f"{owner}: `metric_name` must be a non-empty string, received "
                f"{metric_name!r}."
            )
        self.metric_name = metric_name
        # A variable, not a Python float: a Python attribute read in call()
        # would be frozen into the traced graph (docs/design.md,
        # "Inference-time switches live in variables").
        self.beta = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(beta),
            trainable=False,
            dtype="float32",
            name="beta",
        )
        self.kl_tracker = keras.metrics.Mean(name=metric_name)
        self.supports_masking = False

    def build(self, input_shape):
        self.z_dim = check_mu_logvar_shapes(
            input_shape, f"KLDivergenceLayer '{self.name}'"
        )
        self.built = True

    @property
    def latent_dim(self):
        """Deprecated spelling of `z_dim` (the latent size)."""
        return getattr(self, "z_dim", None)

    def call(self, inputs):
        mu, logvar = inputs
        kl_per_dim = vae_losses.kl_divergence_per_dim(
            mu, logvar, self.logvar_clip
        )
        kl = ops.mean(ops.sum(kl_per_dim, axis=-1))
        penalised = (
            vae_losses.free_bits_kl(kl_per_dim, self.free_bits)
            if self.free_bits > 0.0 else kl
        )
        self.add_loss(self.beta * penalised)
        self.kl_tracker.update_state(kl)
        return [mu, logvar]

    def compute_output_spec(self, inputs):
        # Pass-through: avoid tracing call() (and add_loss) symbolically.
        mu, logvar = inputs
        return [
            keras.KerasTensor(mu.shape, dtype=mu.dtype),
            keras.KerasTensor(logvar.shape, dtype=logvar.dtype),
        ]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[0]), tuple(input_shape[1])]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                # The current value, so clones made from the config keep an
                # annealed beta; saved weights restore it as well.
                "beta": float(ops.convert_to_numpy(self.beta)),
                "free_bits": self.free_bits,
                "logvar_clip": (
                    None if self.logvar_clip is None else list(self.logvar_clip)
                ),
                "metric_name": self.metric_name,
            }
        )
        return config
