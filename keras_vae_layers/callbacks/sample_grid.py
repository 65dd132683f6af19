"""Image grids of decoded samples and reconstructions, in and after training.

`write_sample_grid` and `write_reconstruction_grid` work on any decoder (and
encoder) without training; `SampleGridLogger` calls the same code at the end
of every `every_n_epochs` epochs, so examples, users and the callback share
one implementation (tiling and PNG writing live in `keras_vae_layers.images`).
"""

import math
import numbers
import os

import keras
import numpy as np

from keras_vae_layers import _discovery
from keras_vae_layers import diagnostics
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.images import grid_shape
from keras_vae_layers.images import make_grid
from keras_vae_layers.images import save_image
from keras_vae_layers.images import sharpen_images
from keras_vae_layers.images import to_uint8
from keras_vae_layers.layers import SamplingLayer
from keras_vae_layers.models.vae import SAMPLE_DISTRIBUTIONS
from keras_vae_layers.models.vae import latent_points

__all__ = [
    "SampleGridLogger",
    "write_sample_grid",
    "write_reconstruction_grid",
]


# ----------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------


def _check_seed(seed, owner):
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
    ):
        raise ValueError(
            f"{owner}: `seed` must be an int or None, received {seed!r}."
        )
    return seed


def _check_sharpen(sharpen, owner):
    if sharpen is None:
        return None
    return check_finite_number(sharpen, "sharpen", owner, minimum=0.0)


def _check_image_shape(image_shape, owner):
    if image_shape is None:
        return None
    if (
        isinstance(image_shape, (str, bytes))
        or not isinstance(image_shape, (list, tuple))
        or len(image_shape) not in (2, 3)
    ):
        raise ValueError(
            f"{owner}: `image_shape` must be (height, width) or (height, "
            f"width, channels), received {image_shape!r}."
        )
    dims = tuple(
        check_positive_int(d, f"image_shape[{i}]", owner)
        for i, d in enumerate(image_shape)
    )
    if len(dims) == 3 and dims[-1] not in (1, 3):
        raise ValueError(
            f"{owner}: `image_shape` must have 1 or 3 channels, received "
            f"{image_shape!r}."
        )
    return dims


def _unwrap_decoder(decoder, owner):
    """A decoder, or the decoder inside a VAE passed in its place."""
    inner = getattr(decoder, "decoder", None)
    if isinstance(inner, keras.layers.Layer):
        return inner
    if not isinstance(decoder, keras.layers.Layer):
        raise ValueError(
            f"{owner}: `decoder` must be a Keras model or layer (or a "
            f"VAEModel), received {decoder!r} of type "
            f"{type(decoder).__name__}."
        )
    if _discovery.contains(decoder, SamplingLayer):
        # A decoder never samples: this is a whole VAE (or an encoder).
        return diagnostics.find_decoder(decoder, owner)
    return decoder


def _sigmoid(x):
    x = np.clip(np.asarray(x, dtype="float64"), -60.0, 60.0)
    return (1.0 / (1.0 + np.exp(-x))).astype("float32")


def _to_images(values, image_shape, owner, what):
    """Decoder outputs (or data) as `(n, h, w[, c])` images."""
    values = np.asarray(values)
    n = values.shape[0]
    if image_shape is not None:
        size = int(np.prod(values.shape[1:]))
        if size != math.prod(image_shape):
            raise ValueError(
                f"{owner}: {what} of shape {values.shape} cannot be reshaped "
                f"to images of `image_shape` {tuple(image_shape)}."
            )
        return values.reshape((n,) + tuple(image_shape))
    if values.ndim == 2:
        side = math.isqrt(values.shape[1])
        if side * side != values.shape[1]:
            raise ValueError(
                f"{owner}: {what} has shape {values.shape} (flat vectors of "
                f"{values.shape[1]} values, not a square image); pass "
                "`image_shape=(height, width[, channels])`."
            )
        return values.reshape(n, side, side)
    if values.ndim not in (3, 4) or (
        values.ndim == 4 and values.shape[-1] not in (1, 3)
    ):
        raise ValueError(
            f"{owner}: {what} of shape {values.shape} is not an image batch "
            "(n, height, width[, 1 or 3 channels]); pass `image_shape=` for "
            "flat outputs."
        )
    return values


