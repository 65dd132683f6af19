"""Builder for a matching convolutional VAE encoder and decoder."""

import math
import numbers

import keras

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.layers import KLDivergenceLayer
from keras_vae_layers.layers import SamplingLayer

__all__ = ["build_conv_encoder_decoder"]

_OWNER = "build_conv_encoder_decoder"

ACTIVATIONS = ("leaky_relu", "relu", "selu")
PADDINGS = ("same", "valid")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear", None)


def build_conv_encoder_decoder(
    input_shape,
    z_dim,
    encoder_filters,
    encoder_kernel_sizes,
    encoder_strides,
    decoder_filters,
    decoder_kernel_sizes,
    decoder_strides,
    padding="same",
    activation="leaky_relu",
    batch_norm=False,
    dropout_rate=0.0,
    intermediate_dim=None,
    intermediate_batch_norm=False,
    decoder_dense_activation=False,
    decoder_dense_batch_norm=False,
    kl_layer=True,
    beta=None,
    eps_clip=5.0,
    output_activation="sigmoid",
    seed=None,
    name=None,
):
    """Builds a convolutional VAE encoder and its mirror-image decoder.

    The encoder maps images to `[z, mu, logvar]`, with `z` drawn by a
    clamped `SamplingLayer`. The decoder maps `z` back to an image of
    `input_shape`.

    Who owns the KL term decides `kl_layer`:

    * `VAEModel` adds `beta * KL` itself, so build its encoder with
      `kl_layer=False` and pass `beta` to `VAEModel` (it refuses encoders
      that hold a `KLDivergenceLayer`).
    * For a VAE you compose as a Functional model and train with
      `compile(loss=ReconstructionLoss(...))`, keep `kl_layer=True` (the
      default): a `KLDivergenceLayer(beta)` inside the encoder adds the KL
      term with `add_loss` and logs `kl_loss`.

    Encoder, layer by layer (all names fixed, shown in brackets):

    * `Input(input_shape)` (`encoder_input`).
    * For each `i` (1-based): `Conv2D(encoder_filters[i-1],
      encoder_kernel_sizes[i-1], encoder_strides[i-1], padding)`
      (`encoder_conv_i`), then `BatchNormalization` (`encoder_conv_i_bn`,
      only with `batch_norm=True`), the activation (`encoder_conv_i_act`)
      and `Dropout` (`encoder_conv_i_dropout`, only with `dropout_rate > 0`).
    * `Flatten` (`encoder_flatten`).
    * Optional `Dense(intermediate_dim)` (`encoder_dense`) followed by the
      activation (`encoder_dense_act`) and dropout (`encoder_dense_dropout`,
      only with `dropout_rate > 0`); `BatchNormalization` before the
      activation (`encoder_dense_bn`) only with
      `intermediate_batch_norm=True`. Flatten -> (mu, logvar) usually
      dominates the parameter count; this bottleneck roughly halves it.
    * Two linear `Dense(z_dim)` heads `mu` and `logvar`, the pass-through
      `KLDivergenceLayer(beta)` (`kl_divergence`, only with
      `kl_layer=True`) and the `SamplingLayer(eps_clip, seed)` (`z`).

    Decoder:

    * `Input((z_dim,))` (`decoder_input`).
    * A linear `Dense(h * w * c)` (`decoder_dense`), where `(h, w, c)` is
      the encoder's pre-flatten shape, directly followed by
      `Reshape((h, w, c))` (`decoder_reshape`). Opt-in extras between the
      two: `BatchNormalization` (`decoder_dense_bn`, with
      `decoder_dense_batch_norm=True`) and the activation
      (`decoder_dense_act`, with `decoder_dense_activation=True`).
    * One `Conv2DTranspose` per entry of `decoder_filters`
      (`decoder_deconv_i`). All but the last are followed by BN (if
      `batch_norm`) and the activation; the last one is linear and its
      filter count must equal the number of input channels.
    * An `Activation(output_activation)` (`decoder_output`) computed in
      float32, so the reconstruction stays float32 under mixed precision.
      It has no weights.

    With the defaults this is the layer structure of the original faces VAE
    (input `(96, 96, 3)`, filters `(32, 64, 128, 256)` / `(128, 64, 32, 3)`,
    kernels 3, strides 2, `batch_norm=True`, `z_dim=256`): encoder
    5,109,440 parameters (2,881,472 with `intermediate_dim=256`), decoder
    2,757,571, not counting the encoder's non-trainable scalars below.

    Conventions:

    * `decoder_filters` lists **all** `Conv2DTranspose` layers, including the
      final one, so `decoder_filters[-1]` must equal `input_shape[-1]`
      (e.g. faces: encoder `(32, 64, 128, 256)`, decoder `(128, 64, 32, 3)`).
    * Every conv/dense layer keeps its bias, also when BN follows, so the
      parameter counts follow the textbook formulas: `Conv2D` /
      `Conv2DTranspose` `kh * kw * c_in * c_out + c_out`, `Dense`
      `n_in * n_out + n_out`, `BatchNormalization` `4 * c` (2 * c trainable).
      Besides those, the encoder holds the non-trainable scalars of the
      package layers: the sampling layer's `eps_factor` and, with
      `kl_layer=True`, the KL layer's `beta` and its running KL sum and
      count (`kl_total`, `kl_count`; logged, never saved).
    * Dropout is applied in the encoder only; the decoder has none.
    * `activation="selu"` switches the kernels of every layer followed by
      the activation to `LecunNormal` and uses `AlphaDropout` in place of
      `Dropout`, as self-normalising networks require. `"leaky_relu"` is
      Keras's `leaky_relu` activation (negative slope 0.2).
    * Data is channels-last whatever `keras.config.image_data_format()` says.
    * Shapes are checked before any layer is created: a decoder whose
      strides cannot reproduce `input_shape` raises a `ValueError` that
      shows the decoder output shape, `input_shape` and the shape trace.

    Args:
        input_shape: Image shape `(height, width, channels)`, positive ints.
        z_dim: Latent dimension, an int >= 1.
        encoder_filters: Non-empty list of `Conv2D` filter counts.
        encoder_kernel_sizes: List (same length) of kernel sizes, each an int
            or an `(h, w)` pair; a single int applies to every layer.
        encoder_strides: List (same length) of strides, each an int or an
            `(h, w)` pair; a single int applies to every layer.
        decoder_filters: Non-empty list of `Conv2DTranspose` filter counts,
            the last equal to `input_shape[-1]`.
        decoder_kernel_sizes: As `encoder_kernel_sizes`, for the decoder.
        decoder_strides: As `encoder_strides`, for the decoder.
        padding: `"same"` or `"valid"`, used by every conv layer.
        activation: Hidden activation: `"leaky_relu"`, `"relu"` or `"selu"`.
        batch_norm: Whether to put `BatchNormalization` before the
            activation of every hidden conv / transposed-conv layer (encoder
            and decoder). The two Dense layers have their own switches.
        dropout_rate: Encoder dropout rate in `[0, 1)`; `0` adds no layer.
        intermediate_dim: Optional int >= 1: size of a Dense layer between
            Flatten and the `mu` / `logvar` heads. `None` for none.
        intermediate_batch_norm: If `True`, put `BatchNormalization` between
            the intermediate Dense and its activation (independent of
            `batch_norm`; ignored without `intermediate_dim`).
        decoder_dense_activation: If `True`, apply the hidden activation to
            the decoder's first Dense layer (linear by default).
        decoder_dense_batch_norm: If `True`, put `BatchNormalization` after
            the decoder's first Dense layer (before the activation when
            `decoder_dense_activation=True`; independent of `batch_norm`).
        kl_layer: Whether the encoder holds a `KLDivergenceLayer` (for
            Functional VAEs). Use `False` for `VAEModel`, which owns the KL
            term.
        beta: Non-negative finite KL weight of that layer (default 1.0).
            Only with `kl_layer=True`; with `kl_layer=False` the weight
            belongs to `VAEModel(beta=...)` and passing it here is an error.
        eps_clip: Positive clamp of the sampling noise, or `None` for none.
        output_activation: `"sigmoid"` (pixel probabilities in `[0, 1]`), or
            `None` / `"linear"` for logits (use a loss with
            `from_logits=True`).
        seed: Optional int seed of the `SamplingLayer`. Weight initialisers
            and dropout follow `keras.utils.set_random_seed()`.
        name: Optional prefix: models are named `"{name}_encoder"` and
            `"{name}_decoder"` (`"encoder"` / `"decoder"` by default).

    Returns:
        A tuple `(encoder, decoder)` of functional `keras.Model`s. The
        encoder maps `(batch, *input_shape)` to `[z, mu, logvar]`, each
        `(batch, z_dim)`; the decoder maps `(batch, z_dim)` to
        `(batch, *input_shape)`.

    Raises:
        ValueError: On any invalid argument, or when the decoder cannot
            reproduce `input_shape`.

    Example:

    ```python
    encoder, decoder = build_conv_encoder_decoder(
        input_shape=(28, 28, 1), z_dim=2,
        encoder_filters=(32, 64), encoder_kernel_sizes=3, encoder_strides=2,
        decoder_filters=(32, 1), decoder_kernel_sizes=3, decoder_strides=2,
    )
    z, mu, logvar = encoder(images)        # 28x28 -> 14x14 -> 7x7 -> z
    reconstruction = decoder(z)            # 7x7 -> 14x14 -> 28x28
    encoder.get_layer("z").set_deterministic(True)   # z == mu from now on
    vae = VAEModel(*build_conv_encoder_decoder(..., kl_layer=False), beta=4)
    ```
    """
    input_shape = _check_input_shape(input_shape)
    z_dim = check_positive_int(z_dim, "z_dim", _OWNER)
    padding = check_choice(padding, "padding", PADDINGS, _OWNER)
    activation = check_choice(activation, "activation", ACTIVATIONS, _OWNER)
    batch_norm = _check_bool(batch_norm, "batch_norm")
    intermediate_batch_norm = _check_bool(
        intermediate_batch_norm, "intermediate_batch_norm")
    decoder_dense_activation = _check_bool(
        decoder_dense_activation, "decoder_dense_activation")
    decoder_dense_batch_norm = _check_bool(
        decoder_dense_batch_norm, "decoder_dense_batch_norm")
    dropout_rate = check_finite_number(
        dropout_rate, "dropout_rate", _OWNER, minimum=0.0
    )
    if dropout_rate >= 1.0:
        raise ValueError(
            f"{_OWNER}: `dropout_rate` must be in [0, 1), received "
            f"{dropout_rate!r}."
        )
    if intermediate_dim is not None:
        intermediate_dim = check_positive_int(
            intermediate_dim, "intermediate_dim", _OWNER
        )
    if not isinstance(kl_layer, bool):
        raise ValueError(
            f"{_OWNER}: `kl_layer` must be True or False, received "
            f"{kl_layer!r}."
        )
    if kl_layer:
        beta = check_finite_number(1.0 if beta is None else beta, "beta",
                                   _OWNER, minimum=0.0)
    elif beta is not None:
        raise ValueError(
            f"{_OWNER}: `beta`={beta!r} was given with kl_layer=False. "
            "Without a KLDivergenceLayer the encoder has no KL weight: pass "
            "it to the model that owns the KL term, VAEModel(beta=...)."
        )
    if eps_clip is not None:
        eps_clip = check_finite_number(
            eps_clip, "eps_clip", _OWNER, minimum=0.0, strict_minimum=True
        )
    output_activation = check_choice(
        output_activation, "output_activation", OUTPUT_ACTIVATIONS, _OWNER
    )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
    ):
        raise ValueError(
            f"{_OWNER}: `seed` must be an int or None, received {seed!r}."
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(
            f"{_OWNER}: `name` must be a non-empty string or None, received "
            f"{name!r}."
        )

    enc_filters, enc_kernels, enc_strides = _check_stack(
        "encoder", encoder_filters, encoder_kernel_sizes, encoder_strides
    )
    dec_filters, dec_kernels, dec_strides = _check_stack(
        "decoder", decoder_filters, decoder_kernel_sizes, decoder_strides
    )
    channels = input_shape[-1]
    if dec_filters[-1] != channels:
        raise ValueError(
            f"{_OWNER}: the last entry of `decoder_filters` must equal the "
            f"number of input channels (input_shape[-1] = {channels}), "
            f"received decoder_filters={tuple(dec_filters)}. "
            f"`decoder_filters` lists every Conv2DTranspose layer, including "
            f"the final one that produces the image."
        )

    pre_flatten_shape = _encoder_pre_flatten_shape(
        input_shape, enc_filters, enc_kernels, enc_strides, padding
    )
    _check_decoder_output_shape(
        input_shape, pre_flatten_shape, dec_kernels, dec_strides, padding
    )

    encoder = _build_encoder(
        input_shape, z_dim, enc_filters, enc_kernels, enc_strides, padding,
        activation, batch_norm, dropout_rate, intermediate_dim,
        intermediate_batch_norm, beta if kl_layer else None, eps_clip, seed,
        f"{name}_encoder" if name else "encoder",
    )
    decoder = _build_decoder(
        input_shape, z_dim, pre_flatten_shape, dec_filters, dec_kernels,
        dec_strides, padding, activation, batch_norm,
        decoder_dense_activation, decoder_dense_batch_norm,
        output_activation, f"{name}_decoder" if name else "decoder",
    )
    # Safety net: the formulas above must agree with what Keras built.
    if tuple(decoder.output.shape[1:]) != input_shape:
        raise ValueError(_decoder_shape_message(
            tuple(decoder.output.shape[1:]), input_shape, pre_flatten_shape,
            dec_strides, padding, trace=None,
        ))
    return encoder, decoder


# ----------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------


def _check_bool(value, name):
    if not isinstance(value, bool):
        raise ValueError(
            f"{_OWNER}: `{name}` must be True or False, received {value!r}."
        )
    return value


def _check_input_shape(input_shape):
    expected = (
        "a rank-3 (height, width, channels) tuple of positive ints"
    )
    if (
        isinstance(input_shape, (str, bytes))
        or not isinstance(input_shape, (list, tuple))
        or len(input_shape) != 3
    ):
        raise ValueError(
            f"{_OWNER}: `input_shape` must be {expected}, received "
            f"{input_shape!r}."
        )
    for dim in input_shape:
        if (
            isinstance(dim, bool)
            or not isinstance(dim, numbers.Integral)
            or dim < 1
        ):
            raise ValueError(
                f"{_OWNER}: `input_shape` must be {expected}, received "
                f"{tuple(input_shape)!r} (bad entry {dim!r})."
            )
    return tuple(int(d) for d in input_shape)


def _check_filters(value, name):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{_OWNER}: `{name}` must be a non-empty list of positive ints "
            f"(one per layer), received {value!r}."
        )
    if len(value) == 0:
        raise ValueError(
            f"{_OWNER}: `{name}` must not be empty (one entry per layer), "
            f"received {value!r}."
        )
    return [
        check_positive_int(v, f"{name}[{i}]", _OWNER)
        for i, v in enumerate(value)
    ]


