"""keras-tuner integration: `VAEHyperModel` and the matching objective.

`VAEHyperModel` builds compiled, built `VAEModel`s from the conv
encoder/decoder builder and searches the latent size `z_dim`, the optional
Dense layer between Flatten and the `mu`/`logvar` heads
(`intermediate_dim`) and the KL weight `beta` (and, optionally, the
learning rate). Any of them can be pinned to a fixed value.

Why the objective is `val_neg_elbo` and not `val_loss`: the trained loss is
`reco + beta * kl`, so with `beta` in the search space a smaller `beta`
always gives a smaller `val_loss` whatever the model's quality. The
unweighted negative ELBO `reco + kl` is the same quantity for every trial,
so trials are comparable. `val_reco_loss` is the documented alternative
when only reconstruction quality matters (it too favours a small `beta`).

Note: keras-tuner imports TensorBoard's hparams plugin in every trial, and
it swallows trial exceptions (a failed trial is marked `FAILED`/`INVALID`
and the search goes on). Check `tuner.oracle.trials[i].status` after a
search; `completed_trials(tuner)` does it for you.
"""

import numbers
import warnings

import keras
import keras_tuner

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.models.builders import build_conv_encoder_decoder
from keras_vae_layers.models.vae import LOGGED_METRICS
from keras_vae_layers.models.vae import VAEModel

__all__ = [
    "DEFAULT_OBJECTIVE",
    "OBJECTIVE_NAMES",
    "VAEHyperModel",
    "completed_trials",
    "vae_objective",
]

DEFAULT_OBJECTIVE = "val_neg_elbo"
"""Unweighted validation negative ELBO: comparable across `beta` values."""

OBJECTIVE_NAMES = tuple(m for m in LOGGED_METRICS if m != "beta")
"""Metrics `VAEModel` logs that can serve as a tuning objective (all "min")."""

BETA_WEIGHTED_OBJECTIVES = ("loss", "total_loss", "val_loss",
                            "val_total_loss")
"""Objectives that contain `beta * kl` and so favour a small `beta`."""

HYPERPARAMETER_NAMES = ("z_dim", "intermediate_dim", "beta", "learning_rate")
"""Names `VAEHyperModel` registers (`learning_rate` only when searched)."""

_INT_SAMPLINGS = ("linear", "log", "reverse_log")
_RANGE_KEYS = ("min", "max", "step", "sampling")


# ----------------------------------------------------------------------------
# Objective
# ----------------------------------------------------------------------------


def vae_objective(name=DEFAULT_OBJECTIVE):
    """Returns the `keras_tuner.Objective` for a metric `VAEModel` logs.

    Every metric `VAEModel` logs is a loss, so the direction is always
    `"min"`; this saves spelling it out (keras-tuner cannot infer it for
    names such as `val_neg_elbo`).

    Args:
        name: A metric name from `OBJECTIVE_NAMES` (default
            `"val_neg_elbo"`, the unweighted validation negative ELBO, which
            is comparable across `beta` values; `"val_reco_loss"` is the
            alternative when only reconstructions matter), or a
            `keras_tuner.Objective` for one of them with direction `"min"`.

    Returns:
        A `keras_tuner.Objective(name, direction="min")`.

    Raises:
        ValueError: For a name `VAEModel` does not log (the message lists
            the names it logs), or an `Objective` with direction `"max"`.

    Example:

    ```python
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=vae_objective("val_reco_loss"), max_trials=10)
    ```
    """
    direction = "min"
    if isinstance(name, keras_tuner.Objective):
        direction = name.direction
        name = name.name
    if not isinstance(name, str) or name not in OBJECTIVE_NAMES:
        hint = ""
        if isinstance(name, str) and name in ("beta", "val_beta"):
            hint = " `beta` is a hyperparameter, not a quality measure."
        raise ValueError(
            f"vae_objective: unknown objective {name!r}; VAEModel logs "
            f"{', '.join(OBJECTIVE_NAMES)} (the `val_*` ones need "
            f"`validation_data`).{hint}"
        )
    if direction != "min":
        raise ValueError(
            f"vae_objective: objective {name!r} is a loss and must be "
            f"minimised; received direction {direction!r}, expected 'min'."
        )
    return keras_tuner.Objective(name, direction="min")


