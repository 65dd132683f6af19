"""Hyperparameter specs of `VAEHyperModel`: parsing and registration.

A user gives each hyperparameter as a plain value (pinned), a `(min, max)`
tuple or a `{"min", "max", "step", "sampling"}` dict (a range), or a list (a
set of choices). `parse_int_spec` / `parse_float_spec` check such a value
and return a `HyperparameterSpec`, which registers itself on a
`keras_tuner.HyperParameters` (`register(hp)`), gives the value a dry build
uses (`first_value()`) and describes itself in one line (`describe()`).
Errors name `VAEHyperModel`, the only user, so they read as its own.
"""

import numbers

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int

__all__ = [
    "HyperparameterSpec",
    "is_integer",
    "parse_float_spec",
    "parse_int_spec",
]

_INT_SAMPLINGS = ("linear", "log", "reverse_log")
_RANGE_KEYS = ("min", "max", "step", "sampling")


class HyperparameterSpec:
    """A checked hyperparameter spec: `kind` is "fixed", "range" or "choice".

    Made by `parse_int_spec` / `parse_float_spec`; a fixed spec holds
    `value`, a range `low`, `high`, `step` and `sampling`, a choice its
    sorted `values` and the `default` (the first value the user listed).
    """

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
        """Whether the tuner chooses the value (a range or a choice)."""
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
        """The value of a first trial: fixed value, default or range min."""
        if self.kind == "fixed":
            return self.value
        if self.kind == "choice":
            return self.default
        return self.low

    def describe(self):
        """One line, e.g. `"log range [0.1, 10.0]"`."""
        if self.kind == "fixed":
            return repr(self.value)
        if self.kind == "choice":
            return f"choice {list(self.values)}"
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.sampling} range [{self.low}, {self.high}{step}]"


def is_integer(value):
    """Whether `value` is an integral number (not a bool)."""
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


def parse_int_spec(name, value, allow_none=False):
    """Checks an int spec (`z_dim`, `intermediate_dim`) of argument `name`.

    Ranges are sampled linearly unless the dict says otherwise. With
    `allow_none`, `None`, `"none"` and `0` mean "no layer" and are stored as
    `0` (numeric, so ordered choices work with `BayesianOptimization`).

    Returns:
        A `HyperparameterSpec`.
    """
    none_forms = " (or None / 'none' / 0 for no layer)" if allow_none else ""
    forms = (f"an int >= 1{none_forms}, a (min, max) tuple, a dict "
             f"{{'min', 'max', 'step', 'sampling'}} or a list of choices")

    def one(v, where):
        if allow_none and (_is_none_token(v) or (is_integer(v) and v == 0)):
            return 0
        if not is_integer(v) or v < 1:
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
            if not is_integer(v) or v < 1:
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


def parse_float_spec(name, value, fixed_minimum, strict_fixed_minimum):
    """Checks a float spec (`beta`, `learning_rate`) of argument `name`.

    Ranges are sampled on a log scale by default (bounds > 0); a fixed
    value or choice must be >= `fixed_minimum` (> with
    `strict_fixed_minimum`).

    Returns:
        A `HyperparameterSpec`.
    """
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
        return HyperparameterSpec(name, "fixed", value=low, is_int=is_int)
    return HyperparameterSpec(name, "range", low=low, high=high, step=step,
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
    return HyperparameterSpec(name, "fixed", value=one(value, name),
                              is_int=is_int)


def _choice(name, values, is_int=True):
    seen = set()
    dupes = [v for v in values if v in seen or seen.add(v)]
    if dupes:
        raise ValueError(
            f"VAEHyperModel: `{name}` lists a choice more than once "
            f"({sorted(set(dupes))}); received {values!r}."
        )
    if len(values) == 1:
        return HyperparameterSpec(name, "fixed", value=values[0],
                                  is_int=is_int)
    # Sorted, so the ordered Choice is meaningful to BayesianOptimization
    # (it models a choice by its index); the first listed value stays the
    # default.
    return HyperparameterSpec(name, "choice", values=sorted(values),
                              default=values[0], is_int=is_int)
