"""One test per private Keras internal the package relies on.

If a Keras upgrade renames one of them, the matching test fails here, in one
place, instead of behaviour changing silently elsewhere.
"""

import keras
import numpy as np
import pytest

from keras_vae_layers import SamplingLayer
from keras_vae_layers import _keras_compat


class _Holder(keras.layers.Layer):
    """A plain layer (not a model) that owns a SamplingLayer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sampler = SamplingLayer(seed=0)

    def call(self, inputs):
        return self.sampler(inputs)


def test_all_layers_sees_layers_inside_plain_layers():
    x = keras.Input((4,))
    mu, logvar = keras.layers.Dense(2)(x), keras.layers.Dense(2)(x)
    holder = _Holder(name="holder")
    inner = keras.Model(x, holder([mu, logvar]), name="inner")
    outer_in = keras.Input((4,))
    outer = keras.Model(outer_in, inner(outer_in), name="outer")
    found = _keras_compat.all_layers(outer)
    assert holder.sampler in found and holder in found and inner in found
    assert outer not in found
    assert _keras_compat.all_layers(outer, include_self=True)[0] is outer
    # `Model.layers` alone does not reach it: that is why the internal is used.
    assert holder.sampler not in outer.layers + inner.layers


def test_call_count_counts_symbolic_calls():
    dense = keras.layers.Dense(2)
    a, b = keras.Input((3,)), keras.Input((3,))
    assert _keras_compat.call_count(dense) == 0
    dense(a)
    assert _keras_compat.call_count(dense) == 1
    dense(b)
    assert _keras_compat.call_count(dense) == 2


def test_is_called_tracks_the_first_call():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def build(self, input_shape):
            self.dense.build(input_shape)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model.build((None, 3))
    assert _keras_compat.is_called(model) is False
    model(np.zeros((1, 3), "float32"))
    assert _keras_compat.is_called(model) is True


def test_sigmoid_logits_are_cached_on_sigmoid_outputs():
    logits = keras.ops.convert_to_tensor(np.array([[-3.0, 0.5]], "float32"))
    probs = keras.activations.sigmoid(logits)
    cached = _keras_compat.sigmoid_logits(probs)
    assert cached is not None
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cached),
                               [[-3.0, 0.5]])
    assert _keras_compat.sigmoid_logits(logits) is None


def test_hidden_by_stateless_scope_sees_unmapped_variables():
    mapped = keras.Variable(1.0)
    other = keras.Variable(2.0)
    assert not _keras_compat.hidden_by_stateless_scope(other)
    with keras.StatelessScope(state_mapping=[(mapped, 3.0)]):
        assert not _keras_compat.hidden_by_stateless_scope(mapped)
        assert _keras_compat.hidden_by_stateless_scope(other)
        other.assign(5.0)  # an assignment inside the scope maps it
        assert not _keras_compat.hidden_by_stateless_scope(other)


def test_callback_model_attribute_is_where_set_model_stores_it():
    callback = keras.callbacks.Callback()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callback.set_model(model)
    assert getattr(callback,
                   _keras_compat.CALLBACK_MODEL_ATTRIBUTE) is model


def _dense_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.mark.tf_only  # internals of Keras' TF trainer / tf.distribute
def test_creation_strategy_is_the_scope_the_model_was_made_in():
    import tensorflow as tf

    assert _keras_compat.creation_strategy(_dense_model()) is None
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        inside = _dense_model()
    assert _keras_compat.creation_strategy(inside) is strategy
    # The public property cannot tell: it falls back to the current scope.
    assert _keras_compat.creation_strategy(_dense_model()) is None
    assert _dense_model().distribute_strategy is not None


@pytest.mark.tf_only  # internals of Keras' TF trainer / tf.distribute
def test_first_batch_reads_the_iterator_fit_builds_from():
    seen = []

    class Recorder(keras.Sequential):
        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            if iterator is not None:
                data_batch = _keras_compat.first_batch(iterator)
                seen.append(data_batch)
                iterator = None
            return super()._maybe_symbolic_build(iterator=iterator,
                                                 data_batch=data_batch)

    model = Recorder([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    steps = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: steps.append(batch))
    x = np.ones((8, 3), "float32")
    model.fit(x, np.zeros((8, 2), "float32"), batch_size=4, epochs=1,
              verbose=0, callbacks=[record])
    x_batch, y_batch = seen[0]
    assert tuple(x_batch.shape) == (4, 3) and tuple(y_batch.shape) == (4, 2)
    assert steps == [0, 1]  # reading it costs the epoch no step


@pytest.mark.tf_only  # internals of Keras' TF trainer / tf.distribute
def test_fill_saving_skipset_cache_makes_saving_create_no_variable(
        tmp_path):
    import tensorflow as tf

    keras.backend.clear_session()  # an empty cache, as in a fresh process
    model = _dense_model()
    created = []

    def counting(next_creator, **kwargs):
        created.append(kwargs.get("name"))
        return next_creator(**kwargs)

    with tf.variable_creator_scope(counting):
        model.save_weights(str(tmp_path / "a.weights.h5"))
    # Keras 3.15 builds a throwaway optimizer in every save. If this fails,
    # Keras no longer does and fill_saving_skipset_cache can go.
    assert "iteration" in created
    _keras_compat.fill_saving_skipset_cache()
    created.clear()
    with tf.variable_creator_scope(counting):
        model.save_weights(str(tmp_path / "b.weights.h5"))
    assert created == []
    restored = _dense_model()
    restored.load_weights(str(tmp_path / "b.weights.h5"))
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
