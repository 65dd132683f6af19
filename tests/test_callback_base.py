"""The callbacks' deep-copy contract (keras-tuner copies callbacks per
trial): shared references, transient run state, copied configuration."""

import copy

import keras
import numpy as np

from keras_vae_layers.callbacks._callback_base import CopySafeCallback


class Holder(CopySafeCallback):
    _TRANSIENT = ("_run",)
    _SHARED = ("layer", "layers")

    def __init__(self, layer, layers, settings):
        super().__init__()
        self.layer = layer
        self.layers = layers
        self.settings = settings
        self.alias = layer  # another reference to a shared object
        self._run = object()


def test_deepcopy_shares_listed_attributes_and_resets_transient_ones():
    dense = keras.layers.Dense(2)
    others = (keras.layers.Dense(3), keras.layers.Dense(4))
    holder = Holder(dense, others, {"rows": [1, 2]})
    holder.set_model(keras.Sequential([keras.Input((1,)), dense]))
    clone = copy.deepcopy(holder)
    assert clone.layer is dense and clone.alias is dense
    assert clone.layers is others
    assert clone.settings == holder.settings
    assert clone.settings["rows"] is not holder.settings["rows"]
    assert clone._run is None and clone._model is None
    assert holder._run is not None and holder._model is not None
    np.testing.assert_array_equal(clone.layer.kernel, dense.kernel)
