"""Tests for `keras_vae_layers.models.build_conv_encoder_decoder`."""

import math

import keras
import numpy as np
import pytest

from keras_vae_layers import KLDivergenceLayer
from keras_vae_layers import SamplingLayer
from keras_vae_layers.models import build_conv_encoder_decoder

DIGITS = dict(
    input_shape=(28, 28, 1),
    z_dim=2,
    encoder_filters=(8, 16),
    encoder_kernel_sizes=3,
    encoder_strides=2,
    decoder_filters=(8, 1),
    decoder_kernel_sizes=3,
    decoder_strides=2,
)

FACES = dict(
    input_shape=(96, 96, 3),
    z_dim=256,
    encoder_filters=(32, 64, 128, 256),
    encoder_kernel_sizes=(3, 3, 3, 3),
    encoder_strides=(2, 2, 2, 2),
    decoder_filters=(128, 64, 32, 3),
    decoder_kernel_sizes=(3, 3, 3, 3),
    decoder_strides=(2, 2, 2, 2),
    batch_norm=True,
)


def build(base=DIGITS, **overrides):
    return build_conv_encoder_decoder(**{**base, **overrides})


def n_params(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


# Independent parameter arithmetic (textbook formulas, not Keras).
def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def dense(n_in, n_out):
    return n_in * n_out + n_out


def expected_counts(cfg, intermediate_dim=None, intermediate_bn=False,
                    decoder_dense_bn=False):
    """(trainable, non_trainable) for encoder and decoder of `cfg`."""
    h, w, c = cfg["input_shape"]
    k = 3
    bn = cfg.get("batch_norm", False)
    z = cfg["z_dim"]
    enc_t = enc_nt = 0
    c_in = c
    for f in cfg["encoder_filters"]:
        enc_t += conv(k, c_in, f)
        if bn:
            enc_t += 2 * f
            enc_nt += 2 * f
        c_in = f
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    flat = h * w * c_in
    head_in = flat
    if intermediate_dim is not None:
        enc_t += dense(flat, intermediate_dim)
        if intermediate_bn:
            enc_t += 2 * intermediate_dim
            enc_nt += 2 * intermediate_dim
        head_in = intermediate_dim
    enc_t += 2 * dense(head_in, z)
    # SamplingLayer.eps_factor; KLDivergenceLayer.beta and its running KL
    # sum and count.
    enc_nt += 4

    dec_t = dense(z, flat)
    dec_nt = 0
    if decoder_dense_bn:
        dec_t += 2 * flat
        dec_nt += 2 * flat
    filters = cfg["decoder_filters"]
    for i, f in enumerate(filters):
        dec_t += conv(k, c_in, f)
        if bn and i < len(filters) - 1:
            dec_t += 2 * f
            dec_nt += 2 * f
        c_in = f
    return (enc_t, enc_nt), (dec_t, dec_nt)


def published_count(model):
    """Trainable weights + BN moving statistics, i.e. what the original VAE
    reported: everything except the documented non-trainable scalars of the
    package layers (`SamplingLayer.eps_factor`; `KLDivergenceLayer.beta`
    and its running KL sum and count)."""
    scalars = [w for layer in model.layers
               if isinstance(layer, (KLDivergenceLayer, SamplingLayer))
               for w in layer.weights]
    # Guard the exclusion itself: exactly those four scalars (encoder only),
    # and every other non-trainable weight is a BN moving statistic.
    assert [tuple(w.shape) for w in scalars] == (
        [()] * 4 if scalars else [])
    bn_stats = [w for layer in model.layers
                if isinstance(layer, keras.layers.BatchNormalization)
                for w in layer.non_trainable_weights]
    assert n_params(model.non_trainable_weights) == (
        n_params(bn_stats) + len(scalars))
    return n_params(model.trainable_weights) + n_params(bn_stats)


# ----------------------------------------------------------------------------
# Shapes and parameter counts
# ----------------------------------------------------------------------------


def test_digits_shapes_and_forward_pass():
    encoder, decoder = build()
    assert [tuple(o.shape) for o in encoder.outputs] == [(None, 2)] * 3
    assert tuple(decoder.output.shape) == (None, 28, 28, 1)
    assert tuple(encoder.get_layer("encoder_flatten").input.shape) == (
        None, 7, 7, 16
    )
    x = np.random.default_rng(0).random((5, 28, 28, 1)).astype("float32")
    z, mu, logvar = encoder(x)
    assert z.shape == mu.shape == logvar.shape == (5, 2)
    x_hat = keras.ops.convert_to_numpy(decoder(z))
    assert x_hat.shape == (5, 28, 28, 1)
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0


def test_digits_param_counts():
    encoder, decoder = build(intermediate_dim=32)
    (enc_t, enc_nt), (dec_t, dec_nt) = expected_counts(DIGITS, 32)
    assert n_params(encoder.trainable_weights) == enc_t
    assert n_params(encoder.non_trainable_weights) == enc_nt == 4
    assert n_params(decoder.trainable_weights) == dec_t
    assert n_params(decoder.non_trainable_weights) == dec_nt == 0
    # Hand count for this config, to guard the helper itself:
    # convs 80 + 1168, dense 784*32+32, heads 2*66, decoder dense 2*784+784,
    # deconvs 16*9*8+8 and 8*9*1+1.
    assert enc_t == 80 + 1168 + 25120 + 132
    assert dec_t == 2352 + 1160 + 73


@pytest.mark.parametrize("intermediate_dim", [None, 256])
def test_faces_shapes_and_param_counts(intermediate_dim):
    encoder, decoder = build(FACES, intermediate_dim=intermediate_dim)
    assert [tuple(o.shape) for o in encoder.outputs] == [(None, 256)] * 3
    assert tuple(encoder.get_layer("encoder_conv_4").output.shape) == (
        None, 6, 6, 256
    )
    assert tuple(decoder.get_layer("decoder_reshape").output.shape) == (
        None, 6, 6, 256
    )
    assert tuple(decoder.output.shape) == (None, 96, 96, 3)

    (enc_t, enc_nt), (dec_t, dec_nt) = expected_counts(FACES, intermediate_dim)
    assert n_params(encoder.trainable_weights) == enc_t
    assert n_params(encoder.non_trainable_weights) == enc_nt
    assert n_params(decoder.trainable_weights) == dec_t
    assert n_params(decoder.non_trainable_weights) == dec_nt
    assert encoder.count_params() == enc_t + enc_nt
    assert decoder.count_params() == dec_t + dec_nt
    print(
        f"\nfaces intermediate_dim={intermediate_dim}: "
        f"encoder total={encoder.count_params():,} (trainable {enc_t:,}, "
        f"non-trainable {enc_nt:,}); decoder total={decoder.count_params():,}"
        f" (trainable {dec_t:,}, non-trainable {dec_nt:,})"
    )

    x = np.random.default_rng(1).random((2, 96, 96, 3)).astype("float32")
    z, mu, logvar = encoder(x)
    assert z.shape == (2, 256)
    assert decoder(z).shape == (2, 96, 96, 3)


@pytest.mark.parametrize("z_dim, intermediate_dim, encoder, decoder", [
    (256, None, 5_109_440, 2_757_571),
    (256, 256, 2_881_472, 2_757_571),
    (256, 384, 4_126_784, 2_757_571),
    (512, None, 9_828_544, None),
])
def test_default_reproduces_published_faces_counts(z_dim, intermediate_dim,
                                                   encoder, decoder):
    enc, dec = build(FACES, z_dim=z_dim, intermediate_dim=intermediate_dim)
    assert published_count(enc) == encoder
    assert enc.count_params() == encoder + 4  # + the package's scalars
    if decoder is not None:
        assert published_count(dec) == dec.count_params() == decoder


def test_default_reproduces_published_mnist_counts():
    enc, dec = build_conv_encoder_decoder(
        (28, 28, 1), 2, (32, 64, 128), 3, (1, 2, 2), (64, 32, 1), 3,
        (2, 2, 1),
    )
    assert published_count(enc) == 117_764
    assert published_count(dec) == 111_361


def test_opt_in_dense_extras_add_exactly_their_layers():
    # The three switches restore the BN / activation blocks after the two
    # Dense layers, each adding exactly its own layer and weights.
    base_enc, base_dec = build(FACES, intermediate_dim=256)
    enc, dec = build(FACES, intermediate_dim=256,
                     intermediate_batch_norm=True,
                     decoder_dense_batch_norm=True,
                     decoder_dense_activation=True)
    assert published_count(enc) - published_count(base_enc) == 4 * 256
    assert published_count(dec) - published_count(base_dec) == 4 * 6 * 6 * 256
    assert [layer.name for layer in dec.layers[:5]] == [
        "decoder_input", "decoder_dense", "decoder_dense_bn",
        "decoder_dense_act", "decoder_reshape",
    ]
    assert enc.get_layer("encoder_dense_bn").output is enc.get_layer(
        "encoder_dense_act").input
    (enc_t, enc_nt), (dec_t, dec_nt) = expected_counts(
        FACES, 256, intermediate_bn=True, decoder_dense_bn=True)
    assert n_params(enc.trainable_weights) == enc_t
    assert n_params(enc.non_trainable_weights) == enc_nt
    assert n_params(dec.trainable_weights) == dec_t
    assert n_params(dec.non_trainable_weights) == dec_nt

    # Each switch on its own; the activation alone adds no weights, and
    # intermediate_batch_norm without an intermediate layer changes nothing.
    _, dec = build(decoder_dense_activation=True)
    assert [layer.name for layer in dec.layers[1:4]] == [
        "decoder_dense", "decoder_dense_act", "decoder_reshape"]
    assert dec.get_layer("decoder_dense_act").get_config()[
        "activation"] == "leaky_relu"
    _, dec = build(decoder_dense_batch_norm=True)
    assert [layer.name for layer in dec.layers[1:4]] == [
        "decoder_dense", "decoder_dense_bn", "decoder_reshape"]
    enc, _ = build(intermediate_batch_norm=True)
    assert published_count(enc) == published_count(build()[0])


def test_default_decoder_dense_is_linear():
    _, decoder = build(FACES, z_dim=4)
    dense_layer = decoder.get_layer("decoder_dense")
    z = np.random.default_rng(7).normal(size=(3, 4)).astype("float32") * 5
    pre = keras.Model(decoder.input,
                      decoder.get_layer("decoder_reshape").output)
    kernel, bias = (keras.ops.convert_to_numpy(w)
                    for w in dense_layer.weights)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(pre(z)).reshape(3, -1), z @ kernel + bias,
        rtol=1e-5, atol=1e-4,
    )


