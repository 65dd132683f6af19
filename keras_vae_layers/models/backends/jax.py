"""`VAEModel`'s steps on the JAX backend: stateless, as Keras' JAX trainer.

Imported only when the Keras backend is JAX (`models.backends.
step_module`). Keras calls `step(state, data)` inside `jax.jit` with the
variable values as `state` and expects `(outputs, new_state)` back; no
variable may be assigned. Each step therefore runs the model's ordinary
(stateful) code in a `keras.StatelessScope` that maps every variable it
reads to its value in `state` and records what it assigns (the sampling
layers' seed state, metric totals, running statistics), and returns the
recorded values as the new state. Values such as `beta` and `eps_factor`
are read from `state`, so assigning them between steps takes effect
without retracing.
"""

import jax
import keras


def _stateless(fn, groups, collect_losses=False):
    """Runs `fn()` with each `(variables, values)` group mapped.

    Returns:
        `(fn(), new_values)`: the new values of every group, in order
        (the mapped value where `fn` assigned nothing).
    """
    mapping = [pair for variables, values in groups
               for pair in zip(variables, values)]
    with keras.StatelessScope(state_mapping=mapping,
                              collect_losses=collect_losses) as scope:
        out = fn()
    new = [[scope.get_current_value(v) for v in variables]
           for variables, _ in groups]
    return out, new


def train_step(model, state, data):
    """One training step; returns `(logs, new_state)`.

    Loss scaling (a `LossScaleOptimizer` under mixed_float16) and the
    optimizer update are stateless too: `scale_loss` in a scope over the
    optimizer variables, then `optimizer.stateless_apply`.
    """
    trainable, non_trainable, optimizer_values, metric_values = state
    x, y, sample_weight = model._unpack(data)
    optimizer = model.optimizer

    def loss_fn(trainable):
        # collect_losses: the sub-layers' add_loss() values (activity
        # regularizers) reach `model.losses` through the scope.
        terms, (_, new_non_trainable) = _stateless(
            lambda: model.compute_loss_terms(x, y, sample_weight,
                                             training=True),
            [(model.trainable_variables, trainable),
             (model.non_trainable_variables, non_trainable)],
            collect_losses=True,
        )
        scaled, _ = _stateless(
            lambda: optimizer.scale_loss(terms["total_loss"]),
            [(optimizer.variables, optimizer_values)],
        )
        return scaled, (terms, new_non_trainable)

    (_, (terms, non_trainable)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(trainable)
    trainable, optimizer_values = optimizer.stateless_apply(
        optimizer_values, grads, trainable)
    # The metrics phase reads `beta` from the state the step produced.
    logs, (metric_values, _) = _stateless(
        lambda: model._logs(terms, x, training=True),
        [(model.metrics_variables, metric_values),
         (model.non_trainable_variables, non_trainable)],
    )
    return logs, (trainable, non_trainable, optimizer_values, metric_values)


def test_step(model, state, data):
    """One evaluation step; returns `(logs, new_state)`."""
    trainable, non_trainable, metric_values = state
    logs, new = _stateless(
        lambda: model._test_logs(data),
        [(model.trainable_variables, trainable),
         (model.non_trainable_variables, non_trainable),
         (model.metrics_variables, metric_values)],
        collect_losses=True,
    )
    return logs, tuple(new)


def predict_step(model, state, data):
    """One prediction step; returns `(outputs, new_non_trainable)`."""
    trainable, non_trainable = state
    outputs, (_, non_trainable) = _stateless(
        lambda: model._predict_outputs(data),
        [(model.trainable_variables, trainable),
         (model.non_trainable_variables, non_trainable)],
    )
    return outputs, non_trainable
