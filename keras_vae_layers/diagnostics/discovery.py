"""Finding the encoder and the decoder inside a VAE.

One implementation behind two public entry points with different needs:

* `find_encoder` / `find_decoder` (exported by `diagnostics`) are
  *strict*: they return something to run data through, or raise a
  `ValueError` that tells the user to pass `encoder=` / `decoder=`.
* `find_encoder_decoder` (re-exported by `callbacks.checkpoint`) is
  *lenient*: it returns the sub-models whose weights can be saved on their
  own, and `None` for a part it cannot identify unambiguously.

Both read the same signals, in the same order: `encoder` / `decoder`
attributes (`VAEModel`), then the direct sub-models of a Functional VAE,
told apart by the package layers they hold (a decoder never holds a
`SamplingLayer` or `KLDivergenceLayer`), by the latent size, and by name.
"""

import keras

from keras_vae_layers import _keras_compat
from keras_vae_layers.layers import KLDivergenceLayer
from keras_vae_layers.layers import SamplingLayer
from keras_vae_layers.models.encoder_outputs import looks_like_encoder

VAE_LAYERS = (SamplingLayer, KLDivergenceLayer)


def _is_layer(value):
    return isinstance(value, keras.layers.Layer)


def contains(model, classes):
    """Whether `model` (or any layer nested in it) is an instance of `classes`."""
    return any(
        isinstance(layer, classes)
        for layer in _keras_compat.all_layers(model, include_self=True)
    )


def nested_models(model):
    """The direct sub-models of a Functional (or subclassed) model."""
    return [
        layer for layer in getattr(model, "layers", [])
        if isinstance(layer, keras.Model) and layer is not model
    ]


def part_attribute(model, name, cls=keras.layers.Layer):
    """`model.<name>` (`encoder` / `decoder`) if it is a `cls`, else `None`."""
    value = getattr(model, name, None)
    return value if isinstance(value, cls) else None


def _flat_sampler(model):
    """The single top-level `SamplingLayer` called once in `model`, or None."""
    samplers = [
        layer for layer in getattr(model, "layers", [])
        if isinstance(layer, SamplingLayer)
    ]
    if len(samplers) != 1 or not getattr(model, "inputs", None):
        return None
    if _keras_compat.call_count(samplers[0]) != 1:
        return None
    return samplers[0]


def flat_encoder_view(model, owner):
    """A `[z, mu, logvar]` model over a flat Functional VAE, or `None`."""
    sampler = _flat_sampler(model)
    if sampler is None:
        return None
    try:
        mu, logvar = sampler.input
        return keras.Model(model.inputs, [sampler.output, mu, logvar],
                           name=f"{model.name}_encoder_view")
    except Exception as exc:  # pragma: no cover - exotic graphs
        raise ValueError(
            f"{owner}: could not read [z, mu, logvar] from the graph of model "
            f"'{model.name}' ({exc}); pass the encoder explicitly with "
            "`encoder=`."
        ) from None


def encoder_latent_size(encoder):
    """Latent size of a Functional encoder (its last output's last axis).

    Returns `None` when the encoder has no symbolic outputs (subclassed).
    """
    outputs = getattr(encoder, "outputs", None)
    if outputs:
        try:
            return int(outputs[-1].shape[-1])
        except (TypeError, IndexError):
            return None
    return None


def decoder_latent_size(decoder):
    """Latent size a decoder expects (its input's last axis), or `None`."""
    z_dim = getattr(decoder, "z_dim", None)  # VAEModel
    if isinstance(z_dim, int):
        return z_dim
    inputs = getattr(decoder, "inputs", None)
    if inputs and len(inputs) == 1 and inputs[0].shape[-1] is not None:
        return int(inputs[0].shape[-1])
    return None


def _names(models):
    return ", ".join(repr(m.name) for m in models)


def _narrow(candidates, tests):
    """Applies `(description, predicate)` tests in turn until one is left.

    A test that matches no candidate is skipped; one that matches several
    narrows the candidates and the next test breaks the tie.

    Returns:
        `(found, ambiguous, description)`: the single candidate (or `None`),
        and, when none was singled out, the candidates left by the first
        test that matched several, with that test's description.
    """
    ambiguous, description = None, None
    for what, test in tests:
        matching = [m for m in candidates if test(m)]
        if len(matching) == 1:
            return matching[0], None, None
        if matching:
            candidates = matching
            if ambiguous is None:
                ambiguous, description = matching, what
    return None, ambiguous, description


_STRICT_ENCODER_TESTS = (
    ("a SamplingLayer", lambda m: contains(m, SamplingLayer)),
)
_LENIENT_ENCODER_TESTS = _STRICT_ENCODER_TESTS + (
    ("a KLDivergenceLayer", lambda m: contains(m, KLDivergenceLayer)),
    ("'encoder' in its name", lambda m: "encoder" in m.name.lower()),
)


def encoder_submodel(model, owner, lenient=False):
    """The sub-model of `model` that is its encoder, or `None` if none is.

    The encoder is the one sub-model holding a `SamplingLayer`; with
    `lenient=True` a `KLDivergenceLayer`, then `"encoder"` in the name, also
    single one out (or break a tie).

    Raises:
        ValueError: When several sub-models qualify and none is singled out.
    """
    tests = _LENIENT_ENCODER_TESTS if lenient else _STRICT_ENCODER_TESTS
    found, ambiguous, what = _narrow(nested_models(model), tests)
    if ambiguous:
        raise ValueError(
            f"{owner}: model '{model.name}' holds several sub-models with "
            f"{what} ({_names(ambiguous)}); pass the encoder explicitly with "
            "`encoder=`."
        )
    return found


