"""Argument checks shared by every public entry point.

Each helper raises a `ValueError` whose message names the owner (layer,
function or class), the argument, the value received and what was expected,
so users see at once what they did wrong.
"""

import math
import numbers


def _prefix(owner):
    return f"{owner}: " if owner else ""


def check_finite_number(value, name, owner=None, minimum=None,
                        strict_minimum=False):
    """Returns `value` as a float after checking it is a finite real number.

    Args:
        value: The value to check.
        name: Argument name used in the error message.
        owner: Optional layer/function name used in the error message.
        minimum: Optional lower bound.
        strict_minimum: If `True` the bound is exclusive (`value > minimum`).

    Returns:
        `float(value)`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be a finite real number, "
            f"received {value!r} of type {type(value).__name__}."
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be finite, received {value!r}."
        )
    if minimum is not None:
        bad = value <= minimum if strict_minimum else value < minimum
        if bad:
            relation = ">" if strict_minimum else ">="
            raise ValueError(
                f"{_prefix(owner)}`{name}` must be {relation} {minimum}, "
                f"received {value!r}."
            )
    return value


def check_positive_int(value, name, owner=None, minimum=1):
    """Returns `value` as an int after checking it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be an integer >= {minimum}, "
            f"received {value!r} of type {type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be an integer >= {minimum}, "
            f"received {value!r}."
        )
    return int(value)


def check_choice(value, name, choices, owner=None):
    """Returns `value` after checking it is one of `choices`."""
    if value not in choices:
        expected = ", ".join(repr(c) for c in choices)
        raise ValueError(
            f"{_prefix(owner)}unknown `{name}` {value!r}; expected one of "
            f"{expected}."
        )
    return value


def check_range(value, name, owner=None, allow_equal=False):
    """Checks a `(low, high)` pair of finite numbers with `low < high`.

    With `allow_equal=True`, `low <= high` (equal meaning a fixed value).
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(
            f"{_prefix(owner)}`{name}` must be a (low, high) pair of numbers, "
            f"received {value!r}."
        )
    low = check_finite_number(value[0], f"{name}[0]", owner)
    high = check_finite_number(value[1], f"{name}[1]", owner)
    if not (low <= high if allow_equal else low < high):
        relation = "<=" if allow_equal else "<"
        raise ValueError(
            f"{_prefix(owner)}`{name}` must satisfy low {relation} high, "
            f"received low={low!r}, high={high!r}."
        )
    return (low, high)


def shapes_compatible(shape, expected):
    """Same rank, and equal sizes wherever both are known (not `None`)."""
    shape, expected = tuple(shape), tuple(expected)
    return len(shape) == len(expected) and all(
        a is None or b is None or a == b for a, b in zip(shape, expected)
    )


def check_mu_logvar_shapes(input_shape, owner):
    """Validates the `[mu_shape, logvar_shape]` pair given to a VAE layer.

    Returns:
        The latent dimension (last axis size) as an int.
    """
    shapes = input_shape
    is_pair = (
        isinstance(shapes, (list, tuple))
        and len(shapes) == 2
        and all(isinstance(s, (list, tuple)) for s in shapes)
    )
    if not is_pair:
        if isinstance(shapes, (list, tuple)) and all(
            s is None or isinstance(s, int) for s in shapes
        ):
            got = f"a single tensor of shape {tuple(shapes)}"
        else:
            got = f"{shapes!r}"
        raise ValueError(
            f"{owner} expects a list of two tensors `[mu, logvar]`, received "
            f"{got}. Call it as `layer([mu, logvar])`."
        )
    mu_shape, logvar_shape = (tuple(s) for s in shapes)
    for name, shape in (("mu", mu_shape), ("logvar", logvar_shape)):
        if len(shape) < 2:
            raise ValueError(
                f"{owner}: `{name}` must have rank >= 2 (batch, ..., "
                f"latent_dim), received shape {shape} of rank {len(shape)}."
            )
        if shape[-1] is None:
            raise ValueError(
                f"{owner}: the last dimension (latent_dim) of `{name}` must be "
                f"known, received shape {shape}."
            )
    if len(mu_shape) != len(logvar_shape) or any(
        a is not None and b is not None and a != b
        for a, b in zip(mu_shape, logvar_shape)
    ):
        raise ValueError(
            f"{owner}: `mu` and `logvar` must have the same shape, received "
            f"mu shape {mu_shape} and logvar shape {logvar_shape}."
        )
    return int(mu_shape[-1])



def renamed(kwargs, old, new, value, default, owner):
    """The value of argument `new`, or of its deprecated spelling `old`.

    Takes `old` out of the caller's `**kwargs` if it is there, warns with a
    `DeprecationWarning` that names `new`, and returns its value.

    Args:
        kwargs: The caller's `**kwargs` (modified in place).
        old: Deprecated argument name.
        new: Current argument name.
        value: The value the caller received for `new`.
        default: The default of `new`.
        owner: Name used in the messages.

    Raises:
        ValueError: When both spellings were given different values.
    """
    if old not in kwargs:
        return value
    import warnings

    old_value = kwargs.pop(old)
    if value != default and value != old_value:
        raise ValueError(
            f"{owner}: received both `{new}`={value!r} and its deprecated "
            f"spelling `{old}`={old_value!r}; pass only `{new}`."
        )
    warnings.warn(
        f"{owner}: `{old}` is deprecated; use `{new}` (same values).",
        DeprecationWarning, stacklevel=3,
    )
    return old_value


def reject_unknown_arguments(kwargs, owner):
    """Raises the `TypeError` Python would for leftover `**kwargs`."""
    if kwargs:
        raise TypeError(
            f"{owner} got unexpected keyword argument(s) {sorted(kwargs)}."
        )
