"""Input checks and discrete information measures for the metrics (private)."""

import numbers

import numpy as np

from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int

DEFAULT_FACTOR_BINS = 10
"""Equal-width bins a continuous factor is cut into."""


def check_latents(latents, owner, name="latents"):
    """`latents` as a float64 `(n, z_dim)` array with no NaN or inf."""
    try:
        z = np.asarray(latents, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: `{name}` must be a numeric array (n, z_dim), received "
            f"{type(latents).__name__}."
        ) from None
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
        raise ValueError(
            f"{owner}: `{name}` must be a 2-D array (n, z_dim) with n >= 2, "
            f"received shape {z.shape}."
        )
    if not np.isfinite(z).all():
        bad = np.argwhere(~np.isfinite(z))[0]
        raise ValueError(
            f"{owner}: `{name}` contains NaN or inf (first at row {bad[0]}, "
            f"column {bad[1]})."
        )
    return z


def discretize_factors(factors, factor_bins=DEFAULT_FACTOR_BINS,
                       owner="discretize_factors"):
    """Turns factors into integer class codes, one column per factor.

    Integer, boolean and string columns, and float columns holding only
    whole numbers, are taken as classes. Other float columns (continuous
    factors such as the shapes set's `scale`, `rotation`, `x`, `y`) are cut
    into `factor_bins` equal-width bins over their observed range.

    Args:
        factors: An `(n, k)` array (or `(n,)` for one factor), or a dict of
            length-`n` arrays such as the one `load_shapes` returns.
        factor_bins: Bins per continuous factor, an int >= 2.
        owner: Name used in error messages.

    Returns:
        Tuple `(codes, names)`: int64 array `(n, k)` with codes `0..c-1` per
        column, and the factor names (dict keys, or `"factor_j"`).
    """
    factor_bins = check_positive_int(factor_bins, "factor_bins", owner,
                                     minimum=2)
    if isinstance(factors, dict):
        if not factors:
            raise ValueError(f"{owner}: `factors` is an empty dict.")
        names = [str(k) for k in factors]
        columns = [np.asarray(v) for v in factors.values()]
        for name, col in zip(names, columns):
            if col.ndim != 1:
                raise ValueError(
                    f"{owner}: `factors[{name!r}]` must be 1-D (n,), "
                    f"received shape {col.shape}."
                )
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            raise ValueError(
                f"{owner}: the arrays of the `factors` dict differ in length: "
                f"{dict(zip(names, (len(c) for c in columns)))}."
            )
    else:
        array = np.asarray(factors)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] < 1:
            raise ValueError(
                f"{owner}: `factors` must be an array (n, k) or a dict of "
                f"length-n arrays, received shape {array.shape}."
            )
        names = [f"factor_{j}" for j in range(array.shape[1])]
        columns = [array[:, j] for j in range(array.shape[1])]
    codes = [_codes(col, name, factor_bins, owner)
             for name, col in zip(names, columns)]
    return np.stack(codes, axis=1), names


def _codes(col, name, factor_bins, owner):
    if col.dtype.kind == "f":
        if not np.isfinite(col).all():
            raise ValueError(
                f"{owner}: factor {name!r} in `factors` contains NaN or inf."
            )
        if not np.all(col == np.round(col)):
            low, high = col.min(), col.max()
            edges = np.linspace(low, high, factor_bins + 1)
            col = np.clip(np.searchsorted(edges, col, side="right") - 1, 0,
                          factor_bins - 1)
    elif col.dtype.kind not in "iubUSO":
        raise ValueError(
            f"{owner}: factor {name!r} in `factors` has unsupported dtype "
            f"{col.dtype}."
        )
    _, codes = np.unique(col, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def check_latents_and_factors(latents, factors, factor_bins, owner):
    """Validates a metric's inputs; returns `(z, codes, names)`."""
    z = check_latents(latents, owner)
    codes, names = discretize_factors(factors, factor_bins, owner)
    if len(codes) != len(z):
        raise ValueError(
            f"{owner}: `latents` and `factors` must have the same number of "
            f"samples, received {len(z)} latents and {len(codes)} factor "
            "rows."
        )
    check_informative(codes, names, owner)
    return z, codes, names


def check_informative(codes, names, owner):
    """Rejects factors with a single value (zero entropy)."""
    for j, name in enumerate(names):
        if codes[:, j].max() == 0:
            raise ValueError(
                f"{owner}: factor {name!r} in `factors` takes a single value "
                "(zero entropy); drop it, its score is undefined."
            )


def histogram_codes(values, num_bins, edges_from=None):
    """Equal-width bin indices `0..num_bins-1` of each column of `values`.

    The edges span each column of `edges_from` (default `values`); values
    outside that range go to the first or last bin.
    """
    ref = values if edges_from is None else edges_from
    out = np.empty(values.shape, dtype=np.int64)
    for i in range(values.shape[1]):
        edges = np.linspace(ref[:, i].min(), ref[:, i].max(), num_bins + 1)
        out[:, i] = np.clip(
            np.searchsorted(edges, values[:, i], side="right") - 1, 0,
            num_bins - 1)
    return out


def entropy(codes):
    """Plug-in entropy of a code vector, in nats."""
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(a, b):
    """Plug-in mutual information of two code vectors, in nats."""
    nb = int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb)
    joint = joint.reshape(-1, nb) / len(a)
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def split_indices(n, test_fraction, seed, owner):
    """Shuffled train / test index arrays (both non-empty)."""
    test_fraction = check_finite_number(test_fraction, "test_fraction", owner,
                                        minimum=0.0, strict_minimum=True)
    if test_fraction >= 1.0:
        raise ValueError(
            f"{owner}: `test_fraction` must be in (0, 1), received "
            f"{test_fraction!r}."
        )
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n_test >= n:
        raise ValueError(
            f"{owner}: {n} samples cannot be split with test_fraction="
            f"{test_fraction}; need at least one train and one test sample."
        )
    order = np.random.default_rng(check_seed(seed, owner)).permutation(n)
    return order[n_test:], order[:n_test]


def check_seed(seed, owner):
    """An int >= 0 or `None` (fresh entropy)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(
            seed, numbers.Integral) or seed < 0):
        raise ValueError(
            f"{owner}: `seed` must be a non-negative int or None, received "
            f"{seed!r}."
        )
    return seed
