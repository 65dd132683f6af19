"""Pass-through layer that adds the KL divergence term as a layer loss."""

import weakref

import keras
from keras import ops

from keras_vae_layers import _keras_compat
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

    Because Keras 3 removed `Layer.add_metric()`, the layer owns a metric,
    `layer.kl_tracker` (named `metric_name`, default `"kl_loss"`): the mean
    **unweighted** KL of its calls since the metric was last reset, so
    `fit()` logs show it, also when the layer sits inside an encoder
    sub-model. The running sum and count are two non-trainable scalar
    weights, `kl_total` and `kl_count`, that the layer assigns in `call()`
    (like `BatchNormalization`'s moving statistics), so every backend's
    trainer carries them, JAX's stateless step included. They are running
    statistics, not model state: saved files (`.keras`, `.weights.h5`)
    hold `beta` only, as before, so files written by earlier versions and
    on any backend load.

    On JAX, Keras computes per-batch logs inside its compiled step where
    the layer's variables are not visible, so the per-batch `kl_loss` of a
    Functional model is `nan` there (progress bar, `on_train_batch_end`);
    epoch logs, `History` and `evaluate()` get the exact value.
    (`VAEModel` logs `kl_loss` exactly every batch on every backend.)

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
        # Running KL statistics (see the class docstring). "mean": under
        # tf.distribute each replica adds its own batch's KL, and the
        # mirrored value becomes the replicas' average.
        self.kl_total = self._running_statistic("kl_total")
        self.kl_count = self._running_statistic("kl_count")
        self.kl_tracker = _RunningKL(self, name=metric_name)
        self.supports_masking = False

    def _running_statistic(self, name):
        return self.add_weight(
            shape=(), initializer="zeros", trainable=False, dtype="float32",
            autocast=False, aggregation="mean", name=name,
        )

    def save_own_variables(self, store):
        # `beta` only, under the key files have always used for it, so
        # files written before the running statistics existed (and by any
        # backend) load.
        store["0"] = self.beta

    def load_own_variables(self, store):
        if list(store.keys()) != ["0"]:
            raise ValueError(
                f"KLDivergenceLayer '{self.name}': the weights file holds "
                f"{len(store.keys())} variables for this layer, expected 1 "
                "(`beta`). Was it saved from another kind of layer?"
            )
        self.beta.assign(store["0"])

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
        kl = ops.stop_gradient(kl)
        self.kl_total.assign_add(kl)
        self.kl_count.assign_add(1.0)
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


class _RunningKL(keras.metrics.Metric):
    """The mean KL of a `KLDivergenceLayer`'s calls since the last reset.

    Its state is the layer's `kl_total` / `kl_count` variables, which the
    layer updates in `call()`; `update_state` is therefore a no-op, and the
    metric owns no variables of its own (Keras' JAX trainer would not
    carry metric variables updated inside a layer's `call()`).
    """

    def __init__(self, layer, name):
        super().__init__(name=name, dtype="float32")
        # A weak reference: the variables belong to the layer, and Keras'
        # saving walks a metric's attributes (a strong one would lead it
        # from the metric back into the layer, endlessly).
        self._layer = weakref.ref(layer)

    def update_state(self, *args, **kwargs):
        """Does nothing: the layer accumulates in `call()`."""

    def reset_state(self):
        layer = self._layer()
        layer.kl_total.assign(0.0)
        layer.kl_count.assign(0.0)

    def result(self):
        layer = self._layer()
        total, count = layer.kl_total, layer.kl_count
        if _keras_compat.hidden_by_stateless_scope(total):
            # Inside Keras' JAX metrics phase: the value is unknown there.
            return ops.convert_to_tensor(float("nan"), dtype="float32")
        return ops.divide_no_nan(total, count)
