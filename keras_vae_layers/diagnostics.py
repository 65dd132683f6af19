"""Latent-space diagnostics: radii, active units, KL per dimension, plots.

Everything here works on numpy: `encode_dataset` runs an encoder over a
dataset in batches (never moving the whole set onto the device at once) and
`compute_latent_statistics` turns the encodings into statistics.
`latent_statistics` does both. `summary` reduces a statistics dict to
scalar floats for logs and JSON, and the two plot helpers (matplotlib, an
optional extra: `pip install keras_vae_layers[plot]`) draw overlaid radius
histograms and 2-D latent scatter plots.

The same functions back `LatentStatisticsLogger` and `SampleGridLogger`, so
numbers logged during training and numbers computed afterwards agree.

Encoders may be given directly or through a model that holds one:

* a `VAEModel` (or any model with an `encoder` attribute),
* a Functional VAE whose encoder is a nested sub-model holding a
  `SamplingLayer`,
* a flat Functional VAE with a single `SamplingLayer` (its `[z, mu, logvar]`
  are read from inside the graph),
* an encoder returning `[z, mu, logvar]`, `[mu, logvar]` or a dict with keys
  `mu`, `logvar` (and optionally `z`).
"""

import math
import numbers
import os

import keras
import numpy as np

from keras_vae_layers import losses as vae_losses
# Finding the encoder and the decoder of a VAE: one implementation, shared
# with the checkpoint callback.
from keras_vae_layers._discovery import decoder_latent_size
from keras_vae_layers._discovery import encoder_latent_size
from keras_vae_layers._discovery import find_decoder
from keras_vae_layers._discovery import find_encoder
from keras_vae_layers._io import atomic_path
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._validation import check_range
from keras_vae_layers._validation import shapes_compatible

__all__ = [
    "find_encoder",
    "find_decoder",
    "encoder_latent_size",
    "decoder_latent_size",
    "predict_in_batches",
    "encode_dataset",
    "radius_bin_edges",
    "compute_latent_statistics",
    "latent_statistics",
    "summary",
    "pca_2d",
    "plot_radius_histograms",
    "plot_latent_scatter",
]

DEFAULT_EPS_CLIP = 5.0
"""Clamp of the numpy noise for `[mu, logvar]` encoders (as in the layer)."""

_LOGVAR_CLIP = vae_losses.DEFAULT_LOGVAR_CLIP
_RADIUS_KINDS = ("z", "mu")
_MAX_CATEGORIES = 20


# ----------------------------------------------------------------------------
# Batched forward passes
# ----------------------------------------------------------------------------


def _forward(model, batch):
    """One batch through `model`; numpy output(s)."""
    if isinstance(model, keras.Model):
        # `predict_on_batch` builds `predict_function` once and caches it, so
        # repeated calls (one per epoch in the callbacks) do not retrace.
        return model.predict_on_batch(batch)
    out = model(batch, training=False)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, out)


def predict_in_batches(model, x, batch_size=256, owner="predict_in_batches"):
    """Runs `model` over a numpy array in slices of `batch_size` rows.

    Returns:
        numpy output(s), concatenated along the batch axis, with the model's
        output structure (array, list or dict).
    """
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    outs = [_forward(model, x[i:i + batch_size])
            for i in range(0, len(x), batch_size)]
    return _concat(outs)


def _concat(outs):
    first = outs[0]
    if isinstance(first, dict):
        return {k: np.concatenate([o[k] for o in outs]) for k in first}
    if isinstance(first, (list, tuple)):
        return [np.concatenate([o[i] for o in outs])
                for i in range(len(first))]
    return np.concatenate(outs)


