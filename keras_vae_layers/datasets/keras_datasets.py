"""MNIST and Fashion-MNIST through Keras' downloaders, with a clear offline error."""

import numpy as np

from keras_vae_layers.datasets._checks import check_dtype

__all__ = ["DatasetUnavailableError", "load_mnist", "load_fashion_mnist"]


class DatasetUnavailableError(RuntimeError, ConnectionError):
    """A dataset could not be downloaded or read (usually: no network).

    Subclasses both `RuntimeError` and `ConnectionError`, so either
    `except` clause catches it.
    """



def _load_keras_dataset(module_name, label, owner, dtype):
    import keras

    dtype = check_dtype(dtype, owner)
    loader = getattr(keras.datasets, module_name).load_data
    try:
        (x_train, y_train), (x_test, y_test) = loader()
    except Exception as err:  # URLError, OSError, HTTP errors, bad zip, ...
        raise DatasetUnavailableError(
            f"{owner}: could not load {label} with "
            f"keras.datasets.{module_name}.load_data() "
            f"({type(err).__name__}: {err}). It downloads the data on first "
            "use and caches it under ~/.keras/datasets, so it needs network "
            "access once. Without network, use the built-in procedural set "
            "instead: keras_vae_layers.datasets.load_shapes(n, size=28)."
        ) from err

    def prepare(x):
        x = np.asarray(x, dtype=np.uint8)[..., None]
        if dtype == "float32":
            x = x.astype(np.float32) / np.float32(255.0)
        return x

    return ((prepare(x_train), np.asarray(y_train)),
            (prepare(x_test), np.asarray(y_test)))


def load_mnist(dtype="uint8"):
    """Loads MNIST through `keras.datasets.mnist` with a channel axis.

    Downloads about 11 MB on first use (cached in `~/.keras/datasets`).

    Args:
        dtype: `"uint8"` (0..255) or `"float32"` (scaled to [0, 1]).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, images of shape
        `(n, 28, 28, 1)`.

    Raises:
        DatasetUnavailableError: (a `RuntimeError` and `ConnectionError`) if
            the download fails; the message names the offline alternative
            `load_shapes(n, size=28)`.

    Example:

    >>> (x_train, y_train), (x_test, y_test) = load_mnist()
    >>> x_train.shape
    (60000, 28, 28, 1)
    """
    return _load_keras_dataset("mnist", "MNIST", "load_mnist", dtype)


def load_fashion_mnist(dtype="uint8"):
    """Loads Fashion-MNIST through `keras.datasets.fashion_mnist`.

    Same conventions and errors as `load_mnist`.

    Args:
        dtype: `"uint8"` (0..255) or `"float32"` (scaled to [0, 1]).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, images of shape
        `(n, 28, 28, 1)`.

    Example:

    >>> (x_train, _), _ = load_fashion_mnist(dtype="float32")
    >>> float(x_train.max())
    1.0
    """
    return _load_keras_dataset("fashion_mnist", "Fashion-MNIST",
                               "load_fashion_mnist", dtype)
