"""The shared encoder/decoder discovery: strict (`diagnostics.find_encoder`,
`find_decoder`) and lenient (`callbacks.find_encoder_decoder`) agree."""

import keras
import pytest

from keras_vae_layers import KLDivergenceLayer
from keras_vae_layers import SamplingLayer
from keras_vae_layers import diagnostics as diag
from keras_vae_layers.callbacks import find_encoder_decoder

IN_DIM, LATENT = 16, 2


def encoder(name, seed=1):
    x = keras.Input((IN_DIM,))
    h = keras.layers.Dense(8)(x)
    mu, logvar = KLDivergenceLayer()(
        [keras.layers.Dense(LATENT)(h), keras.layers.Dense(LATENT)(h)])
    z = SamplingLayer(seed=seed)([mu, logvar])
    return keras.Model(x, [z, mu, logvar], name=name)


def decoder(name, out_dim=IN_DIM):
    z = keras.Input((LATENT,))
    return keras.Model(z, keras.layers.Dense(out_dim)(z), name=name)


def test_decoder_tie_broken_by_name():
    enc, dec, aux = encoder("enc"), decoder("my_decoder"), decoder("aux", 3)
    x = keras.Input((IN_DIM,))
    z = enc(x)[0]
    model = keras.Model(x, [dec(z), aux(z)], name="vae")
    assert diag.find_decoder(model) is dec
    assert find_encoder_decoder(model) == (enc, dec)

    other = decoder("other")
    model = keras.Model(x, [other(z), aux(z)], name="vae2")
    with pytest.raises(ValueError, match=r"several sub-models that could be "
                                         r"the decoder \('other', 'aux'\)"):
        diag.find_decoder(model)
    assert find_encoder_decoder(model) == (enc, None)


def test_several_samplers_strict_raises_lenient_uses_the_name():
    enc, prior = encoder("encoder"), encoder("prior_net", seed=2)
    dec = decoder("decoder")
    x = keras.Input((IN_DIM,))
    model = keras.Model(x, [dec(enc(x)[0]), prior(x)[0]], name="vae")
    with pytest.raises(ValueError, match=r"several sub-models with a "
                                         r"SamplingLayer.*encoder="):
        diag.find_encoder(model)
    assert find_encoder_decoder(model) == (enc, dec)
    # Strict find_decoder does not need the encoder to find the decoder.
    assert diag.find_decoder(model) is dec


def test_flat_encoder_with_nested_decoder():
    # Sampling at the top level, decoder as a sub-model: the decoder is
    # found by the latent size of the graph's SamplingLayer.
    x = keras.Input((IN_DIM,))
    h_in = keras.Input((IN_DIM,))
    backbone = keras.Model(h_in, keras.layers.Dense(8)(h_in),
                           name="backbone")
    h = backbone(x)
    mu, logvar = keras.layers.Dense(LATENT)(h), keras.layers.Dense(LATENT)(h)
    z = SamplingLayer(seed=1)([mu, logvar])
    dec = decoder("gen")
    model = keras.Model(x, dec(z), name="vae")
    # The backbone takes images, not latents: never taken for the decoder.
    assert diag.find_decoder(model) is dec
    assert find_encoder_decoder(model) == (None, dec)
    view = diag.find_encoder(model)
    assert view.name == "vae_encoder_view" and len(view.outputs) == 3

    flat = keras.Model(x, keras.layers.Dense(IN_DIM)(z), name="flat")
    with pytest.raises(ValueError, match=r"no nested decoder sub-model"):
        diag.find_decoder(flat)
    assert find_encoder_decoder(flat) == (None, None)


def test_lenient_requires_models_for_attributes():
    class Holder(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder = encoder("e")
            self.decoder = keras.layers.Dense(IN_DIM)  # a layer, not a model

        def call(self, x):
            return self.decoder(self.encoder(x)[0])

    holder = Holder()
    # The checkpoint saves weights per model: a plain layer is not offered.
    assert find_encoder_decoder(holder) == (holder.encoder, None)
    # Diagnostics only need something callable.
    assert diag.find_decoder(holder) is holder.decoder
    assert diag.find_encoder(holder) is holder.encoder