def _split(outputs, owner):
    if isinstance(outputs, dict):
        missing = {"mu", "logvar"} - set(outputs)
        if missing:
            raise ValueError(
                f"{owner}: a dict returned by the encoder needs the keys 'mu' "
                f"and 'logvar' (and optionally 'z'); received keys "
                f"{sorted(outputs)}."
            )
        return outputs.get("z"), outputs["mu"], outputs["logvar"]
    if isinstance(outputs, (list, tuple)) and len(outputs) in (2, 3):
        if len(outputs) == 3:
            z, mu, logvar = outputs
            if np.shape(z) != np.shape(mu):
                raise ValueError(
                    f"{owner}: the first of three encoder outputs must be `z` "
                    f"with the shape of `mu` {np.shape(mu)}, received shape "
                    f"{np.shape(z)}. If you passed a whole VAE that returns "
                    "[x_hat, mu, logvar], pass its encoder with `encoder=`."
                )
            return z, mu, logvar
        return (None,) + tuple(outputs)
    count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
    shapes = (
        [np.shape(o) for o in outputs]
        if isinstance(outputs, (list, tuple)) else np.shape(outputs)
    )
    raise ValueError(
        f"{owner}: the encoder must return [z, mu, logvar], [mu, logvar] or a "
        f"dict with keys 'z', 'mu', 'logvar'; received {count} output(s) of "
        f"shape {shapes}. If you passed a whole VAE, pass its encoder with "
        "`encoder=`."
    )


def _expected_input_shape(encoder):
    inputs = getattr(encoder, "inputs", None)
    if inputs and len(inputs) == 1:
        return tuple(inputs[0].shape)
    return None


def _check_batch_shape(shape, expected, owner, what):
    shape = tuple(shape)
    if len(shape) < 2 and expected is None:
        raise ValueError(
            f"{owner}: {what} must have rank >= 2 (batch, features...), "
            f"received shape {shape}."
        )
    if expected is None:
        return
    if not shapes_compatible(shape, expected):
        raise ValueError(
            f"{owner}: {what} of shape {shape} does not match the encoder "
            f"input shape {expected} (rank {len(expected)}, batch axis "
            "first). A tf.data.Dataset must be batched (`.batch(n)`)."
        )


def _is_array_like(x):
    return isinstance(x, (np.ndarray, list, tuple)) or (
        hasattr(x, "shape") and hasattr(x, "__array__")
    )


def _iter_batches(x):
    if isinstance(x, keras.utils.PyDataset):
        for i in range(len(x)):
            yield x[i]
        return
    yield from x


def _first(batch):
    # (x,), (x, y) and (x, y, sample_weight) batches: keep x.
    if isinstance(batch, (list, tuple)):
        if not batch:
            raise ValueError("encode_dataset: received an empty batch tuple.")
        return batch[0]
    if isinstance(batch, dict):
        raise ValueError(
            "encode_dataset: dict batches are not supported; map the dataset "
            "to (x,) batches first."
        )
    return batch


