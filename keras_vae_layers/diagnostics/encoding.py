"""Running an encoder (or any model) over a dataset, one batch at a time.

`encode_dataset` never moves the whole set onto the device: arrays are
sliced, and `tf.data` datasets, `keras.utils.PyDataset`s and generators are
iterated batch by batch through the model's cached `predict_on_batch`
function (no retrace per call). Its outputs go through the package's one
encoder-output parser (`models.encoder_outputs`).
"""

import keras
import numpy as np

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._validation import shapes_compatible
from keras_vae_layers.diagnostics.discovery import find_encoder
from keras_vae_layers.models.encoder_outputs import split_encoder_outputs

__all__ = [
    "DEFAULT_EPS_CLIP",
    "forward_batch",
    "predict_in_batches",
    "encode_dataset",
    "expected_input_shape",
    "check_batch_shape",
]

DEFAULT_EPS_CLIP = 5.0
"""Clamp of the numpy noise for `[mu, logvar]` encoders (as in the layer)."""

_PASS_ENCODER_HINT = "If you passed a whole VAE, pass its encoder with `encoder=`."


def forward_batch(model, batch):
    """One batch through `model`; numpy output(s).

    Keras models go through `predict_on_batch`, whose traced function is
    built once and reused (no retrace per call).
    """
    if isinstance(model, keras.Model):
        # `predict_on_batch` builds `predict_function` once and caches it, so
        # repeated calls (one per epoch in the callbacks) do not retrace.
        out = model.predict_on_batch(batch)
        # Under a multi-worker MultiWorkerMirroredStrategy every worker runs
        # this same batch and Keras 3 all-gathers their outputs, one copy
        # per worker (keras-team/keras#20585): keep the first.
        rows = len(keras.tree.flatten(batch)[0])
        return keras.tree.map_structure(
            lambda a: a[:rows] if np.ndim(a) and len(a) > rows else a, out)
    out = model(batch, training=False)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, out)


def predict_in_batches(model, x, batch_size=256, owner="predict_in_batches"):
    """Runs `model` over a numpy array in slices of `batch_size` rows.

    Returns:
        numpy output(s), concatenated along the batch axis, with the model's
        output structure (array, list or dict).
    """
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    outs = [forward_batch(model, x[i:i + batch_size])
            for i in range(0, len(x), batch_size)]
    return _concat(outs)


def _concat(outs):
    first = outs[0]
    if isinstance(first, dict):
        return {k: np.concatenate([o[k] for o in outs]) for k in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([o[i] for o in outs])
                for i in range(len(first))]
    return np.concatenate(outs)


def expected_input_shape(encoder):
    inputs = getattr(encoder, "inputs", None)
    if inputs and len(inputs) == 1:
        return tuple(inputs[0].shape)
    return None


def check_batch_shape(shape, expected, owner, what):
    shape = tuple(shape)
    if len(shape) < 2 and expected is None:
        raise ValueError(
            f"{owner}: {what} must have rank >= 2 (batch, features...), "
            f"received shape {shape}."
        )
    if expected is None:
        return
    if not shapes_compatible(shape, expected):
        raise ValueError(
            f"{owner}: {what} of shape {shape} does not match the encoder "
            f"input shape {expected} (rank {len(expected)}, batch axis "
            "first). A tf.data.Dataset must be batched (`.batch(n)`)."
        )


def _is_array_like(x):
    return isinstance(x, (np.ndarray, list, tuple)) or (
        hasattr(x, "shape") and hasattr(x, "__array__")
    )


def _iter_batches(x):
    if isinstance(x, keras.utils.PyDataset):
        for i in range(len(x)):
            yield x[i]
        return
    if keras.backend.backend() != "tensorflow" and callable(
            getattr(x, "as_numpy_iterator", None)):
        # A tf.data.Dataset yields TensorFlow tensors, which JAX and torch
        # models cannot take; numpy batches work on every backend.
        yield from x.as_numpy_iterator()
        return
    yield from x


def _first(batch):
    # (x,), (x, y) and (x, y, sample_weight) batches: keep x.
    if isinstance(batch, (list, tuple)):
        if not batch:
            raise ValueError("encode_dataset: received an empty batch tuple.")
        return batch[0]
    if isinstance(batch, dict):
        raise ValueError(
            "encode_dataset: dict batches are not supported; map the dataset "
            "to (x,) batches first."
        )
    return batch


