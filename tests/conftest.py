"""Shared test set-up: quiet TensorFlow, fixed seeds, float32 policy reset.

The Keras backend comes from KERAS_BACKEND (TensorFlow when unset); run
each backend in its own pytest process. Tests marked `tf_only` need
TensorFlow itself (tf.distribute, TensorBoard, the TF step's graph
behaviour) and are skipped, with that reason, on the other backends.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"tf_only: needs the TensorFlow backend (running on {backend})")
    for item in items:
        if "tf_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Every test starts from float32 and a fresh Keras session."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
