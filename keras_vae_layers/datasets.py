"""Datasets for VAE experiments: built-in sprites, MNIST and image folders.

* `load_shapes` draws a dSprites-style set (one white shape on black per
  image, with known generative factors) procedurally: no download, so it
  works offline and in tests.
* `load_mnist` / `load_fashion_mnist` wrap the Keras loaders (they download on
  first use) and fail with a clear message pointing at `load_shapes` when
  there is no network.
* `load_image_folder` turns a folder of images (e.g. CelebA) into one `uint8`
  array, with centre cropping, resizing and an atomic on-disk cache. Its two
  halves, `list_image_files` and `decode_image`, hold the listing and
  decoding rules and work on their own (e.g. to build shards).
* `make_image_dataset` feeds a `uint8` array to `VAEModel.fit` through
  `tf.data`, scaling to float32 per batch. `ImageDataGenerator` is gone in
  Keras 3, and scaling per batch keeps big image sets at a quarter of the
  memory a float32 copy would take.
"""

import concurrent.futures
import json
import math
import numbers
import os
import sys
import time
import warnings

import numpy as np

from keras_vae_layers._io import atomic_path
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._validation import check_range

__all__ = [
    "SHAPE_NAMES",
    "DatasetUnavailableError",
    "load_shapes",
    "render_shapes",
    "load_mnist",
    "load_fashion_mnist",
    "load_dataset",
    "DATASET_NAMES",
    "load_image_folder",
    "list_image_files",
    "decode_image",
    "make_image_dataset",
]