def _decode(decoder, z, from_logits, image_shape, batch_size, owner):
    x_hat = diagnostics.predict_in_batches(decoder, z, batch_size, owner)
    if isinstance(x_hat, (list, tuple, dict)):
        raise ValueError(
            f"{owner}: the decoder must return a single image tensor, "
            f"received a {type(x_hat).__name__} of outputs."
        )
    if from_logits:
        x_hat = _sigmoid(x_hat)
    return _to_images(x_hat, image_shape, owner, "the decoder output")


def _check_latent(z, z_dim, owner):
    z = np.asarray(z, dtype="float32")
    if z.ndim != 2 or z.shape[0] == 0:
        raise ValueError(
            f"{owner}: `z` must be a non-empty (n, latent_dim) array, "
            f"received shape {z.shape}."
        )
    if z_dim is not None and z.shape[1] != z_dim:
        raise ValueError(
            f"{owner}: the latent points have size {z.shape[1]} but the "
            f"decoder expects inputs of size {z_dim}."
        )
    return z


def _sample_grid(decoder, z, rows, cols, padding, sharpen, from_logits,
                 image_shape, batch_size, owner):
    images = _decode(decoder, z, from_logits, image_shape, batch_size, owner)
    if sharpen is not None:
        images = sharpen_images(images, sharpen)
    return make_grid(images, rows, cols, padding)


def _latent_size(model, decoder):
    """The decoder's input size; for subclassed decoders (no known input
    shape) the size a built `VAEModel` recorded, if the model is one."""
    z_dim = diagnostics.decoder_latent_size(decoder)
    if z_dim is None and model is not None and model is not decoder:
        z_dim = diagnostics.decoder_latent_size(model)
    return z_dim


