"""Argument checks shared by the dataset loaders (private)."""

import numpy as np

from keras_vae_layers._validation import check_range

DTYPES = ("uint8", "float32")
"""Image dtypes the loaders return: 0..255 or scaled to [0, 1]."""


def check_dtype(dtype, owner):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = dtype
    if name not in DTYPES:
        raise ValueError(
            f"{owner}: unknown `dtype` {dtype!r}; expected one of "
            f"{', '.join(repr(d) for d in DTYPES)}."
        )
    return name


def check_closed_range(value, name, owner, low_bound=None, high_bound=None,
                        low_exclusive=False):
    """A `(low, high)` pair with `low <= high` (equal means a fixed value)."""
    low, high = check_range(value, name, owner, allow_equal=True)
    too_low = low_bound is not None and (
        low <= low_bound if low_exclusive else low < low_bound)
    too_high = high_bound is not None and high > high_bound
    if too_low or too_high:
        left = "(" if low_exclusive else "["
        raise ValueError(
            f"{owner}: `{name}` must lie within {left}{low_bound}, "
            f"{high_bound}], received {value!r}."
        )
    return low, high
