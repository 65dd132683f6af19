"""`VAEHyperModel`: a `keras_tuner.HyperModel` of conv VAEs.

The search-space specs are parsed by `search_space`, the objective checked
by `objective`; this module builds, compiles and fits the models.
"""

import warnings

import keras
import keras_tuner

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import reject_unknown_arguments
from keras_vae_layers._validation import renamed
from keras_vae_layers.models.builders import build_conv_encoder_decoder
from keras_vae_layers.models.vae import VAEModel
from keras_vae_layers.tuning.objective import BETA_WEIGHTED_OBJECTIVES
from keras_vae_layers.tuning.objective import DEFAULT_OBJECTIVE
from keras_vae_layers.tuning.objective import vae_objective
from keras_vae_layers.tuning.search_space import is_integer
from keras_vae_layers.tuning.search_space import parse_float_spec
from keras_vae_layers.tuning.search_space import parse_int_spec

__all__ = ["HYPERPARAMETER_NAMES", "VAEHyperModel"]

HYPERPARAMETER_NAMES = ("z_dim", "intermediate_dim", "beta", "learning_rate")
"""Names `VAEHyperModel` registers (`learning_rate` only when searched)."""


class VAEHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` of conv VAEs (`VAEModel`).

    `build(hp)` returns a compiled and **built** `VAEModel` (its weights
    exist before training, so keras-tuner's trial checkpoints reload in
    `get_best_models()` and in Hyperband's later rounds). It searches:

    * `z_dim`: the latent size.
    * `intermediate_dim`: the Dense layer between Flatten and the
      `mu`/`logvar` heads; the value `0` means "no extra layer".
    * `beta`: the KL weight (the older literature's `fact`).
    * `learning_rate`: only when given as a range or a list.

    Each of them takes one of these forms:

    * a plain value pins it: `z_dim=16`, `intermediate_dim=None`,
      `beta=1.0`. `z_dim`, `intermediate_dim` and `beta` are then registered
      with `hp.Fixed`, so they appear in every trial's hyperparameters; a
      fixed `learning_rate` is not registered at all.
    * a `(min, max)` **tuple** is a range: `hp.Int` for `z_dim` and
      `intermediate_dim` (linear), `hp.Float` with `sampling="log"` for
      `beta` and `learning_rate` (both bounds must be > 0). A dict
      `{"min": 8, "max": 64, "step": 8, "sampling": "linear"}` gives the
      step and sampling explicitly. `min == max` pins the value.
    * a **list** is a set of choices (`hp.Choice`, stored sorted so that
      `BayesianOptimization` sees an ordered axis; the first listed value is
      the default). For `intermediate_dim` the list may contain `None` (or
      `"none"` / `0`) for "no extra layer", e.g. `[None, 64, 256]`; it is
      stored as `0` so the choice stays numeric. A tuple that contains
      `None` is read as such a list (a range cannot contain "none").

    The search space therefore holds exactly `z_dim`, `intermediate_dim` and
    `beta`, plus `learning_rate` when it is searched. `build()` only
    creates layers (no data, no training step), so it is cheap; keras-tuner
    calls it once when the tuner is constructed to collect the space.

    Objective: use `hypermodel.objective` (default `val_neg_elbo`, the
    unweighted validation negative ELBO, direction "min") as the tuner's
    objective. `val_loss` is `reco + beta * kl` and is not comparable
    across `beta` values: a smaller `beta` always "wins". Trials need
    `validation_data` for any `val_*` objective; `fit()` fails the search
    at once (not trial by trial) when it is missing.

    Args:
        input_shape: Image shape `(height, width, channels)`.
        z_dim: Latent size spec (see above). Default `(2, 32)`.
        intermediate_dim: Intermediate Dense size spec. Default
            `[None, 64, 128, 256]`.
        beta: KL-weight spec; a range is log-scaled. Default `(0.1, 10.0)`.
        learning_rate: Learning-rate spec; default `1e-3` (fixed).
        encoder_filters, encoder_kernel_sizes, encoder_strides: The encoder
            conv stack, as in `build_conv_encoder_decoder`. Default two
            stride-2 3x3 layers with 32 and 64 filters.
        decoder_filters: The decoder's `Conv2DTranspose` filters; by default
            the mirror image of the encoder ending in `input_shape[-1]`
            (encoder `(32, 64)` -> decoder `(32, channels)`).
        decoder_kernel_sizes, decoder_strides: Default to the encoder's, in
            reverse order.
        padding, activation, batch_norm, dropout_rate, eps_clip,
        output_activation: Passed to `build_conv_encoder_decoder`.
            `output_activation=None`/`"linear"` trains on logits
            (`from_logits=True`).
        reconstruction_loss, element_reduction, free_bits: Passed to
            `VAEModel` (`reduction` is the deprecated spelling of
            `element_reduction`).
        optimizer: An optimizer name (`"adam"`, `"adamw"`, `"rmsprop"`, ...)
            or a callable `f(learning_rate) -> keras.optimizers.Optimizer`
            (called once per build: every trial needs a fresh optimizer).
        compile_kwargs: Extra `VAEModel.compile` arguments, e.g.
            `{"jit_compile": False, "steps_per_execution": 8}`.
        objective: Objective name from `OBJECTIVE_NAMES` or a
            `keras_tuner.Objective`; exposed as `self.objective`.
        seed: Seed of the encoder's `SamplingLayer`.
        name: Name of this hypermodel.
        tunable: See `keras_tuner.HyperModel`.

    Raises:
        ValueError: On empty ranges or choice lists, `min > max`,
            non-positive `beta`/`learning_rate` range bounds, unknown
            objective names (the message lists the metrics `VAEModel`
            logs), or an architecture the builder rejects.

    Example:

    ```python
    hypermodel = VAEHyperModel((28, 28, 1), z_dim=[4, 8, 16],
                               intermediate_dim=[None, 128], beta=(0.2, 5.0))
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=10,
        directory="runs/tune", project_name="vae")
    tuner.search(x_train, epochs=5, batch_size=64, validation_data=(x_val,))
    assert completed_trials(tuner)        # keras-tuner swallows trial errors
    best = tuner.get_best_models(1)[0]
    images = best.sample(16, seed=0)
    ```
    """

    def __init__(
        self,
        input_shape,
        z_dim=(2, 32),
        intermediate_dim=(None, 64, 128, 256),
        beta=(0.1, 10.0),
        learning_rate=1e-3,
        encoder_filters=(32, 64),
        encoder_kernel_sizes=3,
        encoder_strides=2,
        decoder_filters=None,
        decoder_kernel_sizes=None,
        decoder_strides=None,
        padding="same",
        activation="leaky_relu",
        batch_norm=False,
        dropout_rate=0.0,
        eps_clip=5.0,
        output_activation="sigmoid",
        reconstruction_loss="bce",
        element_reduction="sum",
        free_bits=0.0,
        optimizer="adam",
        compile_kwargs=None,
        objective=DEFAULT_OBJECTIVE,
        seed=None,
        name=None,
        tunable=True,
        **deprecated,
    ):
        element_reduction = renamed(deprecated, "reduction",
                                    "element_reduction", element_reduction,
                                    "sum", "VAEHyperModel")
        reject_unknown_arguments(deprecated, "VAEHyperModel")
        super().__init__(name=name, tunable=tunable)
        self._z_dim_spec = parse_int_spec("z_dim", z_dim)
        self._intermediate_dim_spec = parse_int_spec(
            "intermediate_dim", intermediate_dim, allow_none=True)
        self._beta_spec = parse_float_spec(
            "beta", beta, fixed_minimum=0.0, strict_fixed_minimum=False)
        self._learning_rate_spec = parse_float_spec(
            "learning_rate", learning_rate, fixed_minimum=0.0,
            strict_fixed_minimum=True)
        self.objective = vae_objective(objective)
        if (self.objective.name in BETA_WEIGHTED_OBJECTIVES
                and self._beta_spec.searched):
            warnings.warn(
                f"VAEHyperModel: objective {self.objective.name!r} is "
                "reco + beta * kl and `beta` is searched, so trials with a "
                "smaller beta score better whatever their quality; use "
                f"{DEFAULT_OBJECTIVE!r} to compare across beta.",
                UserWarning, stacklevel=2,
            )

        self.input_shape = _check_input_shape(input_shape)
        self.optimizer = optimizer
        self.compile_kwargs = _check_compile_kwargs(compile_kwargs)
        self.free_bits = free_bits
        self.reconstruction_loss = reconstruction_loss
        self.element_reduction = element_reduction
        self.seed = seed
        self.from_logits = output_activation in (None, "linear")
        self.builder_kwargs = dict(
            encoder_filters=encoder_filters,
            encoder_kernel_sizes=encoder_kernel_sizes,
            encoder_strides=encoder_strides,
            decoder_filters=(
                _mirror_filters(encoder_filters, self.input_shape[-1])
                if decoder_filters is None else decoder_filters),
            decoder_kernel_sizes=(
                _reversed(encoder_kernel_sizes)
                if decoder_kernel_sizes is None else decoder_kernel_sizes),
            decoder_strides=(
                _reversed(encoder_strides)
                if decoder_strides is None else decoder_strides),
            padding=padding,
            activation=activation,
            batch_norm=batch_norm,
            dropout_rate=dropout_rate,
            eps_clip=eps_clip,
            output_activation=output_activation,
            seed=seed,
        )
        # Fail here, not inside a trial (keras-tuner would swallow it): one
        # optimizer and one VAEModel config check with the first values.
        self._make_optimizer(self._learning_rate_spec.first_value())
        _check_vae_args(reconstruction_loss, element_reduction, free_bits)
        # The builder validates every architecture argument and the shapes
        # before it creates a layer; a dry build with the first values
        # surfaces bad architectures now.
        self._build_encoder_decoder(
            self._z_dim_spec.first_value(),
            self._intermediate_dim_spec.first_value())

    # ------------------------------------------------------------- the space

    @property
    def searched_hyperparameters(self):
        """Names of the hyperparameters that are searched (not pinned)."""
        return tuple(
            spec.name for spec in self._specs() if spec.searched
        )

    def _specs(self):
        return (self._z_dim_spec, self._intermediate_dim_spec,
                self._beta_spec, self._learning_rate_spec)

    def declare_hyperparameters(self, hp):
        """Registers the search space on `hp` without building a model.

        Example:

        ```python
        hp = keras_tuner.HyperParameters()
        hypermodel.declare_hyperparameters(hp)
        [p.name for p in hp.space]   # ['z_dim', 'intermediate_dim', 'beta']
        ```
        """
        self._register_all(hp)

    def _register_all(self, hp):
        z_dim = self._z_dim_spec.register(hp)
        intermediate_dim = self._intermediate_dim_spec.register(hp)
        beta = self._beta_spec.register(hp)
        if self._learning_rate_spec.searched:
            learning_rate = self._learning_rate_spec.register(hp)
        else:
            learning_rate = self._learning_rate_spec.value
        return (int(z_dim), int(intermediate_dim), float(beta),
                float(learning_rate))

    def describe(self):
        """A one-line-per-hyperparameter description of the search space."""
        return "\n".join(
            f"{spec.name}: {spec.describe()}"
            + (" (not registered)" if spec.name == "learning_rate"
               and not spec.searched else "")
            for spec in self._specs()
        )

    # -------------------------------------------------------------- building

    def _make_optimizer(self, learning_rate):
        if isinstance(self.optimizer, keras.optimizers.Optimizer):
            raise ValueError(
                "VAEHyperModel: `optimizer` must be an optimizer name or a "
                "callable `f(learning_rate)` returning a new optimizer, not "
                f"an optimizer instance ({type(self.optimizer).__name__}): "
                "every trial needs a fresh optimizer."
            )
        if isinstance(self.optimizer, str):
            try:
                opt = keras.optimizers.get({
                    "class_name": self.optimizer,
                    "config": {"learning_rate": learning_rate},
                })
            except (ValueError, TypeError) as err:
                raise ValueError(
                    f"VAEHyperModel: unknown `optimizer` {self.optimizer!r} "
                    f"({err})."
                ) from None
            return opt
        if callable(self.optimizer):
            opt = self.optimizer(learning_rate)
            if not isinstance(opt, keras.optimizers.Optimizer):
                raise ValueError(
                    "VAEHyperModel: the `optimizer` callable must return a "
                    "keras.optimizers.Optimizer, returned "
                    f"{opt!r} of type {type(opt).__name__}."
                )
            return opt
        raise ValueError(
            "VAEHyperModel: `optimizer` must be an optimizer name or a "
            "callable `f(learning_rate)`, received "
            f"{self.optimizer!r} of type {type(self.optimizer).__name__}."
        )

    def _build_encoder_decoder(self, z_dim, intermediate_dim):
        # The model owns the KL term (and `beta`): no KL layer in the
        # encoder.
        return build_conv_encoder_decoder(
            self.input_shape, z_dim,
            intermediate_dim=intermediate_dim or None, kl_layer=False,
            **self.builder_kwargs,
        )

    def build(self, hp):
        """Builds, builds the weights of, and compiles one `VAEModel`.

        Args:
            hp: A `keras_tuner.HyperParameters`.

        Returns:
            A compiled `VAEModel` whose variables already exist.
        """
        z_dim, intermediate_dim, beta, learning_rate = self._register_all(hp)
        encoder, decoder = self._build_encoder_decoder(z_dim,
                                                       intermediate_dim)
        vae = VAEModel(
            encoder, decoder, beta=beta,
            reconstruction_loss=self.reconstruction_loss,
            element_reduction=self.element_reduction,
            from_logits=self.from_logits,
            free_bits=self.free_bits,
            eps_clip=self.builder_kwargs["eps_clip"], seed=self.seed,
            name="vae",
        )
        # Symbolic build: creates every variable (and records the build
        # config) without running a forward pass.
        vae.build((None,) + self.input_shape)
        vae.compile(optimizer=self._make_optimizer(learning_rate),
                    **self.compile_kwargs)
        # keras-tuner's checkpoints (`save_weights`) hold the optimizer
        # slots too; building them now lets `load_weights` restore them
        # (Hyperband's later rounds continue with the optimizer state) in
        # place of skipping them with a warning.
        vae.optimizer.build(vae.trainable_variables)
        return vae

    def fit(self, hp, model, *args, **kwargs):
        """Trains `model` with `model.fit(*args, **kwargs)`.

        Fails the whole search with a clear `ValueError` (a keras-tuner
        `FatalValueError`, which is not swallowed) when the objective is a
        `val_*` metric and neither `validation_data` nor `validation_split`
        was given, or when the tuner was created without an objective.
        """
        objective = _tuner_objective(kwargs.get("callbacks")) or self.objective
        if objective.name == "default_objective":
            raise keras_tuner.errors.FatalValueError(
                "VAEHyperModel: the tuner has no objective; create it with "
                "`objective=hypermodel.objective` (default "
                f"{DEFAULT_OBJECTIVE!r}, direction 'min')."
            )
        has_validation = (
            kwargs.get("validation_data") is not None
            or bool(kwargs.get("validation_split"))
            or len(args) > 6  # passed positionally (unusual)
        )
        if objective.name.startswith("val_") and not has_validation:
            raise keras_tuner.errors.FatalValueError(
                f"VAEHyperModel: the objective {objective.name!r} is a "
                "validation metric; pass `validation_data=(x_val,)` (or "
                "`validation_split`) to `tuner.search()`."
            )
        return model.fit(*args, **kwargs)


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


def _tuner_objective(callbacks):
    """The tuner's objective, read from its checkpoint callback if present."""
    for callback in callbacks or ():
        objective = getattr(callback, "objective", None)
        if isinstance(objective, keras_tuner.Objective):
            return objective
    return None


def _check_input_shape(input_shape):
    if (
        isinstance(input_shape, (str, bytes))
        or not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 3
        or not all(is_integer(d) and d >= 1 for d in input_shape)
    ):
        raise ValueError(
            "VAEHyperModel: `input_shape` must be a (height, width, "
            f"channels) tuple of positive ints, received {input_shape!r}."
        )
    return tuple(int(d) for d in input_shape)


def _check_compile_kwargs(compile_kwargs):
    if compile_kwargs is None:
        return {}
    if not isinstance(compile_kwargs, dict):
        raise ValueError(
            "VAEHyperModel: `compile_kwargs` must be a dict or None, "
            f"received {compile_kwargs!r}."
        )
    reserved = sorted(set(compile_kwargs) & {"optimizer", "loss"})
    if reserved:
        raise ValueError(
            f"VAEHyperModel: `compile_kwargs` may not set {reserved}: the "
            "optimizer comes from `optimizer`/`learning_rate` and VAEModel "
            "computes its own loss."
        )
    return dict(compile_kwargs)


def _check_vae_args(reconstruction_loss, element_reduction, free_bits):
    check_choice(reconstruction_loss, "reconstruction_loss",
                 vae_losses.RECONSTRUCTION_LOSSES, "VAEHyperModel")
    check_choice(element_reduction, "element_reduction",
                 vae_losses.ELEMENT_REDUCTIONS, "VAEHyperModel")
    check_finite_number(free_bits, "free_bits", "VAEHyperModel", minimum=0.0)


def _mirror_filters(encoder_filters, channels):
    if isinstance(encoder_filters, (list, tuple)) and encoder_filters:
        return tuple(reversed(tuple(encoder_filters)[:-1])) + (channels,)
    return encoder_filters  # let the builder report the bad value


def _reversed(value):
    if isinstance(value, (list, tuple)):
        return tuple(reversed(tuple(value)))
    return value

