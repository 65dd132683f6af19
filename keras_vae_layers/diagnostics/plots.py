"""Plots of latent spaces (matplotlib, the optional `[plot]` extra).

Figures are drawn on the Agg canvas directly (no pyplot state, so no global
backend switch; works headless and in threads) and written atomically as
PNGs of `figsize * dpi` pixels.
"""

import os

import numpy as np

from keras_vae_layers.io import atomic_path
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.diagnostics.statistics import radius_bin_edges

__all__ = ["pca_2d", "plot_radius_histograms", "plot_latent_scatter"]

_RADIUS_KINDS = ("z", "mu")
_MAX_CATEGORIES = 20


def _matplotlib(owner):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            f"{owner} needs matplotlib, an optional dependency of "
            "keras_vae_layers. Install it with "
            "`pip install keras_vae_layers[plot]` (or `pip install "
            "matplotlib`)."
        ) from None
    return Figure, FigureCanvasAgg


def _new_figure(owner, figsize, dpi):
    # Figure + Agg canvas directly: no pyplot, so no global backend switch,
    # no open-figure bookkeeping, and it works headless and in threads.
    Figure, FigureCanvasAgg = _matplotlib(owner)
    if (not isinstance(figsize, (tuple, list)) or len(figsize) != 2):
        raise ValueError(
            f"{owner}: `figsize` must be a (width, height) pair in inches, "
            f"received {figsize!r}."
        )
    for i, v in enumerate(figsize):
        check_finite_number(v, f"figsize[{i}]", owner, minimum=0.0,
                            strict_minimum=True)
    check_positive_int(dpi, "dpi", owner)
    fig = Figure(figsize=tuple(figsize), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig, path, dpi):
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def plot_radius_histograms(series, path, which="z", bin_width=0.5,
                           hist_range=None, title=None, figsize=(6.0, 4.0),
                           dpi=100):
    """Overlays the latent radius histograms of several models in one PNG.

    All series share one set of bin edges (`radius_bin_edges`), so the
    curves are directly comparable. Needs matplotlib
    (`pip install keras_vae_layers[plot]`); no pyplot state is touched.

    Args:
        series: Dict `label -> stats`, where `stats` is a dict from
            `latent_statistics` (its `"{which}_radius"` entry is used) or a
            1-D array of radii.
        path: Destination `.png`, written atomically. The image is
            `figsize * dpi` pixels.
        which: `"z"` or `"mu"`: which radius to plot from stats dicts.
        bin_width: Bin width (> 0).
        hist_range: Optional `(low, high)`; see `radius_bin_edges`.
        title: Optional title.
        figsize: `(width, height)` in inches.
        dpi: Dots per inch.

    Returns:
        The path written.

    Example:

    ```python
    plot_radius_histograms({"beta=1": stats_a, "beta=4": stats_b},
                           "radii.png", which="mu")
    ```
    """
    owner = "plot_radius_histograms"
    check_choice(which, "which", _RADIUS_KINDS, owner)
    if not isinstance(series, dict) or not series:
        raise ValueError(
            f"{owner}: `series` must be a non-empty dict label -> stats (or "
            f"radii), received {series!r:.80}."
        )
    radii = {}
    for label, value in series.items():
        if isinstance(value, dict):
            key = f"{which}_radius"
            if key not in value:
                raise ValueError(
                    f"{owner}: stats for {label!r} have no {key!r} entry; "
                    "pass dicts from latent_statistics or 1-D radius arrays."
                )
            value = value[key]
        arr = np.asarray(value, dtype="float64")
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"{owner}: radii for {label!r} must be a non-empty 1-D array, "
                f"received shape {arr.shape}."
            )
        radii[str(label)] = arr
    edges = radius_bin_edges(radii.values(), bin_width, hist_range, owner)
    fig = _new_figure(owner, figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    for label, arr in radii.items():
        counts = np.histogram(arr, bins=edges)[0]
        ax.stairs(counts, edges, label=label, linewidth=1.5)
    if all(isinstance(v, dict) for v in series.values()):
        symbol = "z" if which == "z" else "\u03bc"
        ax.set_xlabel(f"L2 radius of {symbol}")
    else:  # raw radius arrays: the labels say what they are
        ax.set_xlabel("L2 radius")
    ax.set_ylabel("count")
    if title:
        ax.set_title(title)
    ax.legend()
    return _save_figure(fig, path, dpi)


def pca_2d(points):
    """Projects `(n, d)` points onto their first two principal components.

    Plain numpy SVD of the centred data.

    Returns:
        `(projected, explained_ratio)`: a `(n, 2)` array and the fraction of
        the total variance each of the two components explains (zeros for
        constant data). Columns are padded with zeros when `d < 2`.
    """
    x = np.asarray(points, dtype="float64")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(
            f"pca_2d: `points` must be a non-empty (n, d) array, received "
            f"shape {x.shape}."
        )
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    proj = np.zeros((x.shape[0], 2))
    proj[:, :k] = x @ vt[:k].T
    var = s ** 2
    total = var.sum()
    ratio = np.zeros(2)
    if total > 0:
        ratio[:k] = var[:k] / total
    return proj, ratio


def plot_latent_scatter(mu, labels, path, title=None, figsize=(6.0, 6.0),
                        dpi=100, point_size=6.0):
    """Scatter plot of latent means coloured by a label or generative factor.

    Two-dimensional latents are drawn as they are; larger ones are projected
    on their first two principal components (`pca_2d`); one-dimensional
    ones on a line. Labels with at most 20 distinct integer (or any
    non-numeric) values are drawn as categories with a legend, other
    numeric labels on a colour scale with a colour bar. Needs matplotlib.

    Args:
        mu: `(n, d)` latent means (e.g. `encode_dataset(...)["mu"]`).
        labels: `(n,)` labels / factor values, or `None` for one colour.
        path: Destination `.png`, written atomically (`figsize * dpi`
            pixels).
        title: Optional title.
        figsize: `(width, height)` in inches.
        dpi: Dots per inch.
        point_size: Marker area.

    Returns:
        The path written.

    Example:

    ```python
    enc = encode_dataset(vae, x_test)
    plot_latent_scatter(enc["mu"], y_test, "latent.png")
    ```
    """
    owner = "plot_latent_scatter"
    mu = np.asarray(mu, dtype="float64")
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise ValueError(
            f"{owner}: `mu` must be a non-empty (n, latent_dim) array, "
            f"received shape {mu.shape}."
        )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != len(mu):
            raise ValueError(
                f"{owner}: `labels` must be a 1-D array with one entry per "
                f"point ({len(mu)}), received shape {labels.shape}."
            )
    point_size = check_finite_number(point_size, "point_size", owner,
                                     minimum=0.0, strict_minimum=True)
    dim = mu.shape[1]
    if dim == 2:
        xy = mu
        names = ("z[0]", "z[1]")
    elif dim == 1:
        xy = np.stack([mu[:, 0], np.zeros(len(mu))], axis=1)
        names = ("z[0]", "")
    else:
        xy, ratio = pca_2d(mu)
        names = tuple(f"PC{i + 1} ({100 * r:.1f}% of variance)"
                      for i, r in enumerate(ratio))
    fig = _new_figure(owner, figsize, dpi)
    ax = fig.add_subplot(1, 1, 1)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=point_size)
    elif _categorical(labels):
        for value in np.unique(labels):
            sel = labels == value
            ax.scatter(xy[sel, 0], xy[sel, 1], s=point_size, label=str(value))
        ax.legend(markerscale=2, fontsize="small")
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=point_size,
                        c=labels.astype("float64"), cmap="viridis")
        fig.colorbar(sc, ax=ax)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title)
    return _save_figure(fig, path, dpi)


def _categorical(labels):
    if not np.issubdtype(labels.dtype, np.number) or labels.dtype == bool:
        return True
    if np.issubdtype(labels.dtype, np.integer):
        return len(np.unique(labels)) <= _MAX_CATEGORIES
    return False
