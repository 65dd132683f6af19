"""Refreshing Keras' cached predict/test functions.

Keras traces `predict_step` into a graph on the first `predict()` and keeps
that function. A layer whose `call()` reads a plain Python attribute (a
float, a bool, a string mode) has that value frozen into the graph: setting
the attribute afterwards changes nothing until the function is rebuilt with
`model.make_predict_function(force=True)` (docs/design.md, "Inference-time
switches live in variables"). The package's own switches are variables and
need none of this; the helpers here are for user layers with Python state.

In `predict()` and `evaluate()` Keras 3 builds (or reuses) the function
*before* calling `on_predict_begin`/`on_test_begin`, and reads
`model.predict_function`/`model.test_function` again for every batch. So a
rebuild inside those hooks is the function the batches then run; that is
what `PredictCacheRefresh(on="predict_begin")` does.

The freezing happens where Keras traces its steps: TensorFlow
(`tf.function`) and JAX (`jax.jit`). On torch Keras runs the steps eagerly
by default, so Python attributes are read on every call; a refresh there
costs nothing but rebuilding the (untraced) function objects.
"""

import copy

import keras
import numpy as np

from keras_vae_layers._validation import check_choice
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.callbacks._callback_base import find_layer_by_name
from keras_vae_layers.callbacks._callback_base import iter_layers

__all__ = ["PredictCacheRefresh", "refresh_predict_cache", "EVENTS",
           "FUNCTIONS"]

EVENTS = ("train_begin", "epoch_begin", "epoch_end", "train_end",
          "test_begin", "predict_begin")
"""Events at which `PredictCacheRefresh` can refresh."""

FUNCTIONS = ("predict", "test", "train")
"""Cached functions that can be refreshed."""

_OWNER = "PredictCacheRefresh"


def _check_names(value, name, choices, owner):
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(
            f"{owner}: `{name}` must be one of {choices} or a non-empty "
            f"list of them, received {value!r}."
        )
    for item in items:
        check_choice(item, name, choices, owner)
    return tuple(dict.fromkeys(items))


def refresh_predict_cache(model, functions=("predict", "test"),
                          recursive=True):
    """Drops cached predict/test (/train) functions so they are retraced.

    Only functions that exist are rebuilt (with `make_*_function(force=
    True)`), so the next `predict()`/`evaluate()` traces again and reads the
    current values of Python attributes. Nothing is traced by this call.

    Args:
        model: A Keras model.
        functions: Any of `"predict"`, `"test"`, `"train"`.
        recursive: Also refresh nested sub-models that have cached functions
            of their own (e.g. `vae.decoder.predict` used by
            `VAEModel.decode`).

    Returns:
        The number of functions refreshed.

    Example:

    ```python
    model.predict(x)
    model.get_layer("scale").factor = 2.0   # a Python attribute
    refresh_predict_cache(model)
    model.predict(x)                        # uses factor 2.0
    ```
    """
    functions = _check_names(functions, "functions", FUNCTIONS,
                             "refresh_predict_cache")
    models = [model]
    if recursive:
        models += [
            layer for layer in iter_layers(model)
            if isinstance(layer, keras.Model)
        ]
    count = 0
    for target in models:
        for kind in functions:
            if getattr(target, f"{kind}_function", None) is not None:
                getattr(target, f"make_{kind}_function")(force=True)
                count += 1
    return count


def _snapshot_value(value):
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 - uncopyable values compare by identity.
        return value