def test_intermediate_dense_roughly_halves_faces_encoder():
    plain, _ = build(FACES)
    slim, _ = build(FACES, intermediate_dim=256)
    assert slim.count_params() < 0.6 * plain.count_params()


def test_no_hidden_layers_and_clear_names():
    encoder, decoder = build(DIGITS, batch_norm=True, dropout_rate=0.1,
                             intermediate_dim=16)
    # The original structure: no BN after either Dense layer, and the
    # decoder's Dense goes straight into the Reshape.
    assert [layer.name for layer in encoder.layers] == [
        "encoder_input",
        "encoder_conv_1", "encoder_conv_1_bn", "encoder_conv_1_act",
        "encoder_conv_1_dropout",
        "encoder_conv_2", "encoder_conv_2_bn", "encoder_conv_2_act",
        "encoder_conv_2_dropout",
        "encoder_flatten",
        "encoder_dense", "encoder_dense_act", "encoder_dense_dropout",
        "mu", "logvar", "kl_divergence", "z",
    ]
    assert [layer.name for layer in decoder.layers] == [
        "decoder_input",
        "decoder_dense", "decoder_reshape",
        "decoder_deconv_1", "decoder_deconv_1_bn", "decoder_deconv_1_act",
        "decoder_deconv_2",
        "decoder_output",
    ]
    # The opt-in extras keep the established layer names.
    encoder, decoder = build(DIGITS, batch_norm=True, dropout_rate=0.1,
                             intermediate_dim=16,
                             intermediate_batch_norm=True,
                             decoder_dense_activation=True,
                             decoder_dense_batch_norm=True)
    assert [layer.name for layer in encoder.layers][10:14] == [
        "encoder_dense", "encoder_dense_bn", "encoder_dense_act",
        "encoder_dense_dropout",
    ]
    assert [layer.name for layer in decoder.layers][1:5] == [
        "decoder_dense", "decoder_dense_bn", "decoder_dense_act",
        "decoder_reshape",
    ]
    assert isinstance(encoder.get_layer("kl_divergence"), KLDivergenceLayer)
    assert isinstance(encoder.get_layer("z"), SamplingLayer)
    assert encoder.get_layer("encoder_conv_1_act").get_config()[
        "activation"
    ] == "leaky_relu"
    assert decoder.get_layer("decoder_output").get_config()[
        "activation"
    ] == "sigmoid"


