"""`VAEModel`'s steps on the TensorFlow backend: the `GradientTape` step.

Imported only when the Keras backend is TensorFlow
(`models.backends.step_module`). Everything else (layers, losses, the loss
terms of `VAEModel`) uses `keras.ops` only.
"""

import tensorflow as tf

from keras_vae_layers.models import _tf_multiworker


def num_replicas_in_sync():
    """Replicas of the active `tf.distribute` strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def apply_gradient_step(model, loss_fn):
    """Runs `loss_fn()` under a tape and applies the gradients.

    The loss is divided by the number of replicas before differentiation:
    `tf.distribute` sums gradients across replicas, so without this the
    effective learning rate would grow with the replica count. It is then
    passed through `optimizer.scale_loss`, which a `LossScaleOptimizer`
    (mixed_float16) uses to avoid float16 gradient underflow; the optimizer
    unscales the gradients itself.

    Args:
        model: The model whose `trainable_weights` are updated.
        loss_fn: Zero-argument callable returning `(loss, aux)` where `loss`
            is the scalar float32 batch loss and `aux` anything to pass back.

    Returns:
        `aux`.
    """
    with tf.GradientTape() as tape:
        loss, aux = loss_fn()
        replicas = num_replicas_in_sync()
        if replicas > 1:
            loss = loss / tf.cast(replicas, loss.dtype)
        scaled = model.optimizer.scale_loss(loss)
    weights = model.trainable_weights
    if weights:
        grads = tape.gradient(scaled, weights)
        if not model.optimizer.built:
            # Create the optimizer's variables here, not under the control
            # dependency below: there their initial values would depend on
            # `loss`, and with jit_compile=True XLA cannot lift such
            # variable creations out of the compiled step.
            model.optimizer.build(weights)
        # Keras' train function calls the step once more when a dataset of
        # unknown length runs dry; the optimizer's increment of `iterations`
        # has no data dependency and would still run in that call, so the
        # step count (and everything that follows it, such as per-step KL
        # annealing) would gain one phantom step per epoch. Tie the update
        # to the loss, which needs a batch.
        with tf.control_dependencies([loss]):
            model.optimizer.apply_gradients(zip(grads, weights))
    return aux


def train_step(model, data):
    """One training step (inside Keras' `tf.function`); returns the logs."""
    x, y, sample_weight = model._unpack(data)

    def loss_fn():
        terms = model.compute_loss_terms(x, y, sample_weight, training=True)
        return terms["total_loss"], terms

    terms = apply_gradient_step(model, loss_fn)
    logs = model._logs(terms, x, training=True)
    # Multi-worker hook (keras-team/keras#20585): see _tf_multiworker.
    return _tf_multiworker.step_logs(logs)


def test_step(model, data):
    """One evaluation step: updates the metrics, returns the logs."""
    # Multi-worker hook (keras-team/keras#20585): see _tf_multiworker.
    return _tf_multiworker.step_logs(model._test_logs(data))


def predict_step(model, data):
    """One prediction step: `z`, `mu`, `logvar` and the reconstruction."""
    return model._predict_outputs(data)