def encode_dataset(encoder_or_vae, x, batch_size=256, seed=0,
                   eps_clip=DEFAULT_EPS_CLIP):
    """Encodes a dataset batch by batch; returns numpy `z`, `mu`, `logvar`.

    Only one batch at a time is sent through the encoder (with
    `predict_on_batch`, whose traced function is built once and reused),
    so data sets larger than device memory work.

    `z` is the encoder's own sample when it returns `[z, mu, logvar]` (or a
    dict with `z`). For `[mu, logvar]` encoders `z` is drawn here with numpy:
    `z = mu + exp(0.5 * logvar) * clip(eps, -eps_clip, eps_clip)` with
    `eps ~ N(0, I)` from `numpy.random.default_rng(seed)` and `logvar`
    clipped to [-30, 20] as in `SamplingLayer`, so repeated calls agree.

    Args:
        encoder_or_vae: An encoder, or a VAE holding one (see
            `find_encoder`).
        x: A numpy array (or list / tensor) of samples with the batch axis
            first, or an iterable of batches: a `tf.data.Dataset`, a
            `keras.utils.PyDataset` or a generator. Batches may be `(x,)`,
            `(x, y)` or `(x, y, w)` tuples; only `x` is used.
        batch_size: Rows per forward pass for array input (iterables keep
            their own batching).
        seed: Seed of the numpy noise for `[mu, logvar]` encoders.
        eps_clip: Clamp of that noise (positive), or `None`.

    Returns:
        Dict of float32 numpy arrays `z`, `mu`, `logvar`, each of shape
        `(n, *latent_shape)`.

    Raises:
        ValueError: On empty data, data whose rank or shape does not match
            the encoder input, a bad `batch_size`, or encoder outputs that
            are not `[z, mu, logvar]`, `[mu, logvar]` or a dict.

    Example:

    ```python
    enc = encode_dataset(vae, x_val, batch_size=512)
    enc["mu"].shape   # (len(x_val), z_dim)
    ```
    """
    owner = "encode_dataset"
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    if eps_clip is not None:
        eps_clip = check_finite_number(eps_clip, "eps_clip", owner,
                                       minimum=0.0, strict_minimum=True)
    encoder = find_encoder(encoder_or_vae, owner)
    expected = _expected_input_shape(encoder)
    if _is_array_like(x):
        x = np.asarray(x)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(
                f"{owner}: `x` is empty (shape {x.shape}); need at least one "
                "sample."
            )
        _check_batch_shape(x.shape, expected, owner, "`x`")
        batches = (x[i:i + batch_size] for i in range(0, len(x), batch_size))
    else:
        if not isinstance(x, keras.utils.PyDataset):
            try:
                iter(x)
            except TypeError:
                raise ValueError(
                    f"{owner}: `x` must be an array or an iterable of "
                    f"batches, received {type(x).__name__}."
                ) from None
        batches = _iter_batches(x)
    zs, mus, logvars = [], [], []
    for batch in batches:
        batch = _first(batch)
        _check_batch_shape(np.shape(batch), expected, owner, "a batch")
        if np.shape(batch)[0] == 0:
            continue
        z, mu, logvar = _split(_forward(encoder, batch), owner)
        mus.append(np.asarray(mu, dtype="float32"))
        logvars.append(np.asarray(logvar, dtype="float32"))
        zs.append(None if z is None else np.asarray(z, dtype="float32"))
    if not mus:
        raise ValueError(
            f"{owner}: `x` yielded no samples; need at least one."
        )
    mu = np.concatenate(mus)
    logvar = np.concatenate(logvars)
    if mu.shape != logvar.shape:
        raise ValueError(
            f"{owner}: the encoder's `mu` and `logvar` differ in shape: "
            f"{mu.shape} vs {logvar.shape}."
        )
    if any(z is None for z in zs):
        z = _sample_numpy(mu, logvar, seed, eps_clip)
    else:
        z = np.concatenate(zs)
    return {"z": z, "mu": mu, "logvar": logvar}


def _sample_numpy(mu, logvar, seed, eps_clip):
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(mu.shape)
    if eps_clip is not None:
        eps = np.clip(eps, -eps_clip, eps_clip)
    lv = np.clip(logvar.astype("float64"), *_LOGVAR_CLIP)
    return (mu + np.exp(0.5 * lv) * eps).astype("float32")


# ----------------------------------------------------------------------------
# Statistics
# ----------------------------------------------------------------------------


def _as_2d(value, name, owner):
    arr = np.asarray(value, dtype="float64")
    if arr.ndim < 2:
        raise ValueError(
            f"{owner}: `{name}` must have shape (n, latent_dim), received "
            f"shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{owner}: `{name}` is empty (n=0).")
    # Extra latent axes (e.g. (n, h, w, c) latents) count as dimensions.
    return arr.reshape(arr.shape[0], -1)


def radius_bin_edges(radii, bin_width=0.5, hist_range=None,
                     owner="radius_bin_edges"):
    """Histogram bin edges of width `bin_width` for radius arrays.

    Args:
        radii: Iterable of 1-D radius arrays (all are covered when
            `hist_range` is `None`).
        bin_width: Positive bin width.
        hist_range: `(low, high)`; `None` spans `[0, k * bin_width]` with the
            smallest `k` that covers the largest radius. With an explicit
            range the last edge is the first multiple of `bin_width` (from
            `low`) at or above `high`; radii outside the edges are not
            counted.

    Returns:
        1-D float64 array of edges.
    """
    bin_width = check_finite_number(bin_width, "hist_bin_width", owner,
                                    minimum=0.0, strict_minimum=True)
    if hist_range is None:
        top = max((float(np.max(r)) for r in radii if np.size(r)),
                  default=0.0)
        low = 0.0
        n_bins = max(1, int(math.ceil(top / bin_width - 1e-9)))
        if low + n_bins * bin_width < top:
            n_bins += 1
    else:
        low, high = check_range(hist_range, "hist_range", owner)
        n_bins = max(1, int(math.ceil((high - low) / bin_width - 1e-9)))
    return low + bin_width * np.arange(n_bins + 1, dtype="float64")


