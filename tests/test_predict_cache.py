"""PredictCacheRefresh / refresh_predict_cache: the stale predict graph."""

import copy

import keras
import numpy as np
import pytest

from keras_vae_layers import SamplingLayer
from keras_vae_layers import VAEModel
from keras_vae_layers.callbacks import PredictCacheRefresh
from keras_vae_layers.callbacks import refresh_predict_cache

from helpers import STEPS_ARE_TRACED
from helpers import binary_data
from helpers import dense_vae
from helpers import find_layer
from helpers import trace_mark


class Scale(keras.layers.Layer):
    """Multiplies by a *Python* float read in call() (the problem case)."""

    def __init__(self, factor=1.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor
        self.traces = 0

    def call(self, x):
        self.traces += 1
        return x * self.factor


def scale_model():
    scale = Scale(name="scale")
    x = keras.Input((3,))
    model = keras.Model(x, scale(x), name="scaled")
    model.compile(loss="mse")
    return model, scale


X = np.ones((4, 3), "float32")

STALE_FACTOR = 1.0 if STEPS_ARE_TRACED else 2.0
"""What a cached predict function multiplies by after `factor` 1 -> 2:
TensorFlow and JAX froze 1 into the trace; torch runs the step eagerly and
reads the attribute on every call (nothing to refresh there)."""


def test_python_attribute_is_frozen_into_the_cached_predict_function():
    """Reproduces the Keras behaviour the callback exists for."""
    model, scale = scale_model()
    np.testing.assert_allclose(model.predict(X, verbose=0), X)
    scale.factor = 2.0
    # Stale: the graph traced on the first predict() still multiplies by 1.
    np.testing.assert_allclose(model.predict(X, verbose=0), STALE_FACTOR * X)
    # Eager calls are not affected.
    np.testing.assert_allclose(model(X), 2 * X)


def test_callback_on_predict_begin_fixes_the_stale_output():
    model, scale = scale_model()
    model.predict(X, verbose=0)
    scale.factor = 2.0
    out = model.predict(X, verbose=0,
                        callbacks=[PredictCacheRefresh(on="predict_begin")])
    np.testing.assert_allclose(out, 2 * X)
    # The rebuilt function stays cached for later plain calls.
    np.testing.assert_allclose(model.predict(X, verbose=0), 2 * X)


def test_default_events_include_predict_begin():
    model, scale = scale_model()
    model.predict(X, verbose=0)
    scale.factor = 3.0
    out = model.predict(X, verbose=0, callbacks=[PredictCacheRefresh()])
    np.testing.assert_allclose(out, 3 * X)


def test_refresh_predict_cache_function():
    model, scale = scale_model()
    model.predict(X, verbose=0)
    model.evaluate(X, X, verbose=0)
    scale.factor = 2.0
    assert refresh_predict_cache(model) == 2  # predict + test
    np.testing.assert_allclose(model.predict(X, verbose=0), 2 * X)
    # mse between 2x and x (ones) is 1.
    assert model.evaluate(X, X, verbose=0) == pytest.approx(1.0)


def test_refresh_only_touches_existing_functions():
    model, _ = scale_model()
    assert refresh_predict_cache(model) == 0
    assert model.predict_function is None


def test_test_begin_refreshes_evaluate():
    model, scale = scale_model()
    assert model.evaluate(X, X, verbose=0) == pytest.approx(0.0)
    scale.factor = 2.0
    stale_mse = (STALE_FACTOR - 1.0) ** 2
    assert model.evaluate(X, X, verbose=0) == pytest.approx(stale_mse)
    loss = model.evaluate(X, X, verbose=0,
                          callbacks=[PredictCacheRefresh(on="test_begin")])
    assert loss == pytest.approx(1.0)


def test_watch_refreshes_only_on_change():
    model, scale = scale_model()
    model.predict(X, verbose=0)
    refresher = PredictCacheRefresh(on="predict_begin",
                                    watch=[(scale, "factor")])
    scale.factor = 2.0
    # First check: unknown what the cache captured -> refresh.
    out = model.predict(X, verbose=0, callbacks=[refresher])
    np.testing.assert_allclose(out, 2 * X)
    assert refresher.refresh_count == 1
    mark = trace_mark(scale, model)
    model.predict(X, verbose=0, callbacks=[refresher])
    assert refresher.refresh_count == 1
    assert trace_mark(scale, model) == mark  # no retrace without a change
    scale.factor = 5.0
    out = model.predict(X, verbose=0, callbacks=[refresher])
    np.testing.assert_allclose(out, 5 * X)
    assert refresher.refresh_count == 2


def test_watch_by_layer_name():
    model, scale = scale_model()
    model.predict(X, verbose=0)
    refresher = PredictCacheRefresh(on="predict_begin",
                                    watch=[("scale", "factor")])
    model.predict(X, verbose=0, callbacks=[refresher])
    scale.factor = 4.0
    out = model.predict(X, verbose=0, callbacks=[refresher])
    np.testing.assert_allclose(out, 4 * X)


@pytest.mark.filterwarnings("ignore:The model does not have any trainable")
def test_epoch_end_refresh_during_fit():
    """A Python attribute changed by another callback mid-training."""
    model, scale = scale_model()
    model.predict(X, verbose=0)  # cached with factor 1

    class Bump(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            scale.factor = 2.0

    model.fit(X, X, epochs=1, verbose=0,
              callbacks=[Bump(), PredictCacheRefresh(on="epoch_end")])
    np.testing.assert_allclose(model.predict(X, verbose=0), 2 * X)


def test_nested_sub_model_cache_is_refreshed():
    scale = Scale(name="scale")
    zin = keras.Input((3,))
    inner = keras.Model(zin, scale(zin), name="inner")
    x = keras.Input((3,))
    outer = keras.Model(x, inner(x))
    inner.predict(X, verbose=0)
    scale.factor = 2.0
    refresh_predict_cache(outer)
    np.testing.assert_allclose(inner.predict(X, verbose=0), 2 * X)


def test_sampling_layer_needs_no_refresh():
    """Our switch is a variable: it works after the first predict()."""
    model = dense_vae(nested=True)
    x = binary_data(8)
    first = model.predict(x, verbose=0)
    second = model.predict(x, verbose=0)
    assert not np.allclose(first, second)  # stochastic
    sampler = find_layer(model, SamplingLayer)
    sampler.set_deterministic(True)
    a = model.predict(x, verbose=0)
    b = model.predict(x, verbose=0)
    np.testing.assert_allclose(a, b)
    sampler.set_deterministic(False)
    assert not np.allclose(model.predict(x, verbose=0), a)


def test_vae_model_set_deterministic_needs_no_refresh():
    enc_model = dense_vae(nested=True, kl_layer=False)
    encoder = enc_model.get_layer("encoder")
    decoder = enc_model.get_layer("decoder")
    vae = VAEModel(encoder, decoder)
    x = binary_data(8)
    out1 = vae.predict(x, verbose=0)
    assert not np.allclose(out1["z"], out1["mu"])
    vae.set_deterministic(True)
    out2 = vae.predict(x, verbose=0)
    np.testing.assert_allclose(out2["z"], out2["mu"])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="unknown `on` 'epoch_ends'"):
        PredictCacheRefresh(on="epoch_ends")
    with pytest.raises(ValueError, match="`on` must be one of"):
        PredictCacheRefresh(on=[])
    with pytest.raises(ValueError, match="unknown `functions` 'fit'"):
        PredictCacheRefresh(functions=["fit"])
    with pytest.raises(ValueError, match="each `watch` entry"):
        PredictCacheRefresh(watch=[("scale",)])
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        PredictCacheRefresh(watch=[(Scale(name="s"), "nope")])
    model, _ = scale_model()
    model.predict(X, verbose=0)
    with pytest.raises(ValueError, match="no layer named 'missing'"):
        model.predict(X, verbose=0, callbacks=[
            PredictCacheRefresh(watch=[("missing", "factor")])
        ])


def test_config_and_deepcopy():
    scale = Scale(name="scale")
    cb = PredictCacheRefresh(on=["predict_begin", "test_begin"],
                             watch=[(scale, "factor")], functions="predict")
    config = cb.get_config()
    assert config == {
        "on": ["predict_begin", "test_begin"],
        "watch": [["scale", "factor"]],
        "functions": ["predict"],
        "recursive": True,
        "verbose": 0,
    }
    clone = PredictCacheRefresh.from_config(config)
    assert clone.watch == (("scale", "factor"),)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(cb)
    )
    assert isinstance(restored, PredictCacheRefresh)

    model, scale = scale_model()
    cb = PredictCacheRefresh(on="predict_begin", watch=[(scale, "factor")])
    before = copy.deepcopy(cb)
    assert before.watch[0][0] is scale  # layers are shared, not cloned
    model.predict(X, verbose=0, callbacks=[cb])
    after = copy.deepcopy(cb)
    assert after._model is None and after._snapshot is None
    assert cb.model is model
    scale.factor = 2.0
    out = model.predict(X, verbose=0, callbacks=[after])
    np.testing.assert_allclose(out, 2 * X)