def test_without_batch_norm_or_dropout_no_such_layers():
    encoder, decoder = build()
    kinds = {type(layer) for layer in encoder.layers + decoder.layers}
    assert keras.layers.BatchNormalization not in kinds
    assert keras.layers.Dropout not in kinds
    assert keras.layers.AlphaDropout not in kinds


def test_model_names():
    encoder, decoder = build()
    assert (encoder.name, decoder.name) == ("encoder", "decoder")
    encoder, decoder = build(name="digits")
    assert (encoder.name, decoder.name) == ("digits_encoder", "digits_decoder")


def test_tuple_kernels_strides_and_valid_padding():
    # Rectangular input with per-axis strides: 32x16 -> 16x16 -> 8x8.
    encoder, decoder = build(
        DIGITS, input_shape=(32, 16, 1),
        encoder_kernel_sizes=[(3, 3), (5, 3)],
        encoder_strides=[(2, 1), (2, 2)],
        decoder_kernel_sizes=[3, (3, 5)],
        decoder_strides=[(2, 2), (2, 1)],
    )
    assert tuple(encoder.get_layer("encoder_flatten").input.shape) == (
        None, 8, 8, 16
    )
    assert tuple(decoder.output.shape) == (None, 32, 16, 1)
    assert encoder.get_layer("encoder_conv_2").kernel.shape == (5, 3, 8, 16)

    # 'valid': 28 -> 13 -> 6 (kernels 4, 3), and back 6 -> 13 -> 28.
    encoder, decoder = build(
        DIGITS, padding="valid", encoder_kernel_sizes=[4, 3],
        decoder_kernel_sizes=[3, 4],
    )
    assert tuple(encoder.get_layer("encoder_flatten").input.shape) == (
        None, 6, 6, 16
    )
    assert tuple(decoder.output.shape) == (None, 28, 28, 1)


