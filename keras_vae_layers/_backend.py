"""What the active Keras backend supports, and clear errors where it does not.

The package runs on the TensorFlow, JAX and torch backends of Keras 3. A
few features are TensorFlow itself rather than Keras (`tf.data` pipelines,
`tf.distribute` strategies, TensorBoard image summaries); the helpers here
say so by name, early, instead of letting an obscure error surface from
inside a traced step. TensorFlow is never imported here unless it already
is (or the caller needs it).
"""

import importlib.util
import sys

import keras

TRAINING_BACKENDS = ("tensorflow", "jax", "torch")
"""Keras backends `VAEModel` trains on."""

_DISTRIBUTION_INSTEAD = {
    "jax": (
        "keras.distribution.DataParallel (e.g. "
        "keras.distribution.set_distribution(keras.distribution."
        "DataParallel())) on JAX"
    ),
    "torch": (
        "torch's own DistributedDataParallel launcher (torchrun) on torch"
    ),
}


def backend():
    """The active Keras backend's name (`keras.backend.backend()`)."""
    return keras.backend.backend()


def tensorflow_available():
    """Whether TensorFlow can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ValueError:  # a half-initialised module in sys.modules
        return "tensorflow" in sys.modules


def require_tensorflow(feature, instead):
    """Raises an `ImportError` naming `feature` if TensorFlow is missing.

    Args:
        feature: What needs TensorFlow (e.g. `"SampleGridLogger(log_dir=...)
            (TensorBoard images)"`).
        instead: What to do otherwise (install it, or an alternative).

    Raises:
        ImportError: if TensorFlow cannot be imported.
    """
    if not tensorflow_available():
        raise ImportError(
            f"{feature} needs TensorFlow, which is not installed (Keras "
            f"backend: {backend()!r}). Install it with `pip install "
            f"tensorflow`, or {instead}."
        )


def _tf_distribute():
    """`tf.distribute` if TensorFlow is loaded (no strategy and no
    distributed dataset can exist otherwise), else `None`."""
    return getattr(sys.modules.get("tensorflow"), "distribute", None)


def check_no_tf_distribute(owner, *datasets):
    """Refuses `tf.distribute` on a non-TensorFlow backend.

    `tf.distribute` only distributes TensorFlow-backend models: on JAX or
    torch a model built or trained inside `strategy.scope()` would silently
    run on one device, and a distributed dataset's per-replica batches
    fail deep inside Keras' data conversion. TensorFlow is not imported to
    check.

    Args:
        owner: Name of the caller for the message (e.g. `"VAEModel.fit"`).
        *datasets: `(argument name, value)` pairs of data to check for a
            distributed dataset.

    Raises:
        ValueError: inside a `tf.distribute` strategy scope, or for a
            distributed dataset, on JAX/torch.
    """
    name = backend()
    distribute = _tf_distribute()
    if name == "tensorflow" or distribute is None:
        return
    instead = _DISTRIBUTION_INSTEAD.get(name, "KERAS_BACKEND=tensorflow")
    for argument, data in datasets:
        if isinstance(data, distribute.DistributedDataset):
            raise ValueError(
                f"{owner}: `{argument}` is a tf.distribute distributed "
                f"dataset ({type(data).__name__}), but the Keras backend is "
                f"{name!r}: its per-replica batches only feed TensorFlow-"
                "backend models. Pass the tf.data.Dataset itself (Keras "
                f"converts its batches on {name}) and distribute with "
                f"{instead}."
            )
    if not distribute.has_strategy():
        return
    strategy = type(distribute.get_strategy()).__name__
    raise ValueError(
        f"{owner}: a tf.distribute strategy scope ({strategy}) is active, "
        f"but the Keras backend is {name!r}; tf.distribute only "
        "distributes models of the TensorFlow backend, so this model "
        f"would run on one device. Use {instead}, or run with "
        "KERAS_BACKEND=tensorflow to keep the strategy."
    )


def check_training_backend(owner):
    """Refuses backends `VAEModel` has no training step for (e.g. numpy).

    Raises:
        ValueError: for a backend outside `TRAINING_BACKENDS`.
    """
    name = backend()
    if name not in TRAINING_BACKENDS:
        raise ValueError(
            f"{owner}: the Keras backend {name!r} is not supported; "
            f"VAEModel runs on {', '.join(TRAINING_BACKENDS)}. Set "
            "KERAS_BACKEND to one of them before importing keras."
        )