def compute_latent_statistics(z, mu, logvar, active_threshold=0.01,
                              deviation_threshold=3.0, hist_bin_width=0.5,
                              hist_range=None):
    """Latent-space statistics from encodings (see `latent_statistics`).

    Args:
        z, mu, logvar: Arrays of shape `(n, latent_dim)` (further latent
            axes are flattened), e.g. from `encode_dataset`.
        active_threshold, deviation_threshold, hist_bin_width, hist_range:
            As in `latent_statistics`.

    Returns:
        The statistics dict described in `latent_statistics`.
    """
    owner = "compute_latent_statistics"
    z = _as_2d(z, "z", owner)
    mu = _as_2d(mu, "mu", owner)
    logvar = _as_2d(logvar, "logvar", owner)
    if not z.shape == mu.shape == logvar.shape:
        raise ValueError(
            f"{owner}: `z`, `mu` and `logvar` must have the same shape, "
            f"received {z.shape}, {mu.shape} and {logvar.shape}."
        )
    active_threshold = check_finite_number(
        active_threshold, "active_threshold", owner, minimum=0.0)
    deviation_threshold = check_finite_number(
        deviation_threshold, "deviation_threshold", owner, minimum=0.0)
    n, dim = mu.shape

    r_z = np.sqrt(np.sum(z * z, axis=1))
    r_mu = np.sqrt(np.sum(mu * mu, axis=1))
    edges = radius_bin_edges((r_z, r_mu), hist_bin_width, hist_range, owner)
    abs_dev = np.abs(r_z - r_mu)
    nonzero = r_mu > 0
    rel_dev = (
        float(np.mean(abs_dev[nonzero] / r_mu[nonzero]))
        if np.any(nonzero) else float("nan")
    )
    comp_dev = np.abs(z - mu)
    mu_var = np.var(mu, axis=0)
    active = np.flatnonzero(mu_var > active_threshold)
    lv = np.clip(logvar, *_LOGVAR_CLIP)
    # Same formula (and logvar clip) as losses.kl_divergence_per_dim.
    kl_per_dim = np.mean(0.5 * (mu * mu + np.exp(lv) - 1.0 - lv), axis=0)
    return {
        "n_samples": int(n),
        "z_dim": int(dim),
        "z_radius": r_z,
        "mu_radius": r_mu,
        "radius_bin_edges": edges,
        "z_radius_hist": np.histogram(r_z, bins=edges)[0],
        "mu_radius_hist": np.histogram(r_mu, bins=edges)[0],
        "z_radius_mean": float(np.mean(r_z)),
        "mu_radius_mean": float(np.mean(r_mu)),
        "radius_abs_deviation": float(np.mean(abs_dev)),
        "radius_rel_deviation": rel_dev,
        "logvar_min": float(np.min(logvar)),
        "logvar_mean": float(np.mean(logvar)),
        "logvar_max": float(np.max(logvar)),
        "max_abs_deviation": float(np.max(comp_dev)),
        "n_large_deviations": int(np.sum(comp_dev > deviation_threshold)),
        "mu_variance": mu_var,
        "active_units": int(active.size),
        "active_dims": active,
        "kl_per_dim": kl_per_dim,
        "kl_total": float(np.sum(kl_per_dim)),
        "kl_per_dim_mean": float(np.mean(kl_per_dim)),
    }


