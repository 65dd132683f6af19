"""Image arrays to PNG grids: uint8 conversion, sharpening, tiling, atomic
writes.

Pure numpy/PIL, with no model involved; `keras_vae_layers.images.decoded`
builds decoder grids on top of it.
"""

import math
import os

import numpy as np
from PIL import Image
from PIL import ImageEnhance

from keras_vae_layers.io import atomic_path
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int

__all__ = [
    "grid_shape",
    "make_grid",
    "save_grid",
    "save_image",
    "sharpen_images",
    "to_uint8",
]


def to_uint8(images):
    """Clips float images to [0, 1] and converts them to uint8.

    uint8 input is returned unchanged. Accepts `(n, h, w)` or `(n, h, w, c)`
    with `c` in {1, 3}.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    images = np.nan_to_num(images.astype("float32"), nan=0.0)
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def _as_nhwc(images, owner):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{owner}: `images` must have shape (n, height, width) or "
            f"(n, height, width, channels) with 1 or 3 channels, received "
            f"shape {images.shape}."
        )
    return images


def sharpen_images(images, factor):
    """Applies `PIL.ImageEnhance.Sharpness(factor)` to each image.

    Decoded VAE images are blurry; an unsharp factor of 3-7 is a common,
    cheap post-step. `factor=1` returns the images unchanged.

    Args:
        images: `(n, h, w[, c])` float in [0, 1] or uint8.
        factor: Sharpness factor (>= 0; 1 = identity, > 1 sharper).

    Returns:
        uint8 array of the same shape (with a channel axis).
    """
    factor = check_finite_number(factor, "sharpen", "sharpen_images", 0.0)
    images = to_uint8(_as_nhwc(images, "sharpen_images"))
    out = np.empty_like(images)
    for i, img in enumerate(images):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        pil = ImageEnhance.Sharpness(pil).enhance(factor)
        arr = np.asarray(pil)
        out[i] = arr[..., None] if arr.ndim == 2 else arr
    return out


def make_grid(images, rows=None, cols=None, padding=1, pad_value=255):
    """Tiles `n` images into one uint8 `(H, W, C)` grid.

    Args:
        images: `(n, h, w[, c])` float in [0, 1] (clipped) or uint8.
        rows, cols: Grid shape; one may be omitted and is derived from `n`;
            both omitted gives a near-square grid. `rows * cols` must be
            >= `n` (empty cells are left at `pad_value`).
        padding: Pixels between cells and around the border.
        pad_value: uint8 value of the padding.

    Returns:
        uint8 array `(rows*h + (rows+1)*padding, cols*w + (cols+1)*padding, c)`.
    """
    images = to_uint8(_as_nhwc(images, "make_grid"))
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid: `images` is empty (n=0).")
    rows, cols = grid_shape(n, rows, cols, "make_grid")
    padding = check_positive_int(padding, "padding", "make_grid", minimum=0)
    grid = np.full(
        (rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, c),
        pad_value, dtype=np.uint8,
    )
    for i in range(n):
        r, k = divmod(i, cols)
        y = padding + r * (h + padding)
        x = padding + k * (w + padding)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def grid_shape(n, rows, cols, owner):
    """Resolves `(rows, cols)` for `n` cells, raising when they cannot fit."""
    if rows is None and cols is None:
        cols = int(math.ceil(math.sqrt(n)))
        rows = int(math.ceil(n / cols))
    elif rows is None:
        cols = check_positive_int(cols, "cols", owner)
        rows = int(math.ceil(n / cols))
    elif cols is None:
        rows = check_positive_int(rows, "rows", owner)
        cols = int(math.ceil(n / rows))
    else:
        rows = check_positive_int(rows, "rows", owner)
        cols = check_positive_int(cols, "cols", owner)
        if rows * cols < n:
            raise ValueError(
                f"{owner}: a grid of rows={rows} x cols={cols} holds "
                f"{rows * cols} images but {n} were given; use a larger grid "
                "or fewer samples."
            )
    return rows, cols


def save_grid(images, path, rows=None, cols=None, padding=1, sharpen=None):
    """Writes images as one PNG grid, atomically.

    Args:
        images: `(n, h, w[, c])` float in [0, 1] or uint8.
        path: Destination `.png`; its directory must exist or is created.
        rows, cols, padding: See `make_grid`.
        sharpen: Optional `PIL.ImageEnhance.Sharpness` factor applied to each
            image before tiling.

    Returns:
        The path written, as a string.

    Example:

    ```python
    save_grid(decoder.predict(z), "samples.png", rows=4, cols=8, sharpen=5)
    ```
    """
    if sharpen is not None:
        images = sharpen_images(images, sharpen)
    return save_image(make_grid(images, rows, cols, padding), path)


def save_image(image, path):
    """Writes one `(H, W)` or `(H, W, 1|3)` image as a PNG, atomically.

    Float input is clipped to [0, 1] and converted to uint8; one channel
    gives a grayscale (`L`) PNG, three an `RGB` one. Use it for a grid
    already built with `make_grid` (e.g. one also sent to TensorBoard).

    Returns:
        The path written, as a string.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            "save_image: `image` must have shape (height, width) or "
            "(height, width, channels) with 1 or 3 channels, received shape "
            f"{image.shape}."
        )
    image = to_uint8(image)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    with atomic_path(path, suffix=".png") as tmp:
        img.save(tmp, format="PNG")
    return path
