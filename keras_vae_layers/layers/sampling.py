"""Reparameterised sampling layer with clamped epsilon and a runtime switch."""

import keras
import numpy as np
from keras import ops

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_mu_logvar_shapes
from keras_vae_layers._validation import check_range

_FLOAT16_MAX = float(np.finfo(np.float16).max)


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class SamplingLayer(keras.layers.Layer):
    """Draws `z = mu + exp(0.5 * logvar) * eps * eps_factor`, `eps ~ N(0, I)`.

    `eps` is drawn with a `keras.random.SeedGenerator` owned by the layer and
    clamped element-wise to `[-eps_clip, eps_clip]`: rare draws with
    |eps| > 4 have been seen to push whole runs with small KL weights into a
    different minimum, and the clamp costs nothing.

    `eps_factor` is a non-trainable variable (default 1.0). Setting it to 0
    makes the layer deterministic (`z == mu`). Because it is a variable and
    not a Python attribute, the switch takes effect immediately, also on a
    model whose `predict()` function was already traced: no recompile and no
    `make_predict_function(force=True)`. Use `set_deterministic()`.

    Mixed precision: `z` is computed in float32 and cast to the dtype of
    `mu`. For float16 outputs it is first clipped to the float16 range
    (+-65504): `logvar` may reach its clip (20), and `exp(10) * 5` would
    otherwise overflow to `inf`. bfloat16 has float32's range and is not
    clipped.

    Args:
        eps_clip: Positive clamp for `eps`, or `None` to disable clamping.
        logvar_clip: `(low, high)` range `logvar` is clipped to before `exp`,
            or `None` to disable.
        seed: Optional int seed; layers built with the same seed produce the
            same sequence of draws.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: List `[mu, logvar]` of identically shaped tensors.

    Returns:
        `z`, a tensor with the shape of `mu`.

    Example:

    ```python
    z = SamplingLayer(eps_clip=5.0, seed=1)([mu, logvar])
    ...
    sampler.set_deterministic(True)   # z == mu from now on, no recompile
    ```
    """

    def __init__(self, eps_clip=5.0,
                 logvar_clip=vae_losses.DEFAULT_LOGVAR_CLIP, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        owner = f"SamplingLayer '{self.name}'"
        if eps_clip is not None:
            eps_clip = check_finite_number(
                eps_clip, "eps_clip", owner, minimum=0.0, strict_minimum=True
            )
        self.eps_clip = eps_clip
        self.logvar_clip = (
            None if logvar_clip is None
            else check_range(logvar_clip, "logvar_clip", owner)
        )
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int)
        ):
            raise ValueError(
                f"{owner}: `seed` must be an int or None, received {seed!r}."
            )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.eps_factor = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(1.0),
            trainable=False,
            dtype="float32",
            name="eps_factor",
        )

    def build(self, input_shape):
        self.z_dim = check_mu_logvar_shapes(
            input_shape, f"SamplingLayer '{self.name}'"
        )
        self.built = True

    @property
    def latent_dim(self):
        """Deprecated spelling of `z_dim` (the latent size)."""
        return getattr(self, "z_dim", None)

    def set_deterministic(self, deterministic=True):
        """Switches sampling off (`z == mu`) or back on, without retracing.

        Args:
            deterministic: `True` sets `eps_factor` to 0, `False` to 1.
        """
        self.eps_factor.assign(0.0 if deterministic else 1.0)

    @property
    def deterministic(self):
        """Whether `eps_factor` is currently 0."""
        return float(ops.convert_to_numpy(self.eps_factor)) == 0.0

    def call(self, inputs):
        mu, logvar = inputs
        out_dtype = mu.dtype
        eps = keras.random.normal(
            ops.shape(mu), dtype="float32", seed=self.seed_generator
        )
        z = vae_losses.reparameterize(
            mu, logvar, eps, eps_clip=self.eps_clip,
            logvar_clip=self.logvar_clip, eps_factor=self.eps_factor,
        )
        if keras.backend.standardize_dtype(out_dtype) == "float16":
            # Saturate instead of overflowing to inf in the cast (a
            # trace-time branch: float32 and bfloat16 models get no clip).
            z = ops.clip(z, -_FLOAT16_MAX, _FLOAT16_MAX)
        return ops.cast(z, out_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_output_spec(self, inputs):
        mu = inputs[0]
        return keras.KerasTensor(mu.shape, dtype=mu.dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "eps_clip": self.eps_clip,
                "logvar_clip": (
                    None if self.logvar_clip is None else list(self.logvar_clip)
                ),
                "seed": self.seed,
            }
        )
        return config
