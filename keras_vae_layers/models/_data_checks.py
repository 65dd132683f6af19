"""`VAEModel`'s checks of the data it is given (private).

Mistakes such as unscaled `uint8` images with a Bernoulli loss, labels
passed as targets or validation data of another shape fail early with a
message that says what was received. None of the checks adds work to a
training step:

* dtype and static-shape checks (`check_target`) are Python code in the
  traced step, so they run once, while the step is traced;
* value-range checks (`check_first_batch`) run once per `fit()` /
  `evaluate()` call, on a first batch read without consuming the data.
"""

import inspect
import warnings

import keras
import numpy as np
from keras import ops

from keras_vae_layers import _backend
from keras_vae_layers._validation import shapes_compatible

_KERAS_DEFAULT_BATCH_SIZE = 32

SCALE_HINT = (
    "Scale images by 1/255 (`x.astype('float32') / 255`) or feed uint8 "
    "images through keras_vae_layers.datasets.make_image_dataset(), which "
    "scales each batch to [0, 1]."
)


def check_target(reconstruction_loss, target_shape, target_dtype,
                 reconstruction_shape, where=None, warn=True):
    """Static checks of the reconstruction target: shape and dtype.

    `warn=False` skips the MSE warning (the trace-time check gives it once).

    Raises:
        ValueError: for a target whose non-batch shape differs from the
            reconstruction's, or an integer target with a BCE loss.
    """
    of = f" of the {where}" if where else ""
    target_shape = tuple(target_shape)
    reconstruction_shape = tuple(reconstruction_shape)
    if not shapes_compatible(target_shape[1:], reconstruction_shape[1:]):
        raise ValueError(
            f"VAEModel: the reconstruction target{of} has shape "
            f"{(None,) + target_shape[1:]}, but the reconstruction has "
            f"shape {(None,) + reconstruction_shape[1:]}. The target "
            "(`y`, or `x` when no `y` is given) must have the shape of "
            "the reconstruction; labels are not targets: fit(x) trains "
            "on `x` alone, fit(noisy_x, clean_x) trains a denoising VAE."
        )
    dtype = keras.backend.standardize_dtype(target_dtype)
    if not dtype.startswith(("int", "uint")):
        return
    if reconstruction_loss == "bce":
        raise ValueError(
            f"VAEModel: the reconstruction target{of} has integer dtype "
            f"{dtype}, but reconstruction_loss='bce' needs float values "
            f"in [0, 1] (unscaled images?). {SCALE_HINT} Cast binary "
            "{0, 1} data to float32."
        )
    if warn:
        warnings.warn(
            f"VAEModel: the reconstruction target{of} has integer "
            f"dtype {dtype} with reconstruction_loss='mse'. If these "
            "are images in 0..255, the decoder must reproduce that "
            f"range: {SCALE_HINT}",
            stacklevel=3,
        )


def check_data_shape(encoder, input_shape):
    """Data of `input_shape` must fit the encoder's (single) input."""
    inputs = getattr(encoder, "inputs", None)
    if not inputs or len(inputs) != 1:
        return
    expected = tuple(inputs[0].shape)
    got = tuple(input_shape)
    if not shapes_compatible(got, expected):
        raise ValueError(
            f"VAEModel: data of shape {got} does not match the encoder input "
            f"shape {expected} (encoder '{encoder.name}')."
        )


