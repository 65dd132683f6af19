"""One test per private Keras internal the package relies on.

If a Keras upgrade renames one of them, the matching test fails here, in one
place, instead of behaviour changing silently elsewhere.
"""

import keras
import numpy as np

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