def _reconstruction_grid(encoder, decoder, images, cols, padding, sharpen,
                         from_logits, image_shape, batch_size, owner):
    # z = mu: read mu from the encoder outputs, so no sampling switch of the
    # user's model is touched.
    mu = diagnostics.encode_dataset(encoder, images, batch_size)["mu"]
    z_dim = diagnostics.decoder_latent_size(decoder)
    if z_dim is not None and mu.shape[-1] != z_dim:
        raise ValueError(
            f"{owner}: the encoder produces latents of size {mu.shape[-1]} "
            f"but the decoder expects inputs of size {z_dim}."
        )
    recon = _decode(decoder, mu, from_logits, image_shape, batch_size, owner)
    if sharpen is not None:
        recon = sharpen_images(recon, sharpen)
    originals = _to_images(images, image_shape, owner,
                           "`reconstruction_images`")
    originals = to_uint8(_nhwc(originals))
    recon = to_uint8(_nhwc(recon))
    if originals.shape[1:] != recon.shape[1:]:
        raise ValueError(
            f"{owner}: reconstructions of shape {recon.shape[1:]} do not "
            f"match the images of shape {originals.shape[1:]}."
        )
    n = len(originals)
    k = min(cols, n)
    blank = np.full((1,) + originals.shape[1:], 255, dtype=np.uint8)
    cells = []
    for start in range(0, n, k):
        for part in (originals, recon):
            chunk = part[start:start + k]
            cells.append(chunk)
            if len(chunk) < k:
                cells.append(np.repeat(blank, k - len(chunk), axis=0))
    cells = np.concatenate(cells)
    return make_grid(cells, len(cells) // k, k, padding)


def _nhwc(images):
    return images[..., None] if images.ndim == 3 else images


# ----------------------------------------------------------------------------
# Public functions
# ----------------------------------------------------------------------------


def write_sample_grid(decoder, path, n=None, rows=4, cols=8,
                      distribution="normal", limit=3.0, seed=0, sharpen=None,
                      z=None, from_logits=None, padding=1, image_shape=None,
                      batch_size=256):
    """Decodes latent points and writes them as one PNG grid.

    The latent points are `z` if given, else `n` points drawn with
    `numpy.random.default_rng(seed)` from N(0, I) or uniformly from
    `[-limit, limit]` per dimension (`VAEModel.sample` uses the same
    `latent_points`). Decoded images are clipped to [0, 1], converted to
    uint8, optionally sharpened, tiled `rows x cols` with `padding` pixels
    between and around the cells (grayscale `L` PNG for one channel, `RGB`
    for three) and written atomically.

    Args:
        decoder: A decoder model/layer mapping `(n, z_dim)` to images, or a
            `VAEModel` (its `decoder` and `from_logits` are used).
        path: Destination `.png`; missing directories are created.
        n: Number of samples; defaults to `len(z)` or `rows * cols`. More
            than `rows * cols` raises; fewer leaves blank cells.
        rows, cols: Grid shape (either may be `None` to derive it from `n`).
        distribution: `"normal"` or `"uniform"`.
        limit: Half-width of the uniform box (> 0).
        seed: Seed of the latent points (int or `None`).
        sharpen: Optional `PIL.ImageEnhance.Sharpness` factor (>= 0; 1 is
            the identity, 3-7 is common for blurry VAE samples).
        z: Optional `(n, z_dim)` latent points to decode instead.
        from_logits: Whether the decoder outputs logits (a sigmoid is then
            applied). `None`: the `VAEModel`'s setting, else `False`.
        padding: Pixels between and around cells (>= 0).
        image_shape: Shape of one image, for decoders with flat outputs
            (flat outputs of a square size are reshaped automatically).
        batch_size: Decoder batch size.

    Returns:
        The path written.

    Raises:
        ValueError: When the grid cannot hold `n` samples, the latent size
            does not match the decoder input, or an argument is invalid.

    Example:

    ```python
    write_sample_grid(vae.decoder, "samples.png", rows=4, cols=8, seed=0,
                      sharpen=5)
    ```
    """
    owner = "write_sample_grid"
    if from_logits is None:
        from_logits = bool(getattr(decoder, "from_logits", False))
    model = decoder
    decoder = _unwrap_decoder(decoder, owner)
    check_choice(distribution, "distribution", SAMPLE_DISTRIBUTIONS, owner)
    limit = check_finite_number(limit, "limit", owner, minimum=0.0,
                                strict_minimum=True)
    seed = _check_seed(seed, owner)
    sharpen = _check_sharpen(sharpen, owner)
    padding = check_positive_int(padding, "padding", owner, minimum=0)
    image_shape = _check_image_shape(image_shape, owner)
    z_dim = _latent_size(model, decoder)
    if n is not None:
        n = check_positive_int(n, "n", owner)
    if z is not None:
        z = _check_latent(z, z_dim, owner)
        if n is not None and n != len(z):
            raise ValueError(
                f"{owner}: `n`={n} does not match the {len(z)} latent points "
                "given in `z`."
            )
        n = len(z)
    elif n is None:
        if rows is None or cols is None:
            raise ValueError(
                f"{owner}: give `n` (or `z`) when `rows` or `cols` is None, "
                f"received rows={rows!r}, cols={cols!r}."
            )
        n = check_positive_int(rows, "rows", owner) * check_positive_int(
            cols, "cols", owner)
    rows, cols = grid_shape(n, rows, cols, owner)
    if z is None:
        if z_dim is None:
            raise ValueError(
                f"{owner}: cannot tell the decoder's latent size (it has no "
                "known input shape); pass the latent points with `z=`."
            )
        z = latent_points(n, z_dim, seed, distribution, limit)
    grid = _sample_grid(decoder, z, rows, cols, padding, sharpen,
                        bool(from_logits), image_shape, batch_size, owner)
    return save_image(grid, path)


def write_reconstruction_grid(encoder_or_vae, images, path, decoder=None,
                              cols=8, padding=1, sharpen=None,
                              from_logits=None, image_shape=None,
                              batch_size=256):
    """Writes originals and their deterministic reconstructions as a PNG.

    Each image is encoded, its `mu` decoded (`z = mu`, read from the encoder
    outputs: no sampling switch is flipped). The grid alternates a row of up
    to `cols` originals with the row of their reconstructions beneath
    (`2 * ceil(n / cols)` rows, `min(n, cols)` columns). `sharpen` applies
    to the reconstructions only.

    Args:
        encoder_or_vae: An encoder, or a VAE holding one (see
            `diagnostics.find_encoder`).
        images: `(n, ...)` inputs of the encoder, values in [0, 1].
        path: Destination `.png`.
        decoder: The decoder; found in `encoder_or_vae` when omitted (see
            `diagnostics.find_decoder`).
        cols, padding, sharpen, from_logits, image_shape, batch_size: As in
            `write_sample_grid`.

    Returns:
        The path written.

    Example:

    ```python
    write_reconstruction_grid(vae, x_val[:8], "reconstructions.png")
    ```
    """
    owner = "write_reconstruction_grid"
    if from_logits is None:
        from_logits = bool(getattr(encoder_or_vae, "from_logits", False))
    encoder = diagnostics.find_encoder(encoder_or_vae, owner)
    if decoder is None:
        decoder = diagnostics.find_decoder(encoder_or_vae, owner)
    decoder = _unwrap_decoder(decoder, owner)
    cols = check_positive_int(cols, "cols", owner)
    padding = check_positive_int(padding, "padding", owner, minimum=0)
    sharpen = _check_sharpen(sharpen, owner)
    image_shape = _check_image_shape(image_shape, owner)
    images = np.asarray(images)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            f"{owner}: `images` must be a non-empty batch, received shape "
            f"{images.shape}."
        )
    grid = _reconstruction_grid(encoder, decoder, images, cols, padding,
                                sharpen, bool(from_logits), image_shape,
                                batch_size, owner)
    return save_image(grid, path)


