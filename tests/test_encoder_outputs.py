"""The one encoder-output parser: accepted forms and the shared message."""

import keras
import numpy as np
import pytest

from keras_vae_layers.models.encoder_outputs import check_encoder_outputs
from keras_vae_layers.models.encoder_outputs import looks_like_encoder
from keras_vae_layers.models.encoder_outputs import split_encoder_outputs

A = np.zeros((4, 2), "float32")
B = np.ones((4, 2), "float32")
C = np.full((4, 2), 2.0, "float32")


def test_accepted_forms():
    assert split_encoder_outputs([A, B, C], "t") == (A, B, C)
    z, mu, logvar = split_encoder_outputs((B, C), "t")
    assert z is None and mu is B and logvar is C
    z, mu, logvar = split_encoder_outputs({"mu": B, "logvar": C}, "t")
    assert z is None and mu is B and logvar is C
    z, _, _ = split_encoder_outputs({"z": A, "mu": B, "logvar": C}, "t")
    assert z is A


@pytest.mark.parametrize("outputs, got", [
    (A, r"received 1 output of shape \(4, 2\)"),
    ([A] * 4, r"received 4 output\(s\): \[shape \(4, 2\)"),
    ({"z": A, "mean": B}, r"received a dict \{'z': shape \(4, 2\)"),
])
def test_one_message_for_every_wrong_structure(outputs, got):
    with pytest.raises(ValueError, match=r"^owner: the encoder must return "
                       r"\[z, mu, logvar\], \[mu, logvar\] or a dict with "
                       r"keys 'mu', 'logvar' \(and optionally 'z'\); " + got):
        split_encoder_outputs(outputs, "owner")


def test_shape_checks_and_hint():
    with pytest.raises(ValueError, match=r"`mu` and `logvar` must have the "
                       r"same shape, received \(4, 2\) and \(4, 3\)\. Hint\."):
        split_encoder_outputs([A, np.zeros((4, 3))], "t", "Hint.")
    with pytest.raises(ValueError, match=r"first of three encoder outputs "
                       r"must be `z` with the shape of `mu`"):
        split_encoder_outputs([np.zeros((4, 16)), A, B], "t")


def test_symbolic_checks_without_calling():
    x = keras.Input((6,))
    mu, logvar = keras.layers.Dense(2)(x), keras.layers.Dense(2)(x)
    good = keras.Model(x, [mu, logvar])
    check_encoder_outputs(good, "t")
    assert looks_like_encoder(good)
    as_dict = keras.Model(x, {"mu": mu, "logvar": logvar})
    assert looks_like_encoder(as_dict)
    bad = keras.Model(x, mu)
    with pytest.raises(ValueError, match="received 1 output of shape"):
        check_encoder_outputs(bad, "t")
    assert not looks_like_encoder(bad)
    # A VAE returning [x_hat, mu, logvar] is not an encoder.
    vae_like = keras.Model(x, [keras.layers.Dense(6)(mu), mu, logvar])
    assert not looks_like_encoder(vae_like)
    # Subclassed models have no symbolic outputs: checked at their first call.
    check_encoder_outputs(keras.layers.Dense(2), "t")