def completed_trials(tuner):
    """Returns the tuner's trials whose status is `COMPLETED`.

    keras-tuner catches exceptions raised inside a trial, marks the trial
    `FAILED` or `INVALID` and carries on, so a search can "finish" without
    a single trained model. Use this to check.

    Args:
        tuner: A `keras_tuner.Tuner` after `search()`.

    Returns:
        A list of `keras_tuner.engine.trial.Trial`, in trial-id order.
    """
    trials = tuner.oracle.trials
    return [trials[k] for k in sorted(trials)
            if trials[k].status == "COMPLETED"]


# ----------------------------------------------------------------------------
# Hyperparameter specifications
# ----------------------------------------------------------------------------


class _Spec:
    """A normalised hyperparameter spec: fixed, range or choice."""

    def __init__(self, name, kind, value=None, low=None, high=None,
                 step=None, sampling=None, values=None, default=None,
                 is_int=True):
        self.name = name
        self.kind = kind
        self.value = value
        self.low = low
        self.high = high
        self.step = step
        self.sampling = sampling
        self.values = values
        self.default = default
        self.is_int = is_int

    @property
    def searched(self):
        return self.kind != "fixed"

    def register(self, hp):
        """Registers the spec on `hp` and returns its current value."""
        if self.kind == "fixed":
            return hp.Fixed(self.name, self.value)
        if self.kind == "choice":
            return hp.Choice(self.name, list(self.values), ordered=True,
                             default=self.default)
        if self.is_int:
            return hp.Int(self.name, self.low, self.high, step=self.step,
                          sampling=self.sampling)
        return hp.Float(self.name, self.low, self.high, step=self.step,
                        sampling=self.sampling)

    def first_value(self):
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return self.default
        return self.low

    def describe(self):
        if self.kind == "fixed":
            return repr(self.value)
        if self.kind == "choice":
            return f"choice {list(self.values)}"
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.sampling} range [{self.low}, {self.high}{step}]"


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _spec_error(name, value, expected):
    return ValueError(f"VAEHyperModel: `{name}` {expected}, received "
                      f"{value!r}.")


def _is_none_token(value):
    return value is None or (isinstance(value, str)
                             and value.strip().lower() == "none")