def _check_pairs(value, name, num_layers):
    """A list of ints / (h, w) pairs, or one int for every layer."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value] * num_layers
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{_OWNER}: `{name}` must be an int or a list with one int or "
            f"(h, w) pair per layer, received {value!r}."
        )
    if len(value) == 0:
        raise ValueError(
            f"{_OWNER}: `{name}` must not be empty (one entry per layer), "
            f"received {value!r}."
        )
    pairs = []
    for i, v in enumerate(value):
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            v = (v, v)
        ok = (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(
                isinstance(d, numbers.Integral)
                and not isinstance(d, bool)
                and d >= 1
                for d in v
            )
        )
        if not ok:
            raise ValueError(
                f"{_OWNER}: `{name}[{i}]` must be a positive int or an (h, w) "
                f"pair of positive ints, received {value[i]!r}."
            )
        pairs.append((int(v[0]), int(v[1])))
    return pairs


def _check_stack(part, filters, kernel_sizes, strides):
    names = (f"{part}_filters", f"{part}_kernel_sizes", f"{part}_strides")
    filters = _check_filters(filters, names[0])
    kernel_sizes = _check_pairs(kernel_sizes, names[1], len(filters))
    strides = _check_pairs(strides, names[2], len(filters))
    lengths = (len(filters), len(kernel_sizes), len(strides))
    if len(set(lengths)) != 1:
        raise ValueError(
            f"{_OWNER}: `{names[0]}`, `{names[1]}` and `{names[2]}` must have "
            f"the same length (one entry per layer), received lengths "
            f"{lengths[0]}, {lengths[1]} and {lengths[2]}."
        )
    return filters, kernel_sizes, strides


# ----------------------------------------------------------------------------
# Shape arithmetic (Keras's conv / conv-transpose output-length rules)
# ----------------------------------------------------------------------------


def _conv_length(size, kernel, stride, padding):
    if padding == "same":
        return -(-size // stride)
    return (size - kernel) // stride + 1


def _deconv_length(size, kernel, stride, padding):
    if padding == "same":
        return size * stride
    return size * stride + max(kernel - stride, 0)


def _fmt(hw):
    return f"{hw[0]}x{hw[1]}"


def _encoder_pre_flatten_shape(input_shape, filters, kernels, strides,
                               padding):
    hw = input_shape[:2]
    trace = [_fmt(hw)]
    for kernel, stride in zip(kernels, strides):
        hw = tuple(
            _conv_length(hw[a], kernel[a], stride[a], padding) for a in (0, 1)
        )
        trace.append(_fmt(hw))
        if min(hw) < 1:
            raise ValueError(
                f"{_OWNER}: `input_shape` {input_shape} is too small for the "
                f"encoder: with encoder_kernel_sizes={kernels}, "
                f"encoder_strides={strides} and padding={padding!r} the "
                f"spatial size goes {' -> '.join(trace)}. Use fewer layers, "
                f"smaller kernels or strides, or padding='same'."
            )
    return (hw[0], hw[1], filters[-1])


def _check_decoder_output_shape(input_shape, pre_flatten_shape, kernels,
                                strides, padding):
    hw = pre_flatten_shape[:2]
    trace = [_fmt(hw)]
    for kernel, stride in zip(kernels, strides):
        hw = tuple(
            _deconv_length(hw[a], kernel[a], stride[a], padding)
            for a in (0, 1)
        )
        trace.append(_fmt(hw))
    output_shape = (hw[0], hw[1], input_shape[-1])
    if output_shape != input_shape:
        raise ValueError(_decoder_shape_message(
            output_shape, input_shape, pre_flatten_shape, strides, padding,
            trace,
        ))


def _decoder_shape_message(output_shape, input_shape, pre_flatten_shape,
                           strides, padding, trace):
    products = tuple(math.prod(s[a] for s in strides) for a in (0, 1))
    ratios = tuple(input_shape[a] / pre_flatten_shape[a] for a in (0, 1))
    path = f" ({' -> '.join(trace)})" if trace else ""
    if all(r.is_integer() for r in ratios):
        advice = (
            f"the strides multiply to {products[0]}x{products[1]}, but "
            f"{int(ratios[0])}x{int(ratios[1])} is needed. Adjust "
            f"decoder_strides (with padding='valid', also "
            f"decoder_kernel_sizes) so that the decoder reproduces "
            f"input_shape."
        )
    else:
        advice = (
            "input_shape is not a whole multiple of the pre-flatten size, "
            "so no decoder_strides can reproduce it. Change encoder_strides "
            "or input_shape so that each encoder stride divides the spatial "
            "size (e.g. 28 -> 14 -> 7 with strides 2, 2); the same strides "
            "in decoder_strides then mirror it exactly."
        )
    return (
        f"{_OWNER}: the decoder output shape {output_shape} does not match "
        f"input_shape {input_shape}. The decoder starts from the encoder's "
        f"pre-flatten shape {pre_flatten_shape} and upsamples it with "
        f"decoder_strides={strides} (padding={padding!r}){path}: {advice}"
    )


# ----------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------


def _kernel_initializer(activation):
    # Self-normalising (SELU) networks need LeCun-normal weights.
    return "lecun_normal" if activation == "selu" else "glorot_uniform"


def _post_block(x, prefix, activation, batch_norm, dropout_rate=0.0):
    """BN (optional) -> activation (unless `None`) -> dropout (optional)."""
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
    if activation is not None:
        x = keras.layers.Activation(activation, name=f"{prefix}_act")(x)
    if dropout_rate > 0.0:
        # AlphaDropout keeps SELU's self-normalising mean and variance.
        dropout_cls = (
            keras.layers.AlphaDropout if activation == "selu"
            else keras.layers.Dropout
        )
        x = dropout_cls(dropout_rate, name=f"{prefix}_dropout")(x)
    return x


def _build_encoder(input_shape, z_dim, filters, kernels, strides, padding,
                   activation, batch_norm, dropout_rate, intermediate_dim,
                   intermediate_batch_norm, beta, eps_clip, seed, model_name):
    init = _kernel_initializer(activation)
    inputs = keras.Input(shape=input_shape, name="encoder_input")
    x = inputs
    for i, (n, kernel, stride) in enumerate(zip(filters, kernels, strides), 1):
        prefix = f"encoder_conv_{i}"
        x = keras.layers.Conv2D(
            n, kernel, strides=stride, padding=padding,
            data_format="channels_last", kernel_initializer=init, name=prefix,
        )(x)
        x = _post_block(x, prefix, activation, batch_norm, dropout_rate)
    x = keras.layers.Flatten(name="encoder_flatten")(x)
    if intermediate_dim is not None:
        x = keras.layers.Dense(
            intermediate_dim, kernel_initializer=init, name="encoder_dense"
        )(x)
        x = _post_block(x, "encoder_dense", activation,
                        intermediate_batch_norm, dropout_rate)
    mu = keras.layers.Dense(z_dim, name="mu")(x)
    logvar = keras.layers.Dense(z_dim, name="logvar")(x)
    if beta is not None:
        mu, logvar = KLDivergenceLayer(beta=beta, name="kl_divergence")(
            [mu, logvar]
        )
    z = SamplingLayer(eps_clip=eps_clip, seed=seed, name="z")([mu, logvar])
    return keras.Model(inputs, [z, mu, logvar], name=model_name)


def _build_decoder(input_shape, z_dim, pre_flatten_shape, filters, kernels,
                   strides, padding, activation, batch_norm,
                   dense_activation, dense_batch_norm, output_activation,
                   model_name):
    init = _kernel_initializer(activation)
    inputs = keras.Input(shape=(z_dim,), name="decoder_input")
    # Linear by default, as in the original VAE; LeCun init only when the
    # activation follows (the same rule as every other layer).
    x = keras.layers.Dense(
        math.prod(pre_flatten_shape),
        kernel_initializer=init if dense_activation else "glorot_uniform",
        name="decoder_dense",
    )(inputs)
    x = _post_block(x, "decoder_dense",
                    activation if dense_activation else None,
                    dense_batch_norm)
    x = keras.layers.Reshape(pre_flatten_shape, name="decoder_reshape")(x)
    last = len(filters)
    for i, (n, kernel, stride) in enumerate(zip(filters, kernels, strides), 1):
        prefix = f"decoder_deconv_{i}"
        x = keras.layers.Conv2DTranspose(
            n, kernel, strides=stride, padding=padding,
            data_format="channels_last",
            kernel_initializer=init if i < last else "glorot_uniform",
            name=prefix,
        )(x)
        if i < last:
            x = _post_block(x, prefix, activation, batch_norm)
    # float32 so the reconstruction (and its loss) stays float32 under
    # mixed precision; "linear" leaves logits.
    outputs = keras.layers.Activation(
        output_activation or "linear", dtype="float32", name="decoder_output"
    )(x)
    return keras.Model(inputs, outputs, name=model_name)
