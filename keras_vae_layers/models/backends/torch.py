"""`VAEModel`'s steps on the torch backend: `loss.backward()`, eagerly.

Imported only when the Keras backend is torch (`models.backends.
step_module`). The step follows Keras' own torch trainer: clear the
leftover gradients, back-propagate the (scaled) loss, read each trainable
variable's `.grad` and apply them without recording the update for
autograd.
"""

import torch


def train_step(model, data):
    """One training step; returns the logs.

    The loss goes through `optimizer.scale_loss` (a `LossScaleOptimizer`
    under mixed_float16 scales it against float16 gradient underflow and
    unscales the gradients in `apply`). A torch step runs only when a
    batch exists, so no step can run without data.
    """
    x, y, sample_weight = model._unpack(data)
    # Gradients accumulate in `.grad` across backward() calls.
    model.zero_grad()
    terms = model.compute_loss_terms(x, y, sample_weight, training=True)
    weights = model.trainable_weights[:]
    if weights:
        model.optimizer.scale_loss(terms["total_loss"]).backward()
        grads = [v.value.grad for v in weights]
        with torch.no_grad():
            model.optimizer.apply(grads, weights)
    with torch.no_grad():
        return model._logs(terms, x, training=True)


def test_step(model, data):
    """One evaluation step (Keras runs it under `torch.no_grad()`)."""
    return model._test_logs(data)


def predict_step(model, data):
    """One prediction step: `z`, `mu`, `logvar` and the reconstruction."""
    return model._predict_outputs(data)
