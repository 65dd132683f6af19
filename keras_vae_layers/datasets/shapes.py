"""The built-in sprite set: dSprites-style shapes with known factors.

`load_shapes` draws one white shape (square, ellipse or heart) on black per
image, with independently drawn scale, rotation and x/y position, procedurally
(vectorised numpy, no download): it works offline and in tests, and its
ground-truth factors make disentanglement measurable. `render_shapes` is the
renderer for factor values you choose.
"""

import concurrent.futures
import math
import numbers
import os

import numpy as np

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.datasets._checks import check_closed_range
from keras_vae_layers.datasets._checks import check_dtype

__all__ = ["SHAPE_NAMES", "load_shapes", "render_shapes",
           "sample_shapes_with_fixed_factor"]

SHAPE_NAMES = ("square", "ellipse", "heart")
"""Shape classes of `load_shapes`; `factors["shape"]` indexes this tuple."""

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
    dtype = check_dtype(dtype, owner)
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
    return _sample_shapes("load_shapes", n, None, None, size, seed, dtype,
                          shapes, scale_range, rotation_range, antialias)


def sample_shapes_with_fixed_factor(n, factor=None, value=None, size=64,
                                    seed=0, dtype="uint8", shapes=SHAPE_NAMES,
                                    scale_range=(0.5, 1.0),
                                    rotation_range=(0.0, 2.0 * math.pi),
                                    antialias=True):
    """Draws shapes like `load_shapes`, with one generative factor held fixed.

    The factor-conditioned batches that the beta-VAE and FactorVAE scores
    need (`keras_vae_layers.evaluation`): every factor but `factor` is drawn
    as in `load_shapes` (with `factor=None` the result equals
    `load_shapes(n, ...)` with the same arguments), and `factor` is set to
    `value`.

    Args:
        n: Number of images, an int >= 1.
        factor: `"shape"`, `"scale"`, `"rotation"`, `"x"`, `"y"` or `None`
            (nothing fixed).
        value: `None` (one value drawn from the factor's distribution,
            shared by all `n` images), a number (shape: an id into
            `SHAPE_NAMES` or a name) for all images, or a length-`n` array
            of per-image values, e.g. the factors of another batch. Values
            must lie in the factor's range (`scale_range`, `rotation_range`,
            [0, 1] for `x` and `y`, one of `shapes`).
        size, seed, dtype, shapes, scale_range, rotation_range, antialias:
            As in `load_shapes`.

    Returns:
        `(images, factors)` as `load_shapes` returns them.

    Example:

    >>> images, f = sample_shapes_with_fixed_factor(16, "scale", 0.75,
    ...                                             size=32, seed=3)
    >>> set(f["scale"].tolist())
    {0.75}
    """
    return _sample_shapes("sample_shapes_with_fixed_factor", n, factor,
                          value, size, seed, dtype, shapes, scale_range,
                          rotation_range, antialias)


def _sample_shapes(owner, n, factor, value, size, seed, dtype, shapes,
                   scale_range, rotation_range, antialias):
    """Draws the factors (one draw per factor, in a fixed order, so a seed
    gives the same set whatever the renderer's chunking), fixes `factor` to
    `value` if given, and renders the images."""
    n = check_positive_int(n, "n", owner)
    size = check_positive_int(size, "size", owner, minimum=8)
    dtype = check_dtype(dtype, owner)
    shapes = _check_shape_names(shapes, owner)
    ranges = {
        "scale": check_closed_range(scale_range, "scale_range", owner,
                                    low_bound=0.0, high_bound=1.0,
                                    low_exclusive=True),
        "rotation": check_closed_range(rotation_range, "rotation_range",
                                       owner),
        "x": (0.0, 1.0),
        "y": (0.0, 1.0),
    }
    names = ("shape",) + tuple(ranges)
    if factor is not None:
        check_choice(factor, "factor", names, owner)
    elif value is not None:
        raise ValueError(
            f"{owner}: `value` needs a `factor` to fix, received value="
            f"{value!r} with factor=None."
        )
    if isinstance(seed, bool) or not (
            seed is None or isinstance(seed, numbers.Integral)):
        raise ValueError(
            f"{owner}: `seed` must be an int or None, received {seed!r}."
        )
    rng = np.random.default_rng(seed)
    ids = np.array([SHAPE_NAMES.index(s) for s in shapes])
    # The same draws, in the same order, as load_shapes.
    drawn = {"shape": ids[rng.integers(0, len(ids), size=n)]}
    for name in ranges:
        drawn[name] = rng.uniform(*ranges[name], size=n)
    if factor is not None:
        if value is None:
            fixed = (ids[rng.integers(0, len(ids))] if factor == "shape"
                     else rng.uniform(*ranges[factor]))
            fixed = np.full(n, fixed)
        else:
            fixed = np.asarray(value)
            if fixed.ndim == 0:
                fixed = np.full(n, fixed)
            if fixed.shape != (n,):
                raise ValueError(
                    f"{owner}: `value` must be a scalar or have shape ({n},), "
                    f"received shape {fixed.shape}."
                )
        if factor == "shape":
            if fixed.dtype.kind in "US":
                for name in fixed:
                    check_choice(str(name), "value", shapes, owner)
                fixed = np.array([SHAPE_NAMES.index(str(v)) for v in fixed])
            bad = ~np.isin(fixed, ids)
            if fixed.dtype.kind not in "iu" or bad.any():
                raise ValueError(
                    f"{owner}: shape `value` must be ids of {shapes} "
                    f"({ids.tolist()}) or their names, received "
                    f"{fixed[bad][0].item() if bad.any() else fixed.dtype}."
                )
        else:
            low, high = ranges[factor]
            fixed = np.asarray(fixed, dtype=np.float64)
            # Factors come back as float32: accept the rounded bounds too.
            bad = ~np.isfinite(fixed) | (
                fixed < min(low, float(np.float32(low)))) | (
                fixed > max(high, float(np.float32(high))))
            if bad.any():
                raise ValueError(
                    f"{owner}: `value` for {factor!r} must lie within "
                    f"[{low}, {high}], received {float(fixed[bad][0])!r}."
                )
        drawn[factor] = fixed
    images = _render(drawn["shape"], drawn["scale"], drawn["rotation"],
                     drawn["x"], drawn["y"], size, dtype, antialias)
    factors = {
        "shape": drawn["shape"].astype(np.int64),
        **{k: drawn[k].astype(np.float32) for k in ranges},
    }
    return images, factors
