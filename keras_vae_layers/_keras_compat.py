"""The private Keras internals the package relies on, in one place.

Everything else in the package uses Keras' public API. Each function here
reads one private attribute of Keras 3 (checked against Keras 3.15) for which
no public equivalent exists, and `tests/test_keras_compat.py` has a test per
internal: a Keras upgrade that renames one breaks that test, loudly, instead
of silently changing behaviour elsewhere.
"""

CALLBACK_MODEL_ATTRIBUTE = "_model"
"""Where `keras.callbacks.Callback.set_model` keeps the model.

`callback.model` is a property (on JAX it also syncs the trainer state), so a
callback's `__deepcopy__` must skip the attribute behind it to avoid copying
the model.
"""


def all_layers(layer, include_self=False):
    """Every layer inside `layer`, recursively, in Keras' tracking order.

    `Model.layers` lists only direct children and a plain `Layer` has no
    public list of its sub-layers, so a `SamplingLayer` inside a user's custom
    layer would be missed by a walk over `.layers`; Keras' own
    `_flatten_layers` sees it.

    Args:
        layer: A Keras layer or model.
        include_self: Also yield `layer` itself first.

    Returns:
        A list of layers.
    """
    return list(layer._flatten_layers(include_self=include_self,
                                      recursive=True))


def call_count(layer):
    """How many times `layer` was called on symbolic inputs (graph nodes).

    A flat Functional VAE's encoder part can be read from its graph only if
    the `SamplingLayer` was called exactly once; `layer.output` silently
    returns the first call's output whatever the count.
    """
    return len(layer._inbound_nodes)


def is_called(model):
    """Whether `model` was called (Keras requires it before `export()`).

    Models whose train step calls sub-models directly are built without
    ever being called as a whole; `VAEModel` checks this flag to make one
    symbolic call so `model.export()` works after `fit()` or loading.
    """
    return bool(getattr(model, "_called", True))


def sigmoid_logits(tensor):
    """The logits Keras caches on the output of a sigmoid, or `None`.

    `keras.activations.sigmoid` keeps its input as `_keras_logits` on the
    output tensor (Keras' own `binary_crossentropy` uses it): the logits
    form of the cross-entropy is cheaper and exact where probabilities
    saturate. `None` when the tensor did not come from a sigmoid or the
    backend keeps no such attribute (JAX inside `jax.jit`: tracers take no
    attributes, so JAX's compiled steps never see the logits), and the
    caller uses probabilities.
    """
    return getattr(tensor, "_keras_logits", None)



def creation_strategy(model):
    """The `tf.distribute` strategy `model` was created under, or `None`.

    Keras' TF trainer records it as `_distribute_strategy` and decides by it
    whether `fit` builds the model from a first batch; the public
    `distribute_strategy` property falls back to the current scope's
    strategy instead, so it cannot tell `None` apart.
    """
    return getattr(model, "_distribute_strategy", None)


def first_batch(epoch_iterator):
    """The first batch of the epoch iterator Keras' TF trainer passes to
    `Model._maybe_symbolic_build`, read the way that method reads it.

    Iterating the epoch iterator yields `(first_step, last_step,
    data_iterator)` triples; the batch is `next()` of the first iterator.

    Returns:
        The batch, or `None` when there is no step.
    """
    for _, _, data_iterator in epoch_iterator:
        return next(data_iterator)
    return None


def fill_saving_skipset_cache():
    """Makes Keras' `save_weights` of a compiled model create no variable.

    `keras.src.saving.saving_lib.get_attr_skipset` caches the attribute
    names to skip under the key `saving_attr_skipset_<type>` but looks them
    up under `saving_attr_skiplist_<type>` (Keras 3.15.1), so the cache never
    hits and every save of a model with an optimizer builds a throwaway
    `Optimizer(1.0)`, whose `iterations` variable is created in the current
    `tf.distribute` scope. Under `MultiWorkerMirroredStrategy` creating a
    variable broadcasts its value from the chief, a collective operation:
    the chief saving checkpoints alone (inside `strategy.scope()`) then
    waits for workers that never join. This stores the names under the key
    Keras reads. Call it on every worker at the same point (it creates that
    optimizer once, in the current scope); it does nothing when the key is
    set already.
    """
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    key = "saving_attr_skiplist_Optimizer"
    if global_state.get_global_attribute(key) is None:
        global_state.set_global_attribute(
            key, saving_lib.get_attr_skipset("Optimizer"))


def hidden_by_stateless_scope(variable):
    """Whether a `StatelessScope` is active that does not map `variable`.

    Keras' JAX trainer updates metrics inside a scope that maps the metric
    variables only; any other variable read there is a placeholder (its
    value is detached from the variable during an epoch), not its value.
    A metric computed from a layer's non-trainable variables uses this to
    report "unknown" (NaN) instead of a silently wrong number. Keras has no
    public accessor for the active scope.
    """
    from keras.src.backend.common import stateless_scope

    scope = stateless_scope.get_stateless_scope()
    return scope is not None and scope.get_current_value(variable) is None