def check_first_batch(model, x, y, batch_size, where, data_shape=None):
    """Checks the first batch of `fit`/`evaluate` data, if readable.

    Args:
        model: The `VAEModel`.
        x, y, batch_size: As given to `fit`/`evaluate`.
        where: Name of the data in error messages.
        data_shape: Input shape the data must have (the training data's,
            when checking `validation_data`); defaults to the shape the
            model was built for.

    Returns:
        The batch's input shape `(None, ...)`, or `None` if the batch
        could not be read.
    """
    batch = first_batch(x, y, batch_size)
    if batch is None:
        return None
    x, y = batch
    shape = (None,) + tuple(x.shape[1:])
    check_data_shape(model.encoder, shape)
    if data_shape is None and model.built:
        data_shape = (model.get_build_config() or {}).get("input_shape")
    if data_shape is not None and not shapes_compatible(
        shape[1:], tuple(data_shape)[1:]
    ):
        raise ValueError(
            f"VAEModel: the {where} has inputs of shape {shape}, but the "
            "model takes inputs of shape "
            f"{(None,) + tuple(data_shape)[1:]}."
        )
    target = x if y is None else y
    # The decoder reproduces the input's shape (checked when the model
    # is built), so the input's shape is the reconstruction's.
    check_target(model.reconstruction_loss, target.shape, target.dtype,
                 shape, where, warn=False)
    if model.reconstruction_loss == "bce" and target.size:
        low, high = float(np.min(target)), float(np.max(target))
        if not (low >= 0.0 and high <= 1.0):
            role = "`x`, the target" if y is None else "the target `y`"
            raise ValueError(
                "VAEModel: reconstruction_loss='bce' needs targets in "
                f"[0, 1], but the first batch of the {where} ({role}) "
                f"has values in [{low:g}, {high:g}]. {SCALE_HINT} Clip "
                "data that overshoots [0, 1] slightly (e.g. after "
                "resizing)."
            )
    return shape


def check_fit_call(model, fit, args, kwargs):
    """Checks the training and validation data of a `fit()` call."""
    arguments = bind_arguments(fit, args, kwargs)
    if arguments is None:
        return
    _backend.check_no_tf_distribute(
        "VAEModel.fit", ("x", arguments.get("x")),
        ("validation_data", arguments.get("validation_data")))
    data_shape = check_first_batch(
        model, arguments.get("x"), arguments.get("y"),
        arguments.get("batch_size"), "training data",
    )
    validation = arguments.get("validation_data")
    if validation is not None:
        val_x, val_y, _ = keras.utils.unpack_x_y_sample_weight(validation)
        check_first_batch(
            model, val_x, val_y,
            arguments.get("validation_batch_size")
            or arguments.get("batch_size"),
            "validation data", data_shape,
        )


def check_evaluate_call(model, evaluate, args, kwargs):
    """Checks the data of an `evaluate()` call."""
    # fit() calls evaluate() on its validation data after every epoch;
    # fit() has checked that data already.
    if kwargs.get("_use_cached_eval_dataset"):
        return
    arguments = bind_arguments(evaluate, args, kwargs)
    if arguments is not None:
        _backend.check_no_tf_distribute("VAEModel.evaluate",
                                        ("x", arguments.get("x")))
        check_first_batch(model, arguments.get("x"), arguments.get("y"),
                          arguments.get("batch_size"), "evaluation data")


def bind_arguments(method, args, kwargs):
    """`method`'s arguments by name, or `None` if they do not bind (Keras
    then raises its own error)."""
    try:
        return inspect.signature(method).bind(*args, **kwargs).arguments
    except TypeError:
        return None


def is_array(value):
    shape = getattr(value, "shape", None)
    return (
        shape is not None and hasattr(value, "dtype")
        and hasattr(value, "__getitem__") and len(shape) >= 1
    )


def _to_numpy(value):
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        return ops.convert_to_numpy(value)


def first_batch(x, y=None, batch_size=None):
    """The first batch `(x, y)` of `fit`/`evaluate` data as numpy arrays.

    Only data that can be read ahead without being consumed is read:
    arrays/tensors (their first `batch_size` rows), a `tf.data.Dataset`
    (`take(1)`, recognised by duck typing) and a `keras.utils.PyDataset`
    (`[0]`). Returns `None` for anything else (Python generators,
    iterators, dicts of inputs) and for an empty dataset.
    """
    if isinstance(x, keras.utils.PyDataset):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(x[0])
    elif callable(getattr(x, "take", None)) and hasattr(x, "element_spec"):
        # Only a tf.data.Dataset gets here, so tensorflow is loaded already.
        import tensorflow as tf

        try:
            # One op, no iterator: ~1 ms where next(iter(...)) takes ~40.
            batch = x.take(1).get_single_element()
        except tf.errors.InvalidArgumentError:
            return None  # empty; fit() reports pipeline errors itself
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
    elif is_array(x):
        n = batch_size or _KERAS_DEFAULT_BATCH_SIZE
        x = x[:n]
        y = y[:n] if is_array(y) else None
    else:
        return None
    if not is_array(x):
        return None
    return _to_numpy(x), (_to_numpy(y) if is_array(y) else None)
