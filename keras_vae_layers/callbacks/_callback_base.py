"""Plumbing shared by the package callbacks (private).

keras-tuner deep-copies the callback list once per trial. A callback that
holds a model reference (set by `fit()`), open writers or per-run state would
drag a whole model (or an unpicklable handle) into that copy. The base class
below copies configuration only: run state is declared *transient* and reset
on copy, and user-supplied models, layers and variables are declared *shared*
and handed to the copy as they are.
"""

import copy
import math

import keras
import numpy as np

from keras_vae_layers import _keras_compat


class CopySafeCallback(keras.callbacks.Callback):
    """`keras.callbacks.Callback` whose deep copies carry configuration only.

    Subclasses list attribute names in two class tuples:

    * `_TRANSIENT`: run state (the attached model, writers, resolved layers)
      reset to `None` in the copy. The attached model always is.
    * `_SHARED`: references to user objects (models, layers, variables, or
      tuples of them) that the copy shares as they are: a Keras model
      cannot be deep-copied, and a copy that wrote into a clone of the
      user's layer would change nothing.

    Every other attribute is deep-copied.
    """

    _TRANSIENT = ()
    _SHARED = ()

    def __deepcopy__(self, memo):
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        transient = set(self._TRANSIENT) | {
            _keras_compat.CALLBACK_MODEL_ATTRIBUTE}
        for key in self._SHARED:
            value = self.__dict__.get(key)
            # Also shared where another attribute refers to the same object.
            memo[id(value)] = value
        for key, value in self.__dict__.items():
            if key in transient:
                value = None
            elif key not in self._SHARED:
                value = copy.deepcopy(value, memo)
            new.__dict__[key] = value
        return new


def iter_layers(model, include_self=False):
    """Every layer inside `model`, recursively (nested sub-models included)."""
    return _keras_compat.all_layers(model, include_self=include_self)


def find_layer_by_name(model, name, owner):
    """The first layer named `name` anywhere inside `model`."""
    for layer in iter_layers(model, include_self=True):
        if layer.name == name:
            return layer
    raise ValueError(
        f"{owner}: no layer named {name!r} in model '{model.name}'. Layer "
        f"names found: {sorted({l.name for l in iter_layers(model)})}."
    )


def to_float(value):
    """`value` as a Python float, `None` if it is not a finite scalar."""
    try:
        result = float(np.asarray(value))
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def logs_to_floats(logs):
    """Scalar entries of Keras `logs` as floats (non-finite ones as `None`)."""
    out = {}
    for key, value in (logs or {}).items():
        try:
            array = np.asarray(value)
        except Exception:  # noqa: BLE001 - odd log entries are skipped.
            continue
        if array.ndim != 0 or not np.issubdtype(array.dtype, np.number):
            continue
        out[str(key)] = to_float(array)
    return out