def test_logits_output():
    for choice in (None, "linear"):
        _, decoder = build(output_activation=choice)
        assert decoder.get_layer("decoder_output").get_config()[
            "activation"
        ] == "linear"
    _, decoder = build(output_activation=None)
    decoder.get_layer("decoder_deconv_2").bias.assign([5.0])
    out = keras.ops.convert_to_numpy(decoder(np.zeros((1, 2), "float32")))
    assert out.max() > 1.0  # logits are not squashed into [0, 1]


def test_decoder_output_is_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        _, decoder = build()
        assert decoder.get_layer("decoder_deconv_2").compute_dtype == "float16"
        assert decoder.output.dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


# ----------------------------------------------------------------------------
# Encoder behaviour
# ----------------------------------------------------------------------------


def test_encoder_output_order_and_deterministic_switch():
    encoder, _ = build(seed=3)
    heads = keras.Model(
        encoder.input,
        [encoder.get_layer("mu").output, encoder.get_layer("logvar").output],
    )
    x = np.random.default_rng(2).random((4, 28, 28, 1)).astype("float32")
    z, mu, logvar = (keras.ops.convert_to_numpy(t) for t in encoder(x))
    mu_ref, logvar_ref = (keras.ops.convert_to_numpy(t) for t in heads(x))
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logvar, logvar_ref, rtol=1e-6, atol=1e-6)
    assert not np.allclose(z, mu)  # sampling is on by default

    sampler = encoder.get_layer("z")
    sampler.set_deterministic(True)
    z, mu, _ = (keras.ops.convert_to_numpy(t) for t in encoder(x))
    np.testing.assert_array_equal(z, mu)
    # predict() after the switch is deterministic too (no retrace needed).
    z_p, mu_p, _ = encoder.predict(x, verbose=0)
    np.testing.assert_array_equal(z_p, mu_p)


def test_kl_loss_in_encoder_losses():
    encoder, _ = build(beta=0.5)
    assert encoder.get_layer("kl_divergence").get_config()["beta"] == 0.5
    x = np.random.default_rng(4).random((3, 28, 28, 1)).astype("float32")
    _, mu, logvar = (keras.ops.convert_to_numpy(t) for t in encoder(x))
    assert len(encoder.losses) == 1
    kl = -0.5 * np.sum(1.0 + logvar - mu**2 - np.exp(logvar), axis=-1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder.losses[0]), 0.5 * kl.mean(),
        rtol=1e-5, atol=1e-6,
    )


def test_eps_clip_and_seed_passed_to_sampling_layer():
    encoder, _ = build(eps_clip=2.5, seed=7)
    config = encoder.get_layer("z").get_config()
    assert config["eps_clip"] == 2.5 and config["seed"] == 7