def _same(a, b):
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - arrays and odd types.
        try:
            return bool(np.array_equal(a, b))
        except Exception:  # noqa: BLE001
            return False


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class PredictCacheRefresh(CopySafeCallback):
    """Rebuilds the cached predict/test functions at chosen events.

    Use it for layers of your own whose `call()` reads a plain Python
    attribute: Keras freezes that value into the predict function on the
    first `predict()`. (The package's `SamplingLayer`/`KLDivergenceLayer`
    keep their switches in variables and do not need this.)

    Without `watch`, the functions are refreshed at every listed event.
    With `watch`, the listed attributes are compared with a snapshot at
    each event and the functions are refreshed only when one changed; the
    first check refreshes unconditionally, since the callback cannot know
    which values an already cached function captured. Each refresh costs one
    retrace at the next `predict()`/`evaluate()`.

    Events: `"predict_begin"` (pass the callback to `predict()`),
    `"test_begin"` (to `evaluate()`; during `fit()` it also fires before
    every validation run), `"train_begin"`, `"epoch_begin"`, `"epoch_end"`,
    `"train_end"` (in `fit()`).

    Args:
        on: An event name or a list of them. The default refreshes after
            every training epoch and at the start of `predict()`.
        watch: `None`, or a list of `(layer, "attribute")` pairs, where
            `layer` is a layer object or a layer name (looked up anywhere in
            the model; names survive deep copies and `get_config`).
        functions: Which cached functions to refresh: any of `"predict"`,
            `"test"`, `"train"` (refreshing `"train"` during `fit()` makes
            the next batch retrace the train step).
        recursive: Also refresh nested sub-models' cached functions.
        verbose: `1` prints a line per refresh.

    Example:

    ```python
    model.predict(x)                         # traces with scale.factor == 1
    scale.factor = 2.0
    model.predict(x)                         # still 1x: stale graph
    model.predict(x, callbacks=[PredictCacheRefresh(on="predict_begin")])
    # -> 2x

    refresher = PredictCacheRefresh(on="predict_begin",
                                    watch=[(scale, "factor")])
    model.predict(x, callbacks=[refresher])  # retraces only on change
    ```
    """

    _TRANSIENT = ("_snapshot", "_snapshot_model")
    _SHARED = ("watch",)

    def __init__(self, on=("epoch_end", "predict_begin"), watch=None,
                 functions=("predict", "test"), recursive=True, verbose=0):
        super().__init__()
        self.on = _check_names(on, "on", EVENTS, _OWNER)
        self.functions = _check_names(functions, "functions", FUNCTIONS,
                                      _OWNER)
        self.watch = _check_watch(watch)
        self.recursive = bool(recursive)
        self.verbose = int(verbose)
        self.refresh_count = 0
        self._snapshot = None
        self._snapshot_model = None

    def set_model(self, model):
        if model is not self._snapshot_model:
            # A different model: nothing is known about its caches.
            self._snapshot = None
            self._snapshot_model = model
        super().set_model(model)

    # ------------------------------------------------------------ checking

    def _watched_values(self):
        values = []
        for layer, attr in self.watch:
            if isinstance(layer, str):
                layer = find_layer_by_name(self.model, layer, _OWNER)
            if not hasattr(layer, attr):
                raise ValueError(
                    f"{_OWNER}: watched layer '{layer.name}' has no "
                    f"attribute {attr!r}."
                )
            values.append(_snapshot_value(getattr(layer, attr)))
        return values

    def _check(self, event):
        if event not in self.on:
            return
        if self.watch is not None:
            values = self._watched_values()
            previous = self._snapshot
            self._snapshot = values
            if previous is not None and all(
                _same(a, b) for a, b in zip(previous, values)
            ):
                return
        count = refresh_predict_cache(self.model, self.functions,
                                      self.recursive)
        self.refresh_count += 1
        if self.verbose:
            print(f"{_OWNER}: refreshed {count} cached function(s) at "
                  f"{event}.")

    # --------------------------------------------------------------- events

    def on_train_begin(self, logs=None):
        self._check("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self._check("epoch_begin")

    def on_epoch_end(self, epoch, logs=None):
        self._check("epoch_end")

    def on_train_end(self, logs=None):
        self._check("train_end")

    def on_test_begin(self, logs=None):
        self._check("test_begin")

    def on_predict_begin(self, logs=None):
        self._check("predict_begin")

    # -------------------------------------------------------- serialization

    def get_config(self):
        watch = None
        if self.watch is not None:
            watch = [
                [layer if isinstance(layer, str) else layer.name, attr]
                for layer, attr in self.watch
            ]
        return {
            "on": list(self.on),
            "watch": watch,
            "functions": list(self.functions),
            "recursive": self.recursive,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_watch(watch):
    if watch is None:
        return None
    if not isinstance(watch, (list, tuple)) or not watch:
        raise ValueError(
            f"{_OWNER}: `watch` must be None or a non-empty list of "
            f"(layer, 'attribute') pairs, received {watch!r}."
        )
    pairs = []
    for item in watch:
        ok = (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and isinstance(item[1], str)
            and item[1]
            and (
                (isinstance(item[0], str) and item[0])
                or isinstance(item[0], keras.layers.Layer)
            )
        )
        if not ok:
            raise ValueError(
                f"{_OWNER}: each `watch` entry must be a (layer or layer "
                f"name, 'attribute') pair, received {item!r}."
            )
        if isinstance(item[0], keras.layers.Layer) and not hasattr(
            item[0], item[1]
        ):
            raise ValueError(
                f"{_OWNER}: watched layer '{item[0].name}' has no attribute "
                f"{item[1]!r}."
            )
        pairs.append((item[0], item[1]))
    return tuple(pairs)