def latent_statistics(encoder_or_vae, x, batch_size=256, active_threshold=0.01,
                      deviation_threshold=3.0, hist_bin_width=0.5,
                      hist_range=None, seed=0):
    """Latent-space statistics of an encoder over a dataset.

    Encodes `x` with `encode_dataset` (batched) and returns, in a dict:

    * `n_samples`, `z_dim`: ints.
    * `z_radius`, `mu_radius`: per-sample L2 norms of `z` and `mu`, `(n,)`.
      In a well-regularised VAE with `z_dim = d`, the radius of `z`
      concentrates near `sqrt(d)`.
    * `radius_bin_edges` and `z_radius_hist`, `mu_radius_hist`: histogram
      counts of both radii over the same edges (see `radius_bin_edges`).
    * `z_radius_mean`, `mu_radius_mean`.
    * `radius_abs_deviation`: `mean(|r_z - r_mu|)`;
      `radius_rel_deviation`: `mean(|r_z - r_mu| / r_mu)` over samples with
      `r_mu > 0` (`nan` if there are none).
    * `logvar_min`, `logvar_mean`, `logvar_max`.
    * `max_abs_deviation`: the largest `|z - mu|` component, and
      `n_large_deviations`: how many components exceed
      `deviation_threshold`. Both in plain latent units (not in standard
      deviations), so they show how far the sampling noise moved `z`.
    * `mu_variance`: per-dimension variance of `mu` over the data (ddof 0);
      `active_units`: how many dimensions have `mu_variance >
      active_threshold` (Burda et al., 2016) and `active_dims`, their
      indices.
    * `kl_per_dim`: KL per latent dimension averaged over the data, with the
      package's `logvar` clip; `kl_total`: their sum (the mean per-sample
      KL, the `kl_loss` of training); `kl_per_dim_mean`: their mean.

    Args:
        encoder_or_vae: An encoder, or a VAE holding one (see
            `find_encoder`).
        x: Samples (array) or an iterable of batches, as in
            `encode_dataset`.
        batch_size: Rows per forward pass.
        active_threshold: Variance threshold for an active unit (>= 0).
        deviation_threshold: Threshold on `|z - mu|` components (>= 0).
        hist_bin_width: Radius histogram bin width (> 0).
        hist_range: Optional `(low, high)` of the radius histograms.
        seed: Seed for `z` of `[mu, logvar]` encoders (see
            `encode_dataset`).

    Returns:
        The dict above: numpy arrays and Python scalars. `summary()` keeps
        just the scalars.

    Raises:
        ValueError: On empty data, a wrong rank, `hist_bin_width <= 0`,
            `hist_range` with `low >= high`, or negative thresholds.

    Example:

    ```python
    stats = latent_statistics(vae, x_val)
    print(stats["active_units"], "of", stats["z_dim"], "units active")
    print(summary(stats))
    ```
    """
    owner = "latent_statistics"
    # Cheap argument checks before the (possibly long) encoding pass.
    check_finite_number(hist_bin_width, "hist_bin_width", owner, minimum=0.0,
                        strict_minimum=True)
    if hist_range is not None:
        check_range(hist_range, "hist_range", owner)
    check_finite_number(active_threshold, "active_threshold", owner,
                        minimum=0.0)
    check_finite_number(deviation_threshold, "deviation_threshold", owner,
                        minimum=0.0)
    enc = encode_dataset(encoder_or_vae, x, batch_size=batch_size, seed=seed)
    return compute_latent_statistics(
        enc["z"], enc["mu"], enc["logvar"], active_threshold=active_threshold,
        deviation_threshold=deviation_threshold,
        hist_bin_width=hist_bin_width, hist_range=hist_range,
    )


def summary(stats):
    """The scalar entries of a statistics dict, as Python floats.

    Arrays (radii, histograms, per-dimension values) are left out, so the
    result fits Keras `logs` and JSON. Counts become floats too.

    Args:
        stats: A dict from `latent_statistics`.

    Returns:
        Dict `name -> float`, in the order of `stats`.

    Example:

    ```python
    write_json_atomic("latent.json", summary(latent_statistics(vae, x)))
    ```
    """
    if not isinstance(stats, dict):
        raise ValueError(
            f"summary: `stats` must be a dict from latent_statistics, "
            f"received {type(stats).__name__}."
        )
    out = {}
    for key, value in stats.items():
        if isinstance(value, numbers.Number) or (
            isinstance(value, np.ndarray) and value.ndim == 0
        ):
            out[key] = float(value)
    return out


# ----------------------------------------------------------------------------
# Plots (matplotlib is optional)
# ----------------------------------------------------------------------------


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
