"""`VAEModel`'s train/test/predict steps, one module per Keras backend.

Keras calls a model's steps differently per backend. TensorFlow and torch
call `step(data)` and let it read and assign variables in place
(TensorFlow inside a `tf.function`, torch eagerly). JAX calls
`step(state, data)`, a pure function of the variable values that returns
`(outputs, new_state)`. The loss terms (`VAEModel.compute_loss_terms`) are
backend-free `keras.ops` on every backend; only the gradient step and the
state plumbing live here.

`step_module()` imports the active backend's module and no other, so
importing the package never imports TensorFlow on JAX or torch.
"""

import importlib

from keras_vae_layers import _backend


def step_module(owner="VAEModel"):
    """The step module of the active Keras backend (imported on first use).

    Raises:
        ValueError: for a backend `VAEModel` has no step for (e.g. numpy).
    """
    _backend.check_training_backend(owner)
    return importlib.import_module(f"{__name__}.{_backend.backend()}")
