"""`SampleGridLogger`: grids of decoded samples and reconstructions during
training.

The grids are made by the same code as `keras_vae_layers.images`'
`write_sample_grid` / `write_reconstruction_grid` (`images.decoded`); this
module only adds the per-epoch schedule, the fixed latent points and the
TensorBoard output.
"""

import os

import keras
import numpy as np

from keras_vae_layers import _backend
from keras_vae_layers import diagnostics
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.distribute import is_chief
from keras_vae_layers.images.decoded import check_image_shape
from keras_vae_layers.images.decoded import check_seed
from keras_vae_layers.images.decoded import check_sharpen
from keras_vae_layers.images.decoded import latent_size
from keras_vae_layers.images.decoded import reconstruction_grid
from keras_vae_layers.images.decoded import resolve_decoder
from keras_vae_layers.images.decoded import sample_grid
# The write_* functions moved to `keras_vae_layers.images`; still importable
# from here.
from keras_vae_layers.images.decoded import (  # noqa: F401
    write_reconstruction_grid,
    write_sample_grid,
)
from keras_vae_layers.images.grid import save_image
from keras_vae_layers.latents import SAMPLE_DISTRIBUTIONS
from keras_vae_layers.latents import latent_points

__all__ = ["SampleGridLogger"]


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
    in `on_train_begin` and closed in `on_train_end`. This needs TensorFlow
    installed (on any Keras backend); without it, `log_dir` raises an
    `ImportError` at construction saying what to install.

    Under a multi-worker `tf.distribute` strategy every worker decodes the
    grids (the forward passes are collective operations there) but only
    the chief writes files and TensorBoard summaries (see
    `keras_vae_layers.distribute.is_chief`); `write` returns `{}` on the
    other workers.

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
        self.seed = check_seed(seed, owner)
        self.sharpen = check_sharpen(sharpen, owner)
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
        if self.log_dir is not None:
            # TensorBoard images are written with tf.summary: fine on any
            # Keras backend if TensorFlow is installed; say so now if not.
            _backend.require_tensorflow(
                f"{owner}(log_dir=...) (TensorBoard images via tf.summary)",
                "omit `log_dir` (the PNG grids need no TensorFlow)")
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
        self.image_shape = check_image_shape(image_shape, owner)
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
            decoder = resolve_decoder(self.decoder, owner)
        elif model is None:
            raise ValueError(
                f"{owner}: no model is attached and no `decoder=` was given; "
                "pass `decoder=` to use the callback outside `fit()`."
            )
        else:
            decoder = diagnostics.find_decoder(model, owner)
        z_dim = latent_size(model, decoder)
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
        chief = is_chief(model)  # multi-worker training: only it writes
        if chief:
            os.makedirs(self.directory, exist_ok=True)
        self._decoder = decoder
        self._encoder = encoder
        self._from_logits_run = from_logits
        # Drawn once per run with the seed: every epoch decodes the same z.
        self._z = latent_points(self.rows * self.cols, z_dim, self.seed,
                                self.distribution, self.limit)
        if self.log_dir is not None and self._writer is None and chief:
            import tensorflow as tf  # tf.summary, on any Keras backend.

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
        grids = {"samples": sample_grid(
            self._decoder, self._z, self.rows, self.cols, self.padding,
            self.sharpen, self._from_logits_run, self.image_shape, 256, owner,
        )}
        if self._encoder is not None:
            grids["reconstructions"] = reconstruction_grid(
                self._encoder, self._decoder, self.reconstruction_images,
                self.cols, self.padding, self.sharpen, self._from_logits_run,
                self.image_shape, 256, owner,
            )
        # Every worker decodes (under a multi-worker strategy the forward
        # passes are collective operations all workers must join); only the
        # chief writes.
        if not is_chief(self.model):
            self.last_paths = {}
            return self.last_paths
        patterns = {"samples": self.filename_pattern,
                    "reconstructions": self.reconstruction_pattern}
        paths = {
            name: save_image(grid, os.path.join(
                self.directory, patterns[name].format(epoch=number)))
            for name, grid in grids.items()
        }
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