# ----------------------------------------------------------------------------
# The callback
# ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class SampleGridLogger(CopySafeCallback):
    """Writes a PNG grid of decoded samples every `every_n_epochs` epochs.

    The latent points are drawn once, in `on_train_begin`, with `seed`, so
    the grids of different epochs show the same points and are directly
    comparable: N(0, I) (`distribution="normal"`) or uniform in
    `[-limit, limit]` per dimension (`"uniform"`, to see how the decoder
    behaves away from the prior's bulk). Grids are written with
    `write_sample_grid` as `directory/filename_pattern.format(epoch=e)`,
    where `e` is the **1-based** number of the epoch just finished (the
    file after the first epoch is `samples_epoch0001.png`).

    With `reconstruction_images`, each logging epoch also writes
    `reconstructions_epoch{epoch:04d}.png`: a row of originals with their
    deterministic reconstructions (`z = mu`) beneath (see
    `write_reconstruction_grid`). No switch of the model is changed.

    With `log_dir`, the grids also go to TensorBoard as `tf.summary.image`
    (`"samples"`, `"reconstructions"`) at step `epoch` (0-based, like
    `keras.callbacks.TensorBoard`'s epoch scalars). The writer is created
    in `on_train_begin` and closed in `on_train_end`.

    The decoder is `decoder=` if given, else `model.decoder` (`VAEModel`),
    else the nested decoder sub-model of a Functional VAE; the encoder
    likewise (`encoder=`, `model.encoder`, the nested sub-model holding a
    `SamplingLayer`, or a view of a flat Functional VAE's graph). Decoder
    logits are passed through a sigmoid when `from_logits` (default: the
    `VAEModel`'s `from_logits`).

    The callback holds no model until training starts and copies without
    one (`copy.deepcopy`, as keras-tuner does for every trial): run state
    (model, writer, latent points) is dropped in the copy, and a
    `decoder=`/`encoder=` given explicitly is shared, not copied.

    Args:
        directory: Folder for the PNG files (created if missing).
        every_n_epochs: Write after every n-th epoch (>= 1).
        rows, cols: Grid shape; `rows * cols` samples are decoded.
        distribution: `"normal"` or `"uniform"`.
        limit: Half-width of the uniform box (> 0).
        seed: Seed of the latent points (int or `None`).
        sharpen: Optional `PIL.ImageEnhance.Sharpness` factor (>= 0; 3-7
            is common) applied to each decoded image.
        reconstruction_images: Optional `(n, ...)` fixed validation inputs
            for the reconstruction grid.
        log_dir: Optional TensorBoard log directory.
        decoder: Optional decoder (needed for models without one).
        encoder: Optional encoder (for reconstructions).
        filename_pattern: Sample grid file name, formatted with `epoch`.
        reconstruction_pattern: Reconstruction grid file name.
        padding: Pixels between and around the cells (>= 0).
        from_logits: Whether the decoder outputs logits; `None` follows the
            model.
        image_shape: Shape of one image, for decoders with flat outputs.

    Example:

    ```python
    vae.fit(x_train, epochs=20, callbacks=[
        SampleGridLogger("grids", every_n_epochs=5, sharpen=5,
                         reconstruction_images=x_val[:8], log_dir="logs"),
    ])
    ```
    """

    _OWNER = "SampleGridLogger"
    _TRANSIENT = ("_decoder", "_encoder", "_writer", "_z", "_from_logits_run")
    _SHARED = ("decoder", "encoder")

    def __init__(self, directory, every_n_epochs=1, rows=4, cols=8,
                 distribution="normal", limit=3.0, seed=0, sharpen=None,
                 reconstruction_images=None, log_dir=None, decoder=None,
                 encoder=None,
                 filename_pattern="samples_epoch{epoch:04d}.png",
                 reconstruction_pattern="reconstructions_epoch{epoch:04d}.png",
                 padding=1, from_logits=None, image_shape=None):
        super().__init__()
        owner = self._OWNER
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(
                directory):
            raise ValueError(
                f"{owner}: `directory` must be a non-empty path, received "
                f"{directory!r}."
            )
        self.directory = os.fspath(directory)
        self.every_n_epochs = check_positive_int(every_n_epochs,
                                                 "every_n_epochs", owner)
        self.rows = check_positive_int(rows, "rows", owner)
        self.cols = check_positive_int(cols, "cols", owner)
        self.distribution = check_choice(distribution, "distribution",
                                         SAMPLE_DISTRIBUTIONS, owner)
        self.limit = check_finite_number(limit, "limit", owner, minimum=0.0,
                                         strict_minimum=True)
        self.seed = _check_seed(seed, owner)
        self.sharpen = _check_sharpen(sharpen, owner)
        if reconstruction_images is not None:
            reconstruction_images = np.array(reconstruction_images)
            if reconstruction_images.ndim < 2 or len(
                    reconstruction_images) == 0:
                raise ValueError(
                    f"{owner}: `reconstruction_images` must be a non-empty "
                    f"batch (n, ...), received shape "
                    f"{reconstruction_images.shape}."
                )
        self.reconstruction_images = reconstruction_images
        if log_dir is not None and (
            not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(
                log_dir)
        ):
            raise ValueError(
                f"{owner}: `log_dir` must be a non-empty path or None, "
                f"received {log_dir!r}."
            )
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        for name, value in (("decoder", decoder), ("encoder", encoder)):
            if value is not None and not isinstance(value, keras.layers.Layer):
                raise ValueError(
                    f"{owner}: `{name}` must be a Keras model or layer, "
                    f"received {value!r} of type {type(value).__name__}."
                )
        self.decoder = decoder
        self.encoder = encoder
        self.filename_pattern = _check_pattern(filename_pattern,
                                               "filename_pattern", owner)
        self.reconstruction_pattern = _check_pattern(
            reconstruction_pattern, "reconstruction_pattern", owner)
        self.padding = check_positive_int(padding, "padding", owner,
                                          minimum=0)
        self.from_logits = None if from_logits is None else bool(from_logits)
        self.image_shape = _check_image_shape(image_shape, owner)
        self.last_paths = {}
        self._reset_run_state()

    def _reset_run_state(self):
        self._decoder = None
        self._encoder = None
        self._writer = None
        self._z = None
        self._from_logits_run = False

    # -------------------------------------------------------------- set-up

    def _setup(self):
        owner = self._OWNER
        model = self.model
        if self.decoder is not None:
            decoder = _unwrap_decoder(self.decoder, owner)
        elif model is None:
            raise ValueError(
                f"{owner}: no model is attached and no `decoder=` was given; "
                "pass `decoder=` to use the callback outside `fit()`."
            )
        else:
            decoder = diagnostics.find_decoder(model, owner)
        z_dim = _latent_size(model, decoder)
        encoder = None
        if self.reconstruction_images is not None:
            if self.encoder is not None:
                encoder = self.encoder
            elif model is None:
                raise ValueError(
                    f"{owner}: reconstructions need an encoder; pass "
                    "`encoder=`."
                )
            else:
                encoder = diagnostics.find_encoder(model, owner)
        if encoder is not None:
            enc_dim = diagnostics.encoder_latent_size(encoder)
            if enc_dim is not None and z_dim is not None and enc_dim != z_dim:
                raise ValueError(
                    f"{owner}: the encoder produces latents of size {enc_dim} "
                    f"but the decoder expects inputs of size {z_dim}."
                )
            if z_dim is None:
                z_dim = enc_dim
        if z_dim is None:
            raise ValueError(
                f"{owner}: cannot tell the decoder's latent size (it has no "
                "known input shape); pass a Functional decoder with "
                "`decoder=`."
            )
        if self.from_logits is not None:
            from_logits = self.from_logits
        else:
            from_logits = bool(getattr(model, "from_logits", False))
        os.makedirs(self.directory, exist_ok=True)
        self._decoder = decoder
        self._encoder = encoder
        self._from_logits_run = from_logits
        # Drawn once per run with the seed: every epoch decodes the same z.
        self._z = latent_points(self.rows * self.cols, z_dim, self.seed,
                                self.distribution, self.limit)
        if self.log_dir is not None and self._writer is None:
            import tensorflow as tf  # TensorBoard output is TF-only.

            self._writer = tf.summary.create_file_writer(self.log_dir)

    # ---------------------------------------------------------------- hooks

    def on_train_begin(self, logs=None):
        self._setup()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if self._z is None:
            self._setup()
        self.write(epoch)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
        self._reset_run_state()

    def write(self, epoch):
        """Writes the grids for the 0-based `epoch`; returns their paths."""
        owner = self._OWNER
        number = epoch + 1
        paths = {}
        grid = _sample_grid(self._decoder, self._z, self.rows, self.cols,
                            self.padding, self.sharpen, self._from_logits_run,
                            self.image_shape, 256, owner)
        paths["samples"] = save_image(grid, os.path.join(
            self.directory, self.filename_pattern.format(epoch=number)))
        grids = {"samples": grid}
        if self._encoder is not None:
            rgrid = _reconstruction_grid(
                self._encoder, self._decoder, self.reconstruction_images,
                self.cols, self.padding, self.sharpen, self._from_logits_run,
                self.image_shape, 256, owner,
            )
            paths["reconstructions"] = save_image(rgrid, os.path.join(
                self.directory,
                self.reconstruction_pattern.format(epoch=number)))
            grids["reconstructions"] = rgrid
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default():
                for name, g in grids.items():
                    tf.summary.image(name, g[None], step=epoch)
            self._writer.flush()
        self.last_paths = paths
        return paths

    # -------------------------------------------------------- serialization

    def get_config(self):
        images = self.reconstruction_images
        return {
            "directory": self.directory,
            "every_n_epochs": self.every_n_epochs,
            "rows": self.rows,
            "cols": self.cols,
            "distribution": self.distribution,
            "limit": self.limit,
            "seed": self.seed,
            "sharpen": self.sharpen,
            "reconstruction_images": (
                None if images is None
                else keras.saving.serialize_keras_object(images)
            ),
            "log_dir": self.log_dir,
            "decoder": (
                None if self.decoder is None
                else keras.saving.serialize_keras_object(self.decoder)
            ),
            "encoder": (
                None if self.encoder is None
                else keras.saving.serialize_keras_object(self.encoder)
            ),
            "filename_pattern": self.filename_pattern,
            "reconstruction_pattern": self.reconstruction_pattern,
            "padding": self.padding,
            "from_logits": self.from_logits,
            "image_shape": (
                None if self.image_shape is None else list(self.image_shape)
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("reconstruction_images", "decoder", "encoder"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(
                    config[key])
        return cls(**config)


def _check_pattern(pattern, name, owner):
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(
            f"{owner}: `{name}` must be a non-empty string, received "
            f"{pattern!r}."
        )
    try:
        pattern.format(epoch=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"{owner}: `{name}` {pattern!r} must format with only `epoch` "
            f"(e.g. 'samples_epoch{{epoch:04d}}.png'); formatting failed: "
            f"{exc!r}."
        ) from None
    return pattern