def _latent_size(model, encoder):
    if encoder is not None:
        return encoder_latent_size(encoder)
    sampler = _flat_sampler(model)
    if sampler is not None:
        try:
            return int(sampler.output.shape[-1])
        except Exception:  # noqa: BLE001 - unknown is a valid answer
            return None
    return None


def decoder_submodel(model, encoder, owner):
    """The sub-model of `model` that is its decoder, or `None` if none is.

    Candidates are the sub-models other than `encoder` that hold no
    `SamplingLayer` or `KLDivergenceLayer` (a decoder never samples); when
    the latent size is known (from `encoder`, or from a flat VAE's single
    `SamplingLayer`) only those taking one input of that size remain; a
    name containing `"decoder"` breaks a tie.

    Raises:
        ValueError: When several candidates remain.
    """
    candidates = [
        m for m in nested_models(model)
        if m is not encoder and not contains(m, VAE_LAYERS)
    ]
    latent = _latent_size(model, encoder)
    if latent is not None:
        candidates = [
            m for m in candidates
            if getattr(m, "inputs", None) and len(m.inputs) == 1
            and m.inputs[0].shape[-1] == latent
        ]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    named = [m for m in candidates if "decoder" in m.name.lower()]
    if len(named) == 1:
        return named[0]
    name = getattr(model, "name", type(model).__name__)
    raise ValueError(
        f"{owner}: model '{name}' has several sub-models that could be the "
        f"decoder ({_names(candidates)}); pass the decoder explicitly with "
        "`decoder=`."
    )


# ----------------------------------------------------------------------------
# Public entry points (re-exported by `diagnostics` and `callbacks`)
# ----------------------------------------------------------------------------


def find_encoder(model, owner="find_encoder"):
    """Returns the encoder of a VAE, or `model` itself if it is one.

    Looks, in this order, for: an `encoder` attribute (`VAEModel`); a
    Functional model whose own outputs are `[z, mu, logvar]`, `[mu, logvar]`
    or a dict with `mu`/`logvar` (an encoder); exactly one nested sub-model
    holding a `SamplingLayer`; a flat Functional VAE with one
    `SamplingLayer` (a `[z, mu, logvar]` view of its graph is returned).
    Anything else (e.g. a subclassed encoder) is returned unchanged and its
    outputs are checked when it is called.

    Args:
        model: A Keras model or layer.
        owner: Name used in error messages.

    Returns:
        A Keras model or layer mapping `x` to the encoder outputs.

    Raises:
        ValueError: If `model` is not a Keras layer, or several sub-models
            hold a `SamplingLayer`.

    Example:

    ```python
    encoder = find_encoder(vae)
    z, mu, logvar = encoder.predict(x)
    ```
    """
    if not _is_layer(model):
        raise ValueError(
            f"{owner}: expected a Keras encoder or VAE model, received "
            f"{model!r} of type {type(model).__name__}."
        )
    encoder = part_attribute(model, "encoder")
    if encoder is not None:
        return encoder
    if looks_like_encoder(model):
        return model
    encoder = encoder_submodel(model, owner)
    if encoder is not None:
        return encoder
    view = flat_encoder_view(model, owner)
    if view is not None:
        return view
    return model


def find_decoder(model, owner="find_decoder"):
    """Returns the decoder of a VAE.

    Uses the `decoder` attribute (`VAEModel`) or, for a Functional VAE, the
    single nested sub-model that holds neither a `SamplingLayer` nor a
    `KLDivergenceLayer` (and, when the latent size is known, takes inputs of
    that size; a name containing `"decoder"` breaks a tie).

    Args:
        model: A Keras model.
        owner: Name used in error messages.

    Returns:
        The decoder model or layer.

    Raises:
        ValueError: When no decoder (or more than one candidate) is found; the
            message tells the user to pass `decoder=`.

    Example:

    ```python
    images = find_decoder(vae).predict(z)
    ```
    """
    decoder = part_attribute(model, "decoder")
    if decoder is not None:
        return decoder
    try:
        encoder = encoder_submodel(model, owner)
    except ValueError:
        encoder = None  # the latent size is then read from elsewhere or unknown
    decoder = decoder_submodel(model, encoder, owner)
    if decoder is not None:
        return decoder
    name = getattr(model, "name", type(model).__name__)
    raise ValueError(
        f"{owner}: model '{name}' has no `decoder` attribute and no "
        "nested decoder sub-model, so there is nothing to decode latent "
        "points with. Pass the decoder explicitly, e.g. "
        "`decoder=my_decoder` (a model mapping z to images)."
    )


def find_encoder_decoder(model):
    """Finds the encoder and decoder sub-models of a VAE.

    * A model with `encoder` and/or `decoder` attributes that are Keras
      models (such as `VAEModel`) returns those.
    * Otherwise the direct sub-models of `model` are inspected: the encoder
      is the only sub-model containing a `SamplingLayer` (or, failing that,
      a `KLDivergenceLayer`, or a name containing `"encoder"`); the decoder
      is the only other sub-model without those layers that takes inputs of
      the latent size when it is known (a name containing `"decoder"`
      breaks a tie).

    Args:
        model: A Keras model.

    Returns:
        `(encoder, decoder)`; either is `None` when it cannot be identified
        unambiguously.

    Example:

    ```python
    encoder, decoder = find_encoder_decoder(vae)
    ```
    """
    encoder = part_attribute(model, "encoder", keras.Model)
    decoder = part_attribute(model, "decoder", keras.Model)
    if encoder is not None or decoder is not None:
        return encoder, decoder
    owner = "find_encoder_decoder"
    try:
        encoder = encoder_submodel(model, owner, lenient=True)
    except ValueError:
        encoder = None
    try:
        decoder = decoder_submodel(model, encoder, owner)
    except ValueError:
        decoder = None
    return encoder, decoder