def test_selu_uses_lecun_normal_and_alpha_dropout():
    encoder, decoder = build(activation="selu", dropout_rate=0.2,
                             intermediate_dim=16)
    layers = encoder.layers + decoder.layers
    assert any(isinstance(layer, keras.layers.AlphaDropout)
               for layer in layers)
    assert not any(isinstance(layer, keras.layers.Dropout)
                   for layer in layers)
    for name in ("encoder_conv_1", "encoder_conv_2", "encoder_dense"):
        layer = encoder.get_layer(name)
        assert isinstance(layer.kernel_initializer,
                          keras.initializers.LecunNormal), name
    layer = decoder.get_layer("decoder_deconv_1")
    assert isinstance(layer.kernel_initializer, keras.initializers.LecunNormal)
    # The decoder's Dense is linear by default (Glorot, like the heads);
    # LeCun only when the activation follows it.
    assert isinstance(decoder.get_layer("decoder_dense").kernel_initializer,
                      keras.initializers.GlorotUniform)
    _, decoder = build(activation="selu", decoder_dense_activation=True)
    assert isinstance(decoder.get_layer("decoder_dense").kernel_initializer,
                      keras.initializers.LecunNormal)
    assert encoder.get_layer("encoder_conv_1_act").get_config()[
        "activation"
    ] == "selu"
    # Default activation: plain Dropout, Glorot weights.
    encoder, _ = build(dropout_rate=0.2)
    assert isinstance(encoder.get_layer("encoder_conv_1_dropout"),
                      keras.layers.Dropout)
    assert isinstance(encoder.get_layer("encoder_conv_1").kernel_initializer,
                      keras.initializers.GlorotUniform)


# ----------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(input_shape=(28, 28)), "input_shape"),
        (dict(input_shape=(28, 28, 0)), "input_shape"),
        (dict(input_shape=(28, None, 1)), "input_shape"),
        (dict(input_shape="28x28"), "input_shape"),
        (dict(z_dim=0), "z_dim"),
        (dict(z_dim=2.0), "z_dim"),
        (dict(intermediate_dim=0), "intermediate_dim"),
        (dict(encoder_kernel_sizes=[3, 3, 3]),
         r"encoder_filters.*encoder_kernel_sizes.*encoder_strides.*"
         r"lengths 2, 3 and 2"),
        (dict(decoder_strides=[2]),
         r"decoder_filters.*decoder_kernel_sizes.*decoder_strides.*"
         r"lengths 2, 2 and 1"),
        (dict(encoder_filters=[]), "encoder_filters"),
        (dict(decoder_filters=()), "decoder_filters"),
        (dict(encoder_kernel_sizes=[]), "encoder_kernel_sizes"),
        (dict(decoder_strides=[]), "decoder_strides"),
        (dict(encoder_filters=[8, -1]), r"encoder_filters\[1\]"),
        (dict(encoder_strides=[2, (2, 0)]), r"encoder_strides\[1\]"),
        (dict(decoder_kernel_sizes=[3, (3, 3, 3)]),
         r"decoder_kernel_sizes\[1\]"),
        (dict(activation="tanh"),
         r"activation.*'leaky_relu', 'relu', 'selu'"),
        (dict(padding="full"), r"padding.*'same', 'valid'"),
        (dict(dropout_rate=1.0), "dropout_rate"),
        (dict(dropout_rate=-0.1), "dropout_rate"),
        (dict(beta=-1.0), "beta"),
        (dict(beta=float("nan")), "beta"),
        (dict(beta=float("inf")), "beta"),
        (dict(eps_clip=0.0), "eps_clip"),
        (dict(eps_clip=-1.0), "eps_clip"),
        (dict(output_activation="relu"), "output_activation"),
        (dict(batch_norm="yes"), "batch_norm"),
        (dict(intermediate_batch_norm=1), "intermediate_batch_norm"),
        (dict(decoder_dense_activation="relu"), "decoder_dense_activation"),
        (dict(decoder_dense_batch_norm=None), "decoder_dense_batch_norm"),
        (dict(seed=1.5), "seed"),
        (dict(decoder_filters=(8, 3)), r"decoder_filters.*input_shape"),
    ],
)
def test_bad_arguments_raise_value_error(overrides, match):
    with pytest.raises(ValueError, match=match) as info:
        build(**overrides)
    assert "build_conv_encoder_decoder" in str(info.value)