def _range_parts(name, value, forms):
    """Splits a `(min, max)` pair or a dict into low, high, step, sampling."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(_RANGE_KEYS), key=str)
        if unknown:
            raise ValueError(
                f"VAEHyperModel: unknown key(s) {unknown} in the `{name}` "
                f"range {value!r}; expected keys {list(_RANGE_KEYS)}."
            )
        if "min" not in value or "max" not in value:
            raise ValueError(
                f"VAEHyperModel: the `{name}` range {value!r} needs both "
                f"'min' and 'max'."
            )
        return value["min"], value["max"], value.get("step"), value.get(
            "sampling")
    if len(value) == 0:
        raise ValueError(
            f"VAEHyperModel: `{name}` is an empty range {value!r}; pass "
            f"{forms}."
        )
    if len(value) != 2:
        raise ValueError(
            f"VAEHyperModel: a tuple `{name}` must be a (min, max) pair, "
            f"received {value!r} of length {len(value)}; pass {forms}."
        )
    return value[0], value[1], None, None


def _check_order(name, low, high):
    if low > high:
        raise ValueError(
            f"VAEHyperModel: the `{name}` range has min > max "
            f"(min={low!r}, max={high!r}); the range is empty."
        )


def _int_spec(name, value, allow_none=False):
    """Parses an int hyperparameter spec.

    With `allow_none`, `None`, `"none"` and `0` mean "no layer" and are
    stored as `0` (numeric, so ordered choices work with
    `BayesianOptimization`).
    """
    none_forms = " (or None / 'none' / 0 for no layer)" if allow_none else ""
    forms = (f"an int >= 1{none_forms}, a (min, max) tuple, a dict "
             f"{{'min', 'max', 'step', 'sampling'}} or a list of choices")

    def one(v, where):
        if allow_none and (_is_none_token(v) or (_is_int(v) and v == 0)):
            return 0
        if not _is_int(v) or v < 1:
            raise _spec_error(where, v, f"must be {forms}")
        return int(v)

    if allow_none and isinstance(value, tuple) and any(
        _is_none_token(v) for v in value
    ):
        # A range cannot contain "none": a tuple holding None is a set of
        # choices (this also keeps the default argument immutable).
        value = list(value)
    if isinstance(value, (tuple, dict)):
        low, high, step, sampling = _range_parts(name, value, forms)
        for part, v in (("min", low), ("max", high)):
            if not _is_int(v) or v < 1:
                raise _spec_error(
                    f"{name}` range `{part}", v,
                    "must be an int >= 1 (a range cannot include 'none'; "
                    "use a list such as [None, 64, 128])" if allow_none
                    else "must be an int >= 1",
                )
        low, high = int(low), int(high)
        _check_order(name, low, high)
        if step is not None:
            step = check_positive_int(step, f"{name}['step']",
                                      "VAEHyperModel")
        sampling = "linear" if sampling is None else sampling
        check_choice(sampling, f"{name}['sampling']", _INT_SAMPLINGS,
                     "VAEHyperModel")
        return _range_spec(name, low, high, step, sampling)
    return _choices_or_fixed(name, value, one, forms)


def _float_spec(name, value, fixed_minimum, strict_fixed_minimum):
    """Parses a positive float spec; ranges default to log sampling."""
    forms = ("a number, a (low, high) tuple (log scale), a dict "
             "{'min', 'max', 'step', 'sampling'} or a list of choices")

    def one(v, where):
        if not _is_real(v):
            raise _spec_error(where, v, f"must be {forms}")
        return check_finite_number(v, where, "VAEHyperModel",
                                   minimum=fixed_minimum,
                                   strict_minimum=strict_fixed_minimum)

    if isinstance(value, (tuple, dict)):
        low, high, step, sampling = _range_parts(name, value, forms)
        low = check_finite_number(low, f"{name}` range `min",
                                  "VAEHyperModel")
        high = check_finite_number(high, f"{name}` range `max",
                                   "VAEHyperModel")
        sampling = "log" if sampling is None else sampling
        check_choice(sampling, f"{name}['sampling']", _INT_SAMPLINGS,
                     "VAEHyperModel")
        for part, v in (("min", low), ("max", high)):
            if v <= 0.0:
                raise ValueError(
                    f"VAEHyperModel: the `{name}` range bounds must be > 0 "
                    f"(it is searched on a log scale); received {part}="
                    f"{v!r} in {value!r}."
                )
        _check_order(name, low, high)
        if step is not None:
            step = check_finite_number(step, f"{name}['step']",
                                       "VAEHyperModel", minimum=0.0,
                                       strict_minimum=True)
        return _range_spec(name, low, high, step, sampling, is_int=False)
    return _choices_or_fixed(name, value, one, forms, is_int=False)


def _range_spec(name, low, high, step, sampling, is_int=True):
    """A checked range; `low == high` is a fixed value."""
    if low == high:
        return _Spec(name, "fixed", value=low, is_int=is_int)
    return _Spec(name, "range", low=low, high=high, step=step,
                 sampling=sampling, is_int=is_int)


def _choices_or_fixed(name, value, one, forms, is_int=True):
    """A list of choices or a single value, each checked with `one`."""
    if isinstance(value, list):
        if not value:
            raise ValueError(
                f"VAEHyperModel: `{name}` is an empty list of choices; pass "
                f"{forms}."
            )
        values = [one(v, f"{name}[{i}]") for i, v in enumerate(value)]
        return _choice(name, values, is_int=is_int)
    return _Spec(name, "fixed", value=one(value, name), is_int=is_int)


def _choice(name, values, is_int=True):
    seen = set()
    dupes = [v for v in values if v in seen or seen.add(v)]
    if dupes:
        raise ValueError(
            f"VAEHyperModel: `{name}` lists a choice more than once "
            f"({sorted(set(dupes))}); received {values!r}."
        )
    if len(values) == 1:
        return _Spec(name, "fixed", value=values[0], is_int=is_int)
    # Sorted, so the ordered Choice is meaningful to BayesianOptimization
    # (it models a choice by its index); the first listed value stays the
    # default.
    return _Spec(name, "choice", values=sorted(values), default=values[0],
                 is_int=is_int)


# ----------------------------------------------------------------------------
# The hypermodel
# ----------------------------------------------------------------------------


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
        reconstruction_loss, reduction, free_bits: Passed to `VAEModel`.
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
        reduction="sum",
        free_bits=0.0,
        optimizer="adam",
        compile_kwargs=None,
        objective=DEFAULT_OBJECTIVE,
        seed=None,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        self._z_dim_spec = _int_spec("z_dim", z_dim)
        self._intermediate_dim_spec = _int_spec(
            "intermediate_dim", intermediate_dim, allow_none=True)
        self._beta_spec = _float_spec(
            "beta", beta, fixed_minimum=0.0, strict_fixed_minimum=False)
        self._learning_rate_spec = _float_spec(
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
        self.reduction = reduction
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
        _check_vae_args(reconstruction_loss, reduction, free_bits)
        # The builder validates every architecture argument and the shapes
        # before it creates a layer; a dry build with the first values
        # surfaces bad architectures now.
        self._build_encoder_decoder(
            self._z_dim_spec.first_value(),
            self._intermediate_dim_spec.first_value(),
            self._beta_spec.first_value())

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

    def _build_encoder_decoder(self, z_dim, intermediate_dim, beta):
        return build_conv_encoder_decoder(
            self.input_shape, z_dim,
            intermediate_dim=intermediate_dim or None,
            beta=beta, **self.builder_kwargs,
        )

    def build(self, hp):
        """Builds, builds the weights of, and compiles one `VAEModel`.

        Args:
            hp: A `keras_tuner.HyperParameters`.

        Returns:
            A compiled `VAEModel` whose variables already exist.
        """
        z_dim, intermediate_dim, beta, learning_rate = self._register_all(hp)
        encoder, decoder = self._build_encoder_decoder(
            z_dim, intermediate_dim, beta)
        vae = VAEModel(
            encoder, decoder, beta=beta,
            reconstruction_loss=self.reconstruction_loss,
            reduction=self.reduction, from_logits=self.from_logits,
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
        or not all(_is_int(d) and d >= 1 for d in input_shape)
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


def _check_vae_args(reconstruction_loss, reduction, free_bits):
    check_choice(reconstruction_loss, "reconstruction_loss",
                 vae_losses.RECONSTRUCTION_KINDS, "VAEHyperModel")
    check_choice(reduction, "reduction", vae_losses.REDUCTIONS,
                 "VAEHyperModel")
    check_finite_number(free_bits, "free_bits", "VAEHyperModel", minimum=0.0)


def _mirror_filters(encoder_filters, channels):
    if isinstance(encoder_filters, (list, tuple)) and encoder_filters:
        return tuple(reversed(tuple(encoder_filters)[:-1])) + (channels,)
    return encoder_filters  # let the builder report the bad value


def _reversed(value):
    if isinstance(value, (list, tuple)):
        return tuple(reversed(tuple(value)))
    return value