def encode_dataset(encoder_or_vae, x, batch_size=256, seed=0,
                   eps_clip=DEFAULT_EPS_CLIP):
    """Encodes a dataset batch by batch; returns numpy `z`, `mu`, `logvar`.

    Only one batch at a time is sent through the encoder (with
    `predict_on_batch`, whose traced function is built once and reused),
    so data sets larger than device memory work.

    `z` is the encoder's own sample when it returns `[z, mu, logvar]` (or a
    dict with `z`). For `[mu, logvar]` encoders `z` is drawn here with numpy:
    `z = mu + exp(0.5 * logvar) * clip(eps, -eps_clip, eps_clip)` with
    `eps ~ N(0, I)` from `numpy.random.default_rng(seed)` and `logvar`
    clipped to [-30, 20] as in `SamplingLayer`, so repeated calls agree.

    Args:
        encoder_or_vae: An encoder, or a VAE holding one (see
            `find_encoder`).
        x: A numpy array (or list / tensor) of samples with the batch axis
            first, or an iterable of batches: a `tf.data.Dataset`, a
            `keras.utils.PyDataset` or a generator. Batches may be `(x,)`,
            `(x, y)` or `(x, y, w)` tuples; only `x` is used.
        batch_size: Rows per forward pass for array input (iterables keep
            their own batching).
        seed: Seed of the numpy noise for `[mu, logvar]` encoders.
        eps_clip: Clamp of that noise (positive), or `None`.

    Returns:
        Dict of float32 numpy arrays `z`, `mu`, `logvar`, each of shape
        `(n, *latent_shape)`.

    Raises:
        ValueError: On empty data, data whose rank or shape does not match
            the encoder input, a bad `batch_size`, or encoder outputs that
            are not `[z, mu, logvar]`, `[mu, logvar]` or a dict.

    Example:

    ```python
    enc = encode_dataset(vae, x_val, batch_size=512)
    enc["mu"].shape   # (len(x_val), z_dim)
    ```
    """
    owner = "encode_dataset"
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    if eps_clip is not None:
        eps_clip = check_finite_number(eps_clip, "eps_clip", owner,
                                       minimum=0.0, strict_minimum=True)
    encoder = find_encoder(encoder_or_vae, owner)
    expected = expected_input_shape(encoder)
    if _is_array_like(x):
        x = np.asarray(x)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(
                f"{owner}: `x` is empty (shape {x.shape}); need at least one "
                "sample."
            )
        check_batch_shape(x.shape, expected, owner, "`x`")
        batches = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
    else:
        if not isinstance(x, keras.utils.PyDataset):
            try:
                iter(x)
            except TypeError:
                raise ValueError(
                    f"{owner}: `x` must be an array or an iterable of "
                    f"batches, received {type(x).__name__}."
                ) from None
        batches = _iter_batches(x)
    zs, mus, logvars = [], [], []
    for batch in batches:
        batch = _first(batch)
        check_batch_shape(np.shape(batch), expected, owner, "a batch")
        if np.shape(batch)[0] == 0:
            continue
        z, mu, logvar = split_encoder_outputs(
            forward_batch(encoder, batch), owner, _PASS_ENCODER_HINT)
        mus.append(np.asarray(mu, dtype="float32"))
        logvars.append(np.asarray(logvar, dtype="float32"))
        zs.append(None if z is None else np.asarray(z, dtype="float32"))
    if not mus:
        raise ValueError(
            f"{owner}: `x` yielded no samples; need at least one."
        )
    mu = np.concatenate(mus)
    logvar = np.concatenate(logvars)
    if mu.shape != logvar.shape:
        raise ValueError(
            f"{owner}: the encoder's `mu` and `logvar` differ in shape: "
            f"{mu.shape} vs {logvar.shape}."
        )
    if any(z is None for z in zs):
        z = _sample_numpy(mu, logvar, seed, eps_clip)
    else:
        z = np.concatenate(zs)
    return {"z": z, "mu": mu, "logvar": logvar}


def _sample_numpy(mu, logvar, seed, eps_clip):
    # The noise is numpy's (seeded, so repeated calls agree); the formula is
    # the sampling layer's.
    eps = np.random.default_rng(seed).standard_normal(mu.shape)
    z = vae_losses.reparameterize(mu, logvar, eps, eps_clip=eps_clip)
    return np.asarray(keras.ops.convert_to_numpy(z), dtype="float32")

