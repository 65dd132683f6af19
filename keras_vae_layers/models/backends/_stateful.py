"""Test and predict steps of the backends that assign variables in place.

On TensorFlow (inside a `tf.function`) and torch (eagerly) a step reads
and updates variables directly, so these are the model's plain forward
passes; the JAX module runs the same model methods in a `StatelessScope`.
"""


def test_step(model, data):
    """One evaluation step: updates the metrics, returns the logs."""
    return model._test_logs(data)


def predict_step(model, data):
    """One prediction step: `z`, `mu`, `logvar` and the reconstruction."""
    return model._predict_outputs(data)
