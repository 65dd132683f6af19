"""The encoder-output contract: one parser for every part of the package.

A VAE encoder maps `x` to one of

* `[z, mu, logvar]` (this order; `z` has the shape of `mu`),
* `[mu, logvar]` (the caller draws `z`), or
* a dict with keys `"mu"`, `"logvar"` and optionally `"z"`.

`VAEModel`, the diagnostics, the image grids and the callbacks all read
encoder outputs with `split_encoder_outputs`, so the accepted forms and the
error message are the same everywhere. It works on symbolic tensors, backend
tensors and numpy arrays alike.
"""

import numpy as np

from keras_vae_layers._validation import shapes_compatible

__all__ = [
    "ENCODER_OUTPUT_FORMS",
    "describe_outputs",
    "split_encoder_outputs",
    "symbolic_outputs",
    "check_encoder_outputs",
    "looks_like_encoder",
]

ENCODER_OUTPUT_FORMS = (
    "[z, mu, logvar], [mu, logvar] or a dict with keys 'mu', 'logvar' (and "
    "optionally 'z')"
)
"""The accepted encoder output structures, as error messages name them."""


def _shape(value):
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value)
    return tuple(shape)


def describe_outputs(outputs):
    """`"2 output(s): [shape (None, 8), shape (None, 8)]"`-style summary."""
    if isinstance(outputs, dict):
        inner = ", ".join(f"{k!r}: shape {_shape(v)}"
                          for k, v in outputs.items())
        return f"a dict {{{inner}}}"
    if isinstance(outputs, (list, tuple)):
        inner = ", ".join(f"shape {_shape(v)}" for v in outputs)
        return f"{len(outputs)} output(s): [{inner}]"
    return f"1 output of shape {_shape(outputs)}"


def _error(owner, outputs, hint):
    return ValueError(
        f"{owner}: the encoder must return {ENCODER_OUTPUT_FORMS}; received "
        f"{describe_outputs(outputs)}.{(' ' + hint) if hint else ''}"
    )


def split_encoder_outputs(outputs, owner, hint=""):
    """Splits encoder outputs into `(z, mu, logvar)`.

    Args:
        outputs: What the encoder returned (tensors, symbolic tensors or
            numpy arrays, in one of the structures of
            `ENCODER_OUTPUT_FORMS`).
        owner: Name used at the start of error messages.
        hint: Optional sentence appended to the error message (e.g. how to
            pass the encoder explicitly).

    Returns:
        `(z, mu, logvar)`; `z` is `None` when the encoder returns no sample.

    Raises:
        ValueError: For any other structure, for `mu`/`logvar` of different
            shapes, and for a `z` whose shape differs from `mu`'s (a whole
            VAE returning `[x_hat, mu, logvar]` passed as an encoder).

    Example:

    ```python
    z, mu, logvar = split_encoder_outputs(encoder(x), "my_function")
    ```
    """
    if isinstance(outputs, dict):
        if not {"mu", "logvar"} <= set(outputs):
            raise _error(owner, outputs, hint)
        z, mu, logvar = outputs.get("z"), outputs["mu"], outputs["logvar"]
    elif isinstance(outputs, (list, tuple)) and len(outputs) == 3:
        z, mu, logvar = outputs
    elif isinstance(outputs, (list, tuple)) and len(outputs) == 2:
        z, (mu, logvar) = None, outputs
    else:
        raise _error(owner, outputs, hint)
    if not shapes_compatible(_shape(mu), _shape(logvar)):
        raise ValueError(
            f"{owner}: the encoder's `mu` and `logvar` must have the same "
            f"shape, received {_shape(mu)} and {_shape(logvar)}."
            f"{(' ' + hint) if hint else ''}"
        )
    if z is not None and not shapes_compatible(_shape(z), _shape(mu)):
        raise ValueError(
            f"{owner}: the first of three encoder outputs must be `z` with "
            f"the shape of `mu` {_shape(mu)}, received shape {_shape(z)}. A "
            "whole VAE returning [x_hat, mu, logvar] is not an encoder."
            f"{(' ' + hint) if hint else ''}"
        )
    return z, mu, logvar


def symbolic_outputs(model):
    """The output structure of a Functional or Sequential model, or `None`.

    Read from the public `model.output` (a tensor, list or dict); `None` for
    subclassed models, whose outputs are known only once they are called.
    """
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    try:
        return model.output
    except (AttributeError, ValueError):
        # A Sequential model that was built but never called.
        return outputs[0] if len(outputs) == 1 else list(outputs)


def check_encoder_outputs(encoder, owner, hint=""):
    """Checks a Functional encoder's outputs without calling it.

    Subclassed encoders (no symbolic outputs) pass; their outputs are
    checked when they are first called.

    Raises:
        ValueError: As `split_encoder_outputs`.
    """
    outputs = symbolic_outputs(encoder)
    if outputs is not None:
        split_encoder_outputs(outputs, owner, hint)


def looks_like_encoder(model):
    """Whether a Functional model's own outputs follow the contract.

    All outputs must share one shape, so that a VAE returning
    `[x_hat, mu, logvar]` (for flat latents of the image size) is not taken
    for an encoder.
    """
    outputs = symbolic_outputs(model)
    if outputs is None:
        return False
    try:
        split_encoder_outputs(outputs, "looks_like_encoder")
    except ValueError:
        return False
    values = outputs.values() if isinstance(outputs, dict) else outputs
    return len({_shape(v) for v in values}) == 1