SHAPE_NAMES = ("square", "ellipse", "heart")
"""Shape classes of `load_shapes`; `factors["shape"]` indexes this tuple."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

_DTYPES = ("uint8", "float32")

# Geometry of the sprite set. Every shape is defined inside the unit disc, so
# it stays inside that disc under any rotation; the disc's radius at scale 1
# is a quarter of the image side. Positions are mapped so that the disc of the
# largest possible shape (scale 1), plus the anti-aliasing fringe, never
# touches the border: `x` then means the same pixel position at every scale.
_RADIUS_FRACTION = 0.25
# Anti-aliasing lights pixels whose centre lies up to 0.5 px outside a shape
# (0.71 px at sharp corners, which the L-infinity distance rounds less); the
# outermost pixel centres sit 0.5 px inside the frame. 1.5 px keeps the
# border rows and columns exactly zero with room for float rounding.
_PAD_PX = 1.5
_SQUARE_HALF_SIDE = 1.0 / math.sqrt(2.0)  # corners on the unit circle
_ELLIPSE_AXES = (1.0, 0.6)
# Heart = a square standing on a corner plus two discs on its upper edges.
# `_HEART_SHIFT` (in units of the half-diagonal) centres it so that the tip
# and the two lobes touch the unit circle together, which makes the heart as
# large as the rotation-safe disc allows.
_K = 1.0 - 1.0 / math.sqrt(2.0)
_HEART_SHIFT = (0.5 - _K * _K) / (1.0 + 2.0 * _K)
_HEART_HALF_DIAGONAL = 1.0 / (1.0 + _HEART_SHIFT)
_SQRT2 = math.sqrt(2.0)

# Pixels rasterised per numpy call. Bounded so the float32 temporaries of a
# chunk (~ a dozen of them) stay in the tens of MB whatever `n` is.
_PIXELS_PER_CHUNK = 1 << 20


class DatasetUnavailableError(RuntimeError, ConnectionError):
    """A dataset could not be downloaded or read (usually: no network).

    Subclasses both `RuntimeError` and `ConnectionError`, so either
    `except` clause catches it.
    """


# ---------------------------------------------------------------------------
# Argument helpers
# ---------------------------------------------------------------------------


def _check_dtype(dtype, owner):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = dtype
    if name not in _DTYPES:
        raise ValueError(
            f"{owner}: unknown `dtype` {dtype!r}; expected one of "
            f"{', '.join(repr(d) for d in _DTYPES)}."
        )
    return name


def _check_closed_range(value, name, owner, low_bound=None, high_bound=None,
                        low_exclusive=False):
    """A `(low, high)` pair with `low <= high` (equal means a fixed value)."""
    low, high = check_range(value, name, owner, allow_equal=True)
    too_low = low_bound is not None and (
        low <= low_bound if low_exclusive else low < low_bound)
    too_high = high_bound is not None and high > high_bound
    if too_low or too_high:
        left = "(" if low_exclusive else "["
        raise ValueError(
            f"{owner}: `{name}` must lie within {left}{low_bound}, "
            f"{high_bound}], received {value!r}."
        )
    return low, high


def _check_shape_names(shapes, owner):
    if isinstance(shapes, str):
        shapes = (shapes,)
    try:
        shapes = tuple(shapes)
    except TypeError:
        raise ValueError(
            f"{owner}: `shapes` must be a sequence of names from "
            f"{SHAPE_NAMES}, received {shapes!r}."
        ) from None
    if not shapes:
        raise ValueError(
            f"{owner}: `shapes` must name at least one of {SHAPE_NAMES}, "
            "received an empty sequence."
        )
    for name in shapes:
        check_choice(name, "shapes", SHAPE_NAMES, owner)
    if len(set(shapes)) != len(shapes):
        raise ValueError(
            f"{owner}: `shapes` contains duplicates, received {shapes!r}."
        )
    return shapes


# ---------------------------------------------------------------------------
# Procedural sprites
# ---------------------------------------------------------------------------


def _signed_distance_px(shape_id, u, v, r):
    """Approximate signed distance (pixels, < 0 inside) of one shape class.

    `u`, `v` are pixel offsets from the sprite centre in the sprite's own
    (un-rotated) frame, `r` the unit-disc radius in pixels, shaped to
    broadcast per image. Distances only need to be right within about a pixel
    of the outline, where they set the anti-aliased coverage.
    """
    if shape_id == 0:  # square; L-infinity distance is exact along the edges
        d = np.maximum(np.abs(u), np.abs(v))
        d -= _SQUARE_HALF_SIDE * r
        return d
    if shape_id == 1:  # ellipse; first-order distance k0 (k0 - 1) / |grad k0|
        inv_a = 1.0 / (_ELLIPSE_AXES[0] * r)
        inv_b = 1.0 / (_ELLIPSE_AXES[1] * r)
        p = u * inv_a
        q = v * inv_b
        k0 = np.hypot(p, q)
        p *= inv_a
        q *= inv_b
        k1 = np.hypot(p, q)
        # k1 is 0 only at the exact centre, which is deep inside: any
        # positive ratio there gives a negative (inside) distance.
        ratio = np.divide(k0, k1, out=np.ones_like(k0), where=k1 > 0)
        k0 -= 1.0
        k0 *= ratio
        return k0
    # Heart. Both the tilted square and the lobes are symmetric in u, so only
    # |u| matters and one lobe covers both.
    h = _HEART_HALF_DIAGONAL * r
    au = np.abs(u)
    vs = v + _HEART_SHIFT * h
    # L-infinity norm in a frame turned by 45 degrees equals L1 / sqrt(2).
    d_square = au + np.abs(vs)
    d_square *= 1.0 / _SQRT2
    d_square -= h / _SQRT2
    au -= 0.5 * h
    vs -= 0.5 * h
    d_lobe = np.hypot(au, vs)
    d_lobe -= h / _SQRT2
    return np.minimum(d_square, d_lobe, out=d_lobe)


def _rasterise_chunk(out, start, shape, scale, rotation, x, y, size,
                     antialias):
    """Draws images `start : start + len(shape)` into `out` (N, size, size)."""
    radius_max = _RADIUS_FRACTION * size
    margin = radius_max + _PAD_PX
    travel = size - 2.0 * margin
    centres = np.arange(size, dtype=np.float32) + 0.5
    for shape_id in np.unique(shape):
        idx = np.nonzero(shape == shape_id)[0]
        r = (scale[idx] * radius_max).astype(np.float32)[:, None, None]
        cx = (margin + x[idx] * travel).astype(np.float32)[:, None, None]
        cy = (margin + y[idx] * travel).astype(np.float32)[:, None, None]
        cos = np.cos(rotation[idx]).astype(np.float32)[:, None, None]
        sin = np.sin(rotation[idx]).astype(np.float32)[:, None, None]
        # Y points up so that a positive rotation turns the shape
        # counter-clockwise as displayed. Rotating the pixel grid by -angle
        # (instead of the shape by +angle) lets each class be tested in its
        # own upright frame. The products below are (g, 1, S) / (g, S, 1):
        # only the sums are full-size.
        gx = centres[None, None, :] - cx
        gy = cy - centres[None, :, None]
        u = cos * gx + sin * gy
        v = cos * gy - sin * gx
        d = _signed_distance_px(int(shape_id), u, v, r)
        if antialias:
            # Coverage of a pixel by a straight edge at distance d.
            np.subtract(0.5, d, out=d)
            np.clip(d, 0.0, 1.0, out=d)
        else:
            d = (d <= 0.0).astype(np.float32)
        if out.dtype == np.uint8:
            d *= 255.0
            d += 0.5
        out[start + idx] = d


def render_shapes(shape, scale, rotation, x, y, size=64, dtype="uint8",
                  antialias=True):
    """Draws sprites for given factor values (the renderer of `load_shapes`).

    Useful to draw a controlled set, e.g. the same position and scale for
    every shape class, or a traversal of one factor.

    Args:
        shape: Int ids into `SHAPE_NAMES`, or names, one per image.
        scale: Scales in `(0, 1]`; 1 is the largest shape (its rotation-safe
            disc spans half the image side).
        rotation: Counter-clockwise rotations in radians.
        x: Horizontal positions in `[0, 1]` (0 = left).
        y: Vertical positions in `[0, 1]` (0 = top).
        size: Image side in pixels, an int >= 8.
        dtype: `"uint8"` (0..255) or `"float32"` (0..1).
        antialias: If `True`, edge pixels get fractional coverage; if `False`
            the images are binary.

    Returns:
        Array of shape `(n, size, size, 1)`.

    Example:

    >>> imgs = render_shapes(["square", "heart"], [1.0, 1.0], [0.0, 0.0],
    ...                      [0.5, 0.5], [0.5, 0.5], size=32)
    >>> imgs.shape
    (2, 32, 32, 1)
    """
    owner = "render_shapes"
    size = check_positive_int(size, "size", owner, minimum=8)
    dtype = _check_dtype(dtype, owner)
    shape_arr = np.asarray(shape)
    if shape_arr.ndim != 1 or shape_arr.size == 0:
        raise ValueError(
            f"{owner}: `shape` must be a non-empty 1-D sequence, received "
            f"an array of shape {shape_arr.shape}."
        )
    if shape_arr.dtype.kind in "US":
        for name in shape_arr:
            check_choice(str(name), "shape", SHAPE_NAMES, owner)
        shape_arr = np.array([SHAPE_NAMES.index(str(s)) for s in shape_arr])
    elif shape_arr.dtype.kind in "iu":
        bad = (shape_arr < 0) | (shape_arr >= len(SHAPE_NAMES))
        if bad.any():
            raise ValueError(
                f"{owner}: `shape` ids must be in [0, {len(SHAPE_NAMES) - 1}]"
                f" (indices into {SHAPE_NAMES}), received "
                f"{shape_arr[bad][0]!r}."
            )
    else:
        raise ValueError(
            f"{owner}: `shape` must hold int ids or names from "
            f"{SHAPE_NAMES}, received dtype {shape_arr.dtype}."
        )
    n = shape_arr.shape[0]
    arrays = {}
    for name, value, low, high in (("scale", scale, 0.0, 1.0),
                                   ("rotation", rotation, None, None),
                                   ("x", x, 0.0, 1.0), ("y", y, 0.0, 1.0)):
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != (n,):
            raise ValueError(
                f"{owner}: `{name}` must have shape ({n},) like `shape`, "
                f"received shape {arr.shape}."
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"{owner}: `{name}` must be finite.")
        if low is not None:
            bad = (arr <= low) if name == "scale" else (arr < low)
            bad |= arr > high
            if bad.any():
                left = "(" if name == "scale" else "["
                raise ValueError(
                    f"{owner}: `{name}` values must lie within {left}{low}, "
                    f"{high}], received {arr[bad][0]!r}."
                )
        arrays[name] = arr
    return _render(shape_arr, arrays["scale"], arrays["rotation"],
                   arrays["x"], arrays["y"], size, dtype, antialias)


def _render(shape, scale, rotation, x, y, size, dtype, antialias):
    n = shape.shape[0]
    out = np.empty((n, size, size), dtype=np.dtype(dtype))
    chunk = max(1, _PIXELS_PER_CHUNK // (size * size))
    starts = range(0, n, chunk)
    # numpy releases the GIL inside its ufunc loops, so chunks rasterise in
    # parallel threads. Each writes a disjoint slice of `out`, and all the
    # randomness was drawn up front, so the result does not depend on the
    # number of threads.
    workers = min(len(starts), os.cpu_count() or 1, 8)

    def work(start):
        stop = min(start + chunk, n)
        _rasterise_chunk(out, start, shape[start:stop], scale[start:stop],
                         rotation[start:stop], x[start:stop], y[start:stop],
                         size, antialias)

    if workers <= 1:
        for start in starts:
            work(start)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            # list() re-raises the first worker exception, if any.
            list(pool.map(work, starts))
    return out[..., None]


def load_shapes(n, size=64, seed=0, dtype="uint8", shapes=SHAPE_NAMES,
                scale_range=(0.5, 1.0), rotation_range=(0.0, 2.0 * math.pi),
                antialias=True):
    """Generates a dSprites-style set of sprites with known factors.

    Each image is one white shape on black. The generative factors are drawn
    independently and uniformly: shape class, scale, rotation and x/y
    position. The set is drawn on the fly (vectorised numpy, no download), is
    deterministic for a `seed`, and every shape stays fully inside the frame
    at any rotation: the border rows and columns are always zero.

    Use `size=28` for a small, MNIST-sized set that works offline.

    Args:
        n: Number of images, an int >= 1.
        size: Image side in pixels, an int >= 8.
        seed: Seed of the `numpy.random.Generator` that draws the factors.
        dtype: `"uint8"` (0..255) or `"float32"` (scaled to [0, 1]).
        shapes: Names of the shape classes to draw, from `SHAPE_NAMES`.
        scale_range: `(low, high)` within `(0, 1]`; 1 is the largest shape,
            whose rotation-safe disc spans half the image side.
        rotation_range: `(low, high)` counter-clockwise rotation in radians.
        antialias: If `True` edge pixels get fractional values; if `False`
            the images are binary (0 or 255 / 1.0).

    Returns:
        A tuple `(images, factors)`. `images` has shape `(n, size, size, 1)`.
        `factors` is a dict of length-`n` arrays: `"shape"` (int ids into
        `SHAPE_NAMES`), `"scale"`, `"rotation"` (radians), `"x"` and `"y"`
        (positions in [0, 1], 0 = left / top), the floats as float32.

    Example:

    >>> images, factors = load_shapes(1000, size=32, seed=1)
    >>> images.shape, images.dtype
    ((1000, 32, 32, 1), dtype('uint8'))
    >>> sorted(factors)
    ['rotation', 'scale', 'shape', 'x', 'y']
    """
    owner = "load_shapes"
    n = check_positive_int(n, "n", owner)
    size = check_positive_int(size, "size", owner, minimum=8)
    dtype = _check_dtype(dtype, owner)
    shapes = _check_shape_names(shapes, owner)
    scale_low, scale_high = _check_closed_range(
        scale_range, "scale_range", owner, low_bound=0.0, high_bound=1.0,
        low_exclusive=True)
    rot_low, rot_high = _check_closed_range(
        rotation_range, "rotation_range", owner)
    if isinstance(seed, bool) or not (
            seed is None or isinstance(seed, numbers.Integral)):
        raise ValueError(
            f"{owner}: `seed` must be an int or None, received {seed!r}."
        )

    rng = np.random.default_rng(seed)
    ids = np.array([SHAPE_NAMES.index(s) for s in shapes])
    # One draw per factor, in a fixed order, so a given seed always gives the
    # same set whatever the chunking or thread count of the renderer.
    factors = {
        "shape": ids[rng.integers(0, len(ids), size=n)],
        "scale": rng.uniform(scale_low, scale_high, size=n),
        "rotation": rng.uniform(rot_low, rot_high, size=n),
        "x": rng.uniform(0.0, 1.0, size=n),
        "y": rng.uniform(0.0, 1.0, size=n),
    }
    images = _render(factors["shape"], factors["scale"], factors["rotation"],
                     factors["x"], factors["y"], size, dtype, antialias)
    factors = {
        "shape": factors["shape"].astype(np.int64),
        **{k: factors[k].astype(np.float32)
           for k in ("scale", "rotation", "x", "y")},
    }
    return images, factors


# ---------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# ---------------------------------------------------------------------------


def _load_keras_dataset(module_name, label, owner, dtype):
    import keras

    dtype = _check_dtype(dtype, owner)
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


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------

DATASET_NAMES = ("shapes", "mnist", "fashion_mnist")
"""Names `load_dataset` accepts."""


def load_dataset(name, n=None, size=None, seed=0, dtype="uint8"):
    """Loads a training set by name, for scripts with a `--dataset` option.

    Args:
        name: `"shapes"` (built-in, procedural, offline), `"mnist"` or
            `"fashion_mnist"` (Keras' loaders; need network access once).
        n: Number of images (`None`: 10,000 shapes, or the whole training
            split).
        size: Image size. Shapes: any size >= 8 (default 64). MNIST and
            Fashion-MNIST: 28 (native) or 32 (zero-padded by 2 pixels on
            each side, so stride-2 conv stacks divide evenly).
        seed: Seed for the shapes set.
        dtype: `"uint8"` or `"float32"` (scaled to [0, 1]).

    Returns:
        `(images, labels)`: images `(n, size, size, 1)`; labels are the class
        ids for MNIST-style sets and the factor dict for shapes.

    Example:

    >>> images, factors = load_dataset("shapes", n=1000, size=32)
    """
    owner = "load_dataset"
    if name not in DATASET_NAMES:
        raise ValueError(
            f"{owner}: unknown dataset name {name!r}; expected one of "
            f"{', '.join(repr(d) for d in DATASET_NAMES)} (or load your own "
            "images with load_image_folder)."
        )
    if n is not None:
        n = check_positive_int(n, "n", owner)
    if name == "shapes":
        return load_shapes(10_000 if n is None else n,
                           size=64 if size is None else size, seed=seed,
                           dtype=dtype)
    if size not in (None, 28, 32):
        raise ValueError(
            f"{owner}: {name} images are 28x28; `size` must be 28 or 32 "
            f"(zero-padded), received {size!r}."
        )
    loader = load_mnist if name == "mnist" else load_fashion_mnist
    (x, y), _ = loader(dtype=dtype)
    if n is not None:
        x, y = x[:n], y[:n]
    if size == 32:
        x = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    return x, y


_CACHE_FORMAT = 1


def _check_size_pair(size, owner):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(
            f"{owner}: `size` must be an int or a (height, width) pair, "
            f"received {size!r}."
        )
    return (check_positive_int(size[0], "size[0]", owner),
            check_positive_int(size[1], "size[1]", owner))


_COLOR_MODES = {"rgb": "RGB", "grayscale": "L"}
_CROPS = ("center", "none")

# Greyscale modes with more than 8 bits per sample. Pillow opens 16-bit
# greyscale PNGs as "I;16" (older versions: "I"), 16-bit TIFFs as "I;16" /
# "I;16B" and 16-bit PGMs as "I" (32-bit signed).
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _check_extensions(extensions, owner):
    if isinstance(extensions, str):
        extensions = (extensions,)
    try:
        extensions = tuple(extensions)
    except TypeError:
        extensions = None
    if not extensions or not all(isinstance(e, str) and e for e in extensions):
        raise ValueError(
            f"{owner}: `extensions` must be a non-empty sequence of file "
            f"suffixes such as '.png', received {extensions!r}."
        )
    return tuple(e.lower() for e in extensions)


def _check_folder(path, owner):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{owner}: folder {path!r} does not exist.")
    if not os.path.isdir(path):
        raise ValueError(f"{owner}: `path` {path!r} is not a folder.")
    return path


def _is_listed_file(entry):
    """Whether a non-folder directory entry is a file to try decoding."""
    try:
        # Follows symlinks. FIFOs, sockets and devices are not files: opening
        # a FIFO would block the load forever.
        if entry.is_file():
            return True
        # A dangling symlink is listed so that the load reports it as
        # unreadable instead of dropping it without a word.
        return entry.is_symlink() and not os.path.exists(entry.path)
    except OSError:
        # A symlink loop (ELOOP) or an entry that just vanished: listed, and
        # reported like any other file that cannot be read.
        return True


def _list_image_files(path, recursive, extensions):
    found = []
    folders = [path]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            if folder == path:
                raise
            continue  # an unreadable sub-folder is skipped, as os.walk does
        for entry in entries:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            if is_folder:
                # Symlinked folders are not followed (no cycles), as in
                # os.walk; they fail _is_listed_file below.
                if recursive:
                    folders.append(entry.path)
            elif (entry.name.lower().endswith(extensions)
                  and _is_listed_file(entry)):
                found.append(entry.path)
    # Sorted so that image i is the same file on every machine and every run.
    return sorted(found)


def list_image_files(path, recursive=False, extensions=IMAGE_EXTENSIONS):
    """Lists the image files of a folder, as `load_image_folder` reads them.

    A file is listed when its name ends with one of `extensions` (case
    insensitive) and it is a regular file or a symlink to one. Broken and
    looping symlinks are listed too, so that a load reports them as
    unreadable; FIFOs, sockets and devices are not. Symlinked sub-folders
    are not followed.

    Args:
        path: Folder to list.
        recursive: If `True`, also list sub-folders (unreadable sub-folders
            are skipped).
        extensions: File suffixes to list, e.g. `(".png", ".jpg")`.

    Returns:
        Sorted list of file paths (each `path` joined with the relative
        name), the order in which `load_image_folder` stacks the images.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If `path` is not a folder, or `extensions` is empty.

    Example:

    >>> files = list_image_files("img_align_celeba")
    >>> shard = [decode_image(f, size=64) for f in files[:1000]]
    """
    owner = "list_image_files"
    path = _check_folder(path, owner)
    extensions = _check_extensions(extensions, owner)
    return _list_image_files(path, recursive, extensions)


def _to_8_bit(img):
    """A wide greyscale image (`_WIDE_GRAY_MODES`) as 8-bit mode "L".

    Keeps the high byte (`v >> 8`). Pillow's `convert("L")` clips instead,
    which turns a 0..65535 ramp almost white. The high byte is what Pillow
    itself keeps of 16-bit RGB(A) PNGs, so greyscale and colour 16-bit files
    of one set agree; it differs from round(v / 257) by at most one level.
    """
    from PIL import Image

    arr = np.asarray(img)
    if img.mode == "I":  # 32-bit: read as 16-bit samples, clipped
        arr = np.clip(arr, 0, 65535)
    return Image.fromarray((arr >> 8).astype(np.uint8))


def _decode(file, size, crop, mode):
    from PIL import Image
    from PIL import ImageOps

    height, width = size
    with Image.open(file) as img:
        # Camera JPEGs store rotation in EXIF; honour it like viewers do.
        img = ImageOps.exif_transpose(img)
        if img.mode in _WIDE_GRAY_MODES:
            img = _to_8_bit(img)
        # Palette / alpha modes go through RGB first so that transparency
        # and palettes resolve the way viewers show them.
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        if img.mode != mode:
            img = img.convert(mode)
        src_w, src_h = img.size
        if crop == "center":
            # Largest centred box with the target aspect ratio, cut out
            # before resizing so the filter does not pull in pixels from
            # outside it (resize(box=...) would).
            target = width / height
            if src_w / src_h > target:
                crop_w = max(1, round(src_h * target))
                left = (src_w - crop_w) // 2
                box = (left, 0, left + crop_w, src_h)
            else:
                crop_h = max(1, round(src_w / target))
                top = (src_h - crop_h) // 2
                box = (0, top, src_w, top + crop_h)
            if box != (0, 0, src_w, src_h):
                img = img.crop(box)
        # LANCZOS keeps downscaled faces sharp; reducing_gap first shrinks
        # by an integer factor (much faster on big photos) with no visible
        # loss.
        img = img.resize((width, height), Image.Resampling.LANCZOS,
                         reducing_gap=3.0)
        arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def decode_image(file, size=(96, 96), crop="center", color_mode="rgb"):
    """Decodes one image file exactly as `load_image_folder` does.

    The rules, in order: the EXIF orientation is applied; 16-bit greyscale
    (Pillow modes `"I;16"`, `"I;16B"`, ..., and 32-bit `"I"` read as 16-bit
    samples) is reduced to 8 bits by keeping the high byte (`v >> 8`, what
    Pillow does for 16-bit RGB(A) PNGs); palette and alpha images are
    converted to RGB (alpha dropped); then to `color_mode`; then the image
    is centre-cropped to the aspect ratio of `size` (with `crop="center"`)
    and resized with a Lanczos filter.

    Args:
        file: Path or binary file object of an image Pillow can open.
        size: Output `(height, width)` in pixels, or an int for a square.
        crop: `"center"` crops to the target aspect ratio before resizing;
            `"none"` resizes the whole image (distorting its aspect ratio).
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).

    Returns:
        `uint8` array of shape `(height, width, channels)`.

    Raises:
        ValueError: On bad arguments.
        OSError: If `file` cannot be read or decoded (Pillow's
            `UnidentifiedImageError` is an `OSError`); a few corrupt files
            make Pillow raise other exceptions.

    Example:

    >>> image = decode_image("face.png", size=64)
    >>> image.shape, image.dtype
    ((64, 64, 3), dtype('uint8'))
    """
    owner = "decode_image"
    size = _check_size_pair(size, owner)
    check_choice(crop, "crop", _CROPS, owner)
    check_choice(color_mode, "color_mode", tuple(_COLOR_MODES), owner)
    return _decode(file, size, crop, _COLOR_MODES[color_mode])


def _cache_meta(size, crop, color_mode, max_images=None):
    meta = {"format": _CACHE_FORMAT, "size": list(size), "crop": crop,
            "color_mode": color_mode}
    if max_images is not None:
        meta["max_images"] = max_images
    return meta


def _read_cache(cache, meta, owner):
    """Returns the cached images, or `None` if absent, stale or unreadable."""
    if not os.path.exists(cache):
        return None
    try:
        with np.load(cache, allow_pickle=False) as data:
            stored = json.loads(str(data["meta"]))
            if stored != meta:
                return "stale"
            return data["images"]
    except Exception as err:  # truncated by hand, foreign file, ...
        warnings.warn(
            f"{owner}: ignoring unreadable cache file {cache!r} "
            f"({type(err).__name__}: {err}); it will be rebuilt.",
            stacklevel=3,
        )
        return None


def _write_cache(cache, images, meta):
    """Writes the cache atomically: readers see the old file or the new one."""
    os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            # Passing a file object keeps numpy from appending ".npz", so the
            # cache lands at exactly the path the user gave.
            np.savez(f, images=images, meta=np.array(json.dumps(meta)))


def _log(message):
    print(message, file=sys.stderr, flush=True)


def load_image_folder(path, size=(96, 96), crop="center", color_mode="rgb",
                      cache=None, recursive=False, verbose=True,
                      extensions=IMAGE_EXTENSIONS, num_workers=None,
                      progress_every=5000, max_images=None):
    """Loads a folder of images into one `uint8` array (e.g. CelebA).

    The files are those `list_image_files` lists, each decoded by
    `decode_image`: centre-cropped to the aspect ratio of `size` (a square
    for the default), resized with a Lanczos filter and converted to RGB or
    grayscale; 16-bit images are scaled to 8 bits (`v >> 8`). Files whose
    extension is not in `extensions` are ignored; files that have one but
    cannot be decoded (corrupt, not an image, a broken or looping symlink)
    are skipped with a single warning giving their count and a few names.

    The result stays `uint8` (a quarter of the memory of float32); scale it
    per batch with `make_image_dataset`.

    Args:
        path: Folder to read.
        size: Output `(height, width)` in pixels, or an int for a square.
        crop: `"center"` crops to the target aspect ratio before resizing;
            `"none"` resizes the whole image (distorting its aspect ratio).
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).
        cache: Optional path of a cache file. If it exists and was written
            with the same `size`, `crop` and `color_mode` it is loaded
            instead of the folder (the folder is then not read at all);
            otherwise the folder is loaded and the cache (re)written
            atomically. It is an `.npz` archive whatever its name.
        recursive: If `True`, also read sub-folders.
        verbose: If `True`, print progress lines to stderr.
        extensions: Lower-case file suffixes to read.
        num_workers: Decoding threads (Pillow releases the GIL while it
            decodes and resizes). Defaults to the CPU count, at most 8.
        progress_every: Print a progress line every this many files.
        max_images: Optional limit: only the first `max_images` files (in
            sorted name order) are decoded, so a subset of a large folder
            loads in proportion to its size. Unreadable files among them are
            skipped, so fewer images may come back. Part of the cache key.

    Returns:
        `uint8` array of shape `(n, height, width, channels)`, images in
        sorted file-name order.

    Raises:
        FileNotFoundError: If `path` does not exist (and no valid cache).
        ValueError: If no readable image is found, or on bad arguments.

    Example:

    >>> faces = load_image_folder("img_align_celeba", size=64,
    ...                           cache="celeba64.npz")
    >>> ds = make_image_dataset(faces, batch_size=128)
    """
    owner = "load_image_folder"
    size = _check_size_pair(size, owner)
    check_choice(crop, "crop", _CROPS, owner)
    check_choice(color_mode, "color_mode", tuple(_COLOR_MODES), owner)
    extensions = _check_extensions(extensions, owner)
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, 8)
    num_workers = check_positive_int(num_workers, "num_workers", owner)
    progress_every = check_positive_int(progress_every, "progress_every",
                                        owner)
    if max_images is not None:
        max_images = check_positive_int(max_images, "max_images", owner)
    if cache is not None:
        cache = os.fspath(cache)

    meta = _cache_meta(size, crop, color_mode, max_images)
    if cache is not None:
        cached = _read_cache(cache, meta, owner)
        if isinstance(cached, np.ndarray):
            if verbose:
                _log(f"{owner}: loaded {len(cached)} images from cache "
                     f"{cache!r}.")
            return cached
        if cached == "stale" and verbose:
            _log(f"{owner}: cache {cache!r} was written with other settings; "
                 "rebuilding it.")

    path = _check_folder(path, owner)
    files = _list_image_files(path, recursive, extensions)
    if max_images is not None:
        files = files[:max_images]
    if not files:
        raise ValueError(
            f"{owner}: no image files in {path!r} (looked for extensions "
            f"{extensions}{', recursively' if recursive else ''})."
        )

    mode = _COLOR_MODES[color_mode]
    channels = 3 if mode == "RGB" else 1
    images = np.empty((len(files), size[0], size[1], channels), np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    failed = []
    if verbose:
        _log(f"{owner}: reading {len(files)} files from {path!r}.")
    start_time = time.perf_counter()

    def work(i):
        try:
            images[i] = _decode(files[i], size, crop, mode)
            ok[i] = True
        except Exception as err:  # Pillow raises many types for bad files
            failed.append((files[i], err))

    # Blocks bound the number of pending futures on huge folders and give
    # natural points to report progress.
    block = max(1, min(progress_every, 1024))
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        done_since_report = 0
        for block_start in range(0, len(files), block):
            indices = range(block_start, min(block_start + block, len(files)))
            list(pool.map(work, indices))
            done_since_report += len(indices)
            done = indices.stop
            if verbose and (done_since_report >= progress_every
                            or done == len(files)):
                done_since_report = 0
                elapsed = time.perf_counter() - start_time
                _log(f"{owner}: {done}/{len(files)} files "
                     f"({done / max(elapsed, 1e-9):.0f} files/s).")

    if failed:
        failed.sort()
        names = ", ".join(os.path.basename(f) for f, _ in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        first_err = failed[0][1]
        warnings.warn(
            f"{owner}: skipped {len(failed)} unreadable file(s) in "
            f"{path!r}: {names}{more} (first error: "
            f"{type(first_err).__name__}: {first_err}).",
            stacklevel=2,
        )
    if not ok.any():
        raise ValueError(
            f"{owner}: none of the {len(files)} image files in {path!r} "
            "could be read."
        )
    if not ok.all():
        images = images[ok]
    if cache is not None:
        _write_cache(cache, images, meta)
        if verbose:
            _log(f"{owner}: wrote cache {cache!r}.")
    return images


# ---------------------------------------------------------------------------
# tf.data pipeline
# ---------------------------------------------------------------------------


def make_image_dataset(images, batch_size=32, shuffle=True, seed=None,
                       buffer_size=None, drop_remainder=False, repeat=False):
    """Builds a `tf.data.Dataset` of float32 batches from `uint8` images.

    The images stay `uint8` in host memory (no float copy of the whole set,
    no copy into a graph constant, which also avoids TensorFlow's 2 GB
    constant limit); each batch is gathered by index, then cast and scaled to
    [0, 1]. Elements are the batch `x` alone, as `VAEModel.fit(x)` expects.

    Args:
        images: `uint8` array `(n, h, w, c)`, or `(n, h, w)` for grayscale
            (a channel axis is added).
        batch_size: Batch size, an int >= 1.
        shuffle: Whether to reshuffle the images every epoch.
        seed: Optional int seed for the shuffle order.
        buffer_size: Shuffle buffer (in images). Defaults to all of them:
            only indices are buffered, so a full shuffle is cheap.
        drop_remainder: Whether to drop the last, smaller batch (gives a
            static batch dimension).
        repeat: If `True`, repeat forever (then pass `steps_per_epoch` to
            `fit`).

    Returns:
        A `tf.data.Dataset` of float32 tensors `(batch, h, w, c)`.

    Example:

    >>> images, _ = load_shapes(1000, size=32)
    >>> ds = make_image_dataset(images, batch_size=64, seed=0)
    >>> next(iter(ds)).shape
    TensorShape([64, 32, 32, 1])
    """
    import tensorflow as tf

    owner = "make_image_dataset"
    if not isinstance(images, np.ndarray):
        raise ValueError(
            f"{owner}: `images` must be a numpy array, received "
            f"{type(images).__name__}."
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"{owner}: `images` must have dtype uint8 (0..255; scaled to "
            f"[0, 1] per batch), received dtype {images.dtype}. Convert "
            "float images in [0, 1] with "
            "`np.round(images * 255).astype('uint8')`."
        )
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(
            f"{owner}: `images` must have rank 4 (n, h, w, c) or rank 3 "
            f"(n, h, w), received shape {images.shape}."
        )
    n = images.shape[0]
    if n == 0:
        raise ValueError(f"{owner}: `images` is empty (shape {images.shape}).")
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    if seed is not None:
        seed = int(check_positive_int(seed, "seed", owner, minimum=0))
    if buffer_size is None:
        buffer_size = n
    buffer_size = check_positive_int(buffer_size, "buffer_size", owner)
    def gather(idx):
        return images[idx]

    def to_float(idx):
        batch = tf.numpy_function(gather, [idx], tf.uint8, stateful=False)
        batch.set_shape((batch_size if drop_remainder else None,)
                        + images.shape[1:])
        return tf.cast(batch, tf.float32) * (1.0 / 255.0)

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # Batch the indices first so that gathering, casting and scaling run once
    # per batch instead of once per image.
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
