"""Grids of decoded images: samples from latent points, and reconstructions.

`write_sample_grid` and `write_reconstruction_grid` work on any decoder (and
encoder), without training. `SampleGridLogger` calls the same building
blocks (`sample_grid`, `reconstruction_grid` and the argument checks below)
at the end of its logging epochs, so the callback, the examples and users
share one implementation. Tiling and PNG writing are `images.grid`'s; the
encoder/decoder lookup and batched prediction are `diagnostics`'.
"""

import math
import numbers

import keras
import numpy as np

from keras_vae_layers import diagnostics
from keras_vae_layers.diagnostics import discovery
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.images.grid import grid_shape
from keras_vae_layers.images.grid import make_grid
from keras_vae_layers.images.grid import save_image
from keras_vae_layers.images.grid import sharpen_images
from keras_vae_layers.images.grid import to_uint8
from keras_vae_layers.latents import SAMPLE_DISTRIBUTIONS
from keras_vae_layers.latents import latent_points
from keras_vae_layers.layers import SamplingLayer

__all__ = [
    "write_reconstruction_grid",
    "write_sample_grid",
]


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
    decoder = resolve_decoder(decoder, owner)
    check_choice(distribution, "distribution", SAMPLE_DISTRIBUTIONS, owner)
    limit = check_finite_number(limit, "limit", owner, minimum=0.0,
                                strict_minimum=True)
    seed = check_seed(seed, owner)
    sharpen = check_sharpen(sharpen, owner)
    padding = check_positive_int(padding, "padding", owner, minimum=0)
    image_shape = check_image_shape(image_shape, owner)
    z_dim = latent_size(model, decoder)
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
    grid = sample_grid(decoder, z, rows, cols, padding, sharpen,
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
    decoder = resolve_decoder(decoder, owner)
    cols = check_positive_int(cols, "cols", owner)
    padding = check_positive_int(padding, "padding", owner, minimum=0)
    sharpen = check_sharpen(sharpen, owner)
    image_shape = check_image_shape(image_shape, owner)
    images = np.asarray(images)
    if images.ndim < 2 or len(images) == 0:
        raise ValueError(
            f"{owner}: `images` must be a non-empty batch, received shape "
            f"{images.shape}."
        )
    grid = reconstruction_grid(encoder, decoder, images, cols, padding,
                               sharpen, bool(from_logits), image_shape,
                               batch_size, owner)
    return save_image(grid, path)


# ----------------------------------------------------------------------------
# Argument checks and building blocks (shared with SampleGridLogger)
# ----------------------------------------------------------------------------


def check_seed(seed, owner):
    """`seed` after checking it is an int or `None`."""
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
    ):
        raise ValueError(
            f"{owner}: `seed` must be an int or None, received {seed!r}."
        )
    return seed


def check_sharpen(sharpen, owner):
    """`sharpen` as a float >= 0, or `None`."""
    if sharpen is None:
        return None
    return check_finite_number(sharpen, "sharpen", owner, minimum=0.0)


def check_image_shape(image_shape, owner):
    """`image_shape` as a tuple of 2 or 3 positive ints (1 or 3 channels)."""
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


def resolve_decoder(decoder, owner):
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
    if discovery.contains(decoder, SamplingLayer):
        # A decoder never samples: this is a whole VAE (or an encoder).
        return diagnostics.find_decoder(decoder, owner)
    return decoder


def latent_size(model, decoder):
    """The decoder's input size; for subclassed decoders (no known input
    shape) the size a built `VAEModel` recorded, if the model is one."""
    z_dim = diagnostics.decoder_latent_size(decoder)
    if z_dim is None and model is not None and model is not decoder:
        z_dim = diagnostics.decoder_latent_size(model)
    return z_dim


def sample_grid(decoder, z, rows, cols, padding, sharpen, from_logits,
                image_shape, batch_size, owner):
    """Decodes checked latent points `z` into a uint8 `rows x cols` grid."""
    images = _decode(decoder, z, from_logits, image_shape, batch_size, owner)
    if sharpen is not None:
        images = sharpen_images(images, sharpen)
    return make_grid(images, rows, cols, padding)


def reconstruction_grid(encoder, decoder, images, cols, padding, sharpen,
                        from_logits, image_shape, batch_size, owner):
    """Rows of `images` over their reconstructions, as one uint8 grid."""
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


# ----------------------------------------------------------------------------
# Private helpers
# ----------------------------------------------------------------------------


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


def _nhwc(images):
    return images[..., None] if images.ndim == 3 else images
