"""`KLAnnealing`: the callback that writes a scheduled KL weight into a
model's `beta` variables. The schedules themselves are `schedules.py`'s."""

import math

import keras
import numpy as np

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.callbacks._callback_base import find_layer_by_name
from keras_vae_layers.callbacks._callback_base import iter_layers
from keras_vae_layers.callbacks.schedules import SCHEDULE_CLASSES
from keras_vae_layers.callbacks.schedules import SCHEDULES
from keras_vae_layers.callbacks.schedules import beta_schedule
from keras_vae_layers.callbacks.schedules import check_betas
from keras_vae_layers.callbacks.schedules import check_ratio
from keras_vae_layers.callbacks.schedules import make_schedule
from keras_vae_layers.layers import KLDivergenceLayer

# `beta_schedule` and `SCHEDULES` are schedules.py's, still importable here.
__all__ = ["KLAnnealing", "beta_schedule", "SCHEDULES"]

PER = ("epoch", "step")

DEFAULT_WARMUP_EPOCHS = 10


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class KLAnnealing(CopySafeCallback):
    """Anneals the KL weight `beta` during `fit()`, per epoch or per step.

    The callback assigns the scheduled value to `beta` *variables*, so the
    compiled train function is never retraced. What it writes:

    * a model with a `beta` variable (such as `VAEModel`): `model.beta`;
    * any other model (e.g. a Functional VAE): the `beta` of every
      `KLDivergenceLayer` found in it, nested sub-models included;
    * or what `target` names.

    With `per="epoch"` the value for epoch `e` (0-based, as in `fit()`) is
    set in `on_epoch_begin`, so `fit(initial_epoch=...)` continues the
    schedule where it was. With `per="step"` the value for the global step
    is set in `on_train_batch_begin` (with `steps_per_execution > 1`, once
    per execution; on JAX each per-step assignment first syncs the
    trainer's state into the variables, as any callback that writes
    variables mid-epoch must); the global step is the optimizer's
    `iterations` (read
    once per epoch, plus the batch index within the epoch), like a Keras
    learning-rate schedule. It is saved and restored with the optimizer's
    state, so the schedule continues across `fit()` calls and after a
    resume, also on data of unknown length; on a first run with
    known-length data it equals `epoch * steps_per_epoch + batch`.

    `logs["beta"]` is set in `on_epoch_end` to the value the variable holds
    then: the epoch's value with `per="epoch"`, the value of the epoch's last
    step with `per="step"` (the same as `VAEModel` logs itself). Place
    `KLAnnealing` before loggers such as `CSVLogger` so they see it; the
    `History` object always does.

    Args:
        schedule: `"linear"` (warm-up from `beta_min` to `beta_max`, then
            hold), `"constant"` (`beta_max`), `"cyclical"` (Fu et al. 2019,
            see `beta_schedule`), another name registered in
            `schedules.SCHEDULE_CLASSES`, or a callable taking the epoch (or
            global step with `per="step"`) and returning beta (finite,
            >= 0).
        beta_max: Target value (finite, >= 0).
        beta_min: Start value of each ramp (finite, 0 <= beta_min <=
            beta_max).
        warmup_epochs: Length of the linear ramp in epochs (int >= 1).
            With `per="step"` and no `warmup_steps`, it is converted to
            `warmup_epochs * steps_per_epoch` steps.
        warmup_steps: Length of the linear ramp in steps; only with
            `per="step"`.
        cycles: Number of cycles of the cyclical schedule over the whole
            `fit()` (`epochs` or `epochs * steps_per_epoch`).
        ratio: Fraction of each cycle spent ramping, in (0, 1].
        per: `"epoch"` or `"step"`.
        target: `None` (automatic, see above), or a layer name, a layer with
            a `beta` variable, a `keras.Variable`, or a list of these. Names
            are resolved in the trained model at `on_train_begin`, so they
            survive the deep copies keras-tuner makes of its callbacks.
        verbose: `1` prints beta at the start of every epoch.

    Example:

    ```python
    anneal = KLAnnealing("linear", beta_max=1.0, warmup_epochs=10)
    history = vae.fit(x, epochs=30, callbacks=[anneal])
    history.history["beta"]   # [0.0, 0.1, ..., 0.9, 1.0, 1.0, ...]

    cyclical = KLAnnealing("cyclical", cycles=4, ratio=0.5, per="step")
    ```
    """

    _TRANSIENT = ("_variables", "_epoch", "_epoch_start_step", "_beta_at")
    _SHARED = ("target",)

    def __init__(self, schedule="linear", beta_max=1.0, beta_min=0.0,
                 warmup_epochs=DEFAULT_WARMUP_EPOCHS, warmup_steps=None,
                 cycles=4, ratio=0.5, per="epoch", target=None, verbose=0):
        super().__init__()
        owner = "KLAnnealing"
        if not callable(schedule):
            names = tuple(SCHEDULE_CLASSES)
            if not isinstance(schedule, str):
                raise ValueError(
                    f"{owner}: `schedule` must be one of {names} or a "
                    f"callable, received {schedule!r}."
                )
            check_choice(schedule, "schedule", names, owner)
        self.schedule = schedule
        self.beta_min, self.beta_max = check_betas(beta_min, beta_max,
                                                   owner)
        self.per = check_choice(per, "per", PER, owner)
        self.warmup_epochs = check_positive_int(
            warmup_epochs, "warmup_epochs", owner
        )
        if warmup_steps is not None:
            if per != "step":
                raise ValueError(
                    f"{owner}: `warmup_steps` needs per='step', received "
                    f"warmup_steps={warmup_steps!r} with per={per!r}; use "
                    "`warmup_epochs` for per-epoch annealing."
                )
            warmup_steps = check_positive_int(warmup_steps, "warmup_steps",
                                              owner)
        self.warmup_steps = warmup_steps
        self.cycles = check_positive_int(cycles, "cycles", owner)
        self.ratio = check_ratio(ratio, owner)
        self.target = _check_target(target, owner)
        self.verbose = int(verbose)
        self._variables = None
        self._epoch = None
        self._epoch_start_step = None
        self._beta_at = None

    # ------------------------------------------------------------- schedule

    def value_at(self, index):
        """beta for epoch (`per="epoch"`) or global step `index`.

        Available once training has begun (it needs the run length).
        """
        if callable(self.schedule):
            value = self.schedule(index)
            try:
                number = float(np.asarray(value))
            except (TypeError, ValueError):
                number = float("nan")
            if isinstance(value, bool) or not (
                math.isfinite(number) and number >= 0.0
            ):
                raise ValueError(
                    "KLAnnealing: the `schedule` callable must return a "
                    f"finite beta >= 0, returned {value!r} at {self.per} "
                    f"{index}."
                )
            return number
        schedule = self._beta_at
        if schedule is None:  # Before training: the run length is unknown.
            schedule = self._make_schedule(total=None, warmup=None)
        return schedule(index)

    def _make_schedule(self, total, warmup):
        """The named schedule for a run of `total` epochs or steps."""
        return make_schedule(
            self.schedule, "KLAnnealing", beta_min=self.beta_min,
            beta_max=self.beta_max, total=total, warmup=warmup,
            cycles=self.cycles, ratio=self.ratio,
        )

    def _assign(self, value):
        # On JAX the trainer holds the model state outside the variables
        # during an epoch and reads the variables again only after a sync;
        # reading `self.model` syncs, so the assignment reaches the next
        # step instead of being overwritten (a no-op elsewhere).
        _ = self.model
        for variable in self._variables:
            variable.assign(value)

    # --------------------------------------------------------------- events

    def on_train_begin(self, logs=None):
        self._variables = _resolve_variables(self.model, self.target)
        params = self.params or {}
        epochs = params.get("epochs")
        steps = params.get("steps")
        self._epoch = 0
        self._epoch_start_step = None
        if callable(self.schedule):
            return
        if self.per == "epoch":
            self._beta_at = self._make_schedule(epochs, self.warmup_epochs)
            return
        arguments = SCHEDULE_CLASSES[self.schedule].arguments()
        # The run length in steps, or a warm-up derived from it.
        needs_steps = "total" in arguments or (
            "warmup" in arguments and self.warmup_steps is None)
        if needs_steps and not steps:
            raise ValueError(
                "KLAnnealing: per='step' with the "
                f"{self.schedule!r} schedule needs the number of steps per "
                "epoch, which Keras does not know for this data (unknown "
                "dataset length). Pass `steps_per_epoch` to fit(), give "
                "`warmup_steps`, or use per='epoch'."
            )
        warmup = self.warmup_steps
        if warmup is None and steps:
            warmup = self.warmup_epochs * int(steps)
        total = int(steps) * int(epochs) if steps and epochs else None
        self._beta_at = self._make_schedule(total, warmup)

    def on_epoch_begin(self, epoch, logs=None):
        if self._variables is None:
            self.on_train_begin()
        self._epoch = int(epoch)
        if self.per == "step":
            # One host read per epoch, none per step: within the epoch the
            # step is this plus Keras' batch index.
            self._epoch_start_step = _optimizer_step(self.model)
            return
        value = self.value_at(self._epoch)
        self._assign(value)
        if self.verbose:
            print(f"KLAnnealing: epoch {epoch + 1}: beta = {value:.6g}")

    def on_train_batch_begin(self, batch, logs=None):
        if self.per != "step":
            return
        if self._variables is None:
            self.on_train_begin()
        if self._epoch_start_step is None:
            self._epoch_start_step = _optimizer_step(self.model) - int(batch)
        self._assign(self.value_at(self._epoch_start_step + int(batch)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._variables:
            logs["beta"] = float(
                keras.ops.convert_to_numpy(self._variables[0])
            )

    # -------------------------------------------------------- serialization

    def get_config(self):
        schedule = self.schedule
        if callable(schedule):
            schedule = keras.saving.serialize_keras_object(schedule)
        return {
            "schedule": schedule,
            "beta_max": self.beta_max,
            "beta_min": self.beta_min,
            "warmup_epochs": self.warmup_epochs,
            "warmup_steps": self.warmup_steps,
            "cycles": self.cycles,
            "ratio": self.ratio,
            "per": self.per,
            "target": _target_config(self.target),
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("schedule"), dict):
            config["schedule"] = keras.saving.deserialize_keras_object(
                config["schedule"]
            )
        return cls(**config)


def _optimizer_step(model):
    """The optimizer's `iterations` (saved with the optimizer state)."""
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    if iterations is None:
        raise ValueError(
            "KLAnnealing: per='step' follows the optimizer's `iterations`, "
            f"but model '{model.name}' has no optimizer; compile it first "
            "or use per='epoch'."
        )
    return int(keras.ops.convert_to_numpy(iterations))


# ----------------------------------------------------------------------------
# Targets
# ----------------------------------------------------------------------------


def _is_variable(obj):
    return isinstance(obj, keras.Variable)


def _check_target(target, owner):
    if target is None:
        return None
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    if not items:
        raise ValueError(
            f"{owner}: `target` must not be an empty list; use None for "
            "automatic selection."
        )
    for item in items:
        ok = (
            isinstance(item, str) and item
            or _is_variable(item)
            or (isinstance(item, keras.layers.Layer)
                and _is_variable(getattr(item, "beta", None)))
        )
        if not ok:
            raise ValueError(
                f"{owner}: each `target` entry must be a layer name, a layer "
                "with a `beta` variable (e.g. KLDivergenceLayer, VAEModel) "
                f"or a keras.Variable, received {item!r}."
            )
    return tuple(items)


def _target_config(target):
    if target is None:
        return None
    names = []
    for item in target:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, keras.layers.Layer):
            names.append(item.name)
        else:
            raise NotImplementedError(
                "KLAnnealing.get_config: a keras.Variable `target` cannot be "
                "serialized; pass the layer (or its name) instead."
            )
    return names


def _resolve_variables(model, target):
    owner = "KLAnnealing"
    if target is not None:
        variables = []
        for item in target:
            if isinstance(item, str):
                layer = find_layer_by_name(model, item, owner)
                beta = getattr(layer, "beta", None)
                if not _is_variable(beta):
                    raise ValueError(
                        f"{owner}: target layer {item!r} in model "
                        f"'{model.name}' has no `beta` variable (type "
                        f"{type(layer).__name__})."
                    )
                variables.append(beta)
            elif _is_variable(item):
                variables.append(item)
            else:
                variables.append(item.beta)
        return variables
    beta = getattr(model, "beta", None)
    if _is_variable(beta):
        return [beta]
    variables = [
        layer.beta for layer in iter_layers(model)
        if isinstance(layer, KLDivergenceLayer)
    ]
    if not variables:
        raise ValueError(
            f"{owner}: model '{model.name}' (type {type(model).__name__}) "
            "has neither a `beta` variable (like VAEModel) nor any "
            "KLDivergenceLayer, so there is no KL weight to anneal. Pass "
            "`target=` to name the layer(s) or variable(s) to write."
        )
    return variables