def test_mismatched_strides_name_both_shapes():
    # Three stride-2 convs: 28 -> 14 -> 7 -> 4, mirrored 4 -> 8 -> 16 -> 32.
    with pytest.raises(
        ValueError,
        match=r"decoder output shape \(32, 32, 1\).*input_shape \(28, 28, 1\)"
        r".*decoder_strides",
    ):
        build(encoder_filters=(8, 16, 16), encoder_kernel_sizes=3,
              encoder_strides=2, decoder_filters=(16, 8, 1),
              decoder_kernel_sizes=3, decoder_strides=2)
    # Too few decoder layers: 7 -> 14.
    with pytest.raises(
        ValueError,
        match=r"decoder output shape \(14, 14, 1\).*input_shape \(28, 28, 1\)",
    ):
        build(decoder_filters=(1,), decoder_kernel_sizes=3, decoder_strides=2)
    # 27 -> 14 -> 7 cannot be mirrored by any strides: say so.
    with pytest.raises(
        ValueError,
        match=r"decoder output shape \(28, 28, 1\).*input_shape \(27, 27, 1\)"
        r".*not a whole multiple.*encoder_strides",
    ):
        build(input_shape=(27, 27, 1))


def test_encoder_too_small_for_valid_padding():
    with pytest.raises(ValueError, match=r"input_shape.*too small"):
        build(input_shape=(5, 5, 1), padding="valid",
              encoder_kernel_sizes=[3, 3])


# ----------------------------------------------------------------------------
# Saving
# ----------------------------------------------------------------------------


def test_keras_round_trip_safe_mode(tmp_path):
    encoder, decoder = build(batch_norm=True, dropout_rate=0.2,
                             intermediate_dim=16, beta=0.25, seed=5)
    encoder.get_layer("z").set_deterministic(True)
    x = np.random.default_rng(6).random((4, 28, 28, 1)).astype("float32")
    enc_out = encoder.predict(x, verbose=0)
    dec_out = decoder.predict(enc_out[0], verbose=0)

    enc_path = tmp_path / "encoder.keras"
    dec_path = tmp_path / "decoder.keras"
    encoder.save(enc_path)
    decoder.save(dec_path)
    encoder2 = keras.saving.load_model(enc_path, safe_mode=True)
    decoder2 = keras.saving.load_model(dec_path, safe_mode=True)

    assert [layer.name for layer in encoder2.layers] == [
        layer.name for layer in encoder.layers
    ]
    assert encoder2.count_params() == encoder.count_params()
    assert decoder2.count_params() == decoder.count_params()
    assert encoder2.get_layer("z").deterministic
    assert encoder2.get_layer("kl_divergence").get_config()["beta"] == 0.25
    for a, b in zip(enc_out, encoder2.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        dec_out, decoder2.predict(enc_out[0], verbose=0), rtol=1e-6, atol=1e-6
    )


def test_kl_layer_false_leaves_the_kl_term_to_the_model():
    from keras_vae_layers import KLDivergenceLayer, VAEModel

    kwargs = dict(input_shape=(8, 8, 1), z_dim=2, encoder_filters=(4,),
                  encoder_kernel_sizes=3, encoder_strides=2,
                  decoder_filters=(1,), decoder_kernel_sizes=3,
                  decoder_strides=2)
    with_layer, _ = build_conv_encoder_decoder(**kwargs, beta=0.3)
    assert float(keras.ops.convert_to_numpy(
        with_layer.get_layer("kl_divergence").beta)) == pytest.approx(0.3)
    plain, decoder = build_conv_encoder_decoder(**kwargs, kl_layer=False)
    assert not any(isinstance(layer, KLDivergenceLayer)
                   for layer in plain.layers)
    # Same trainable structure either way; only the KL layer's beta and
    # running KL statistics differ.
    assert plain.count_params() == with_layer.count_params() - 3
    vae = VAEModel(plain, decoder, beta=0.3)  # accepted: one owner
    assert float(keras.ops.convert_to_numpy(vae.beta)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"`beta`=0\.5 was given with "
                       r"kl_layer=False.*VAEModel\(beta=\.\.\.\)"):
        build_conv_encoder_decoder(**kwargs, kl_layer=False, beta=0.5)
    with pytest.raises(ValueError, match="`kl_layer` must be True or False"):
        build_conv_encoder_decoder(**kwargs, kl_layer="no")
