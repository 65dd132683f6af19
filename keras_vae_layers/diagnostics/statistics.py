"""Latent-space statistics: radii, active units, KL per dimension.

`compute_latent_statistics` turns encodings (numpy `z`, `mu`, `logvar`) into
statistics; `latent_statistics` encodes a dataset first. The same functions
back `LatentStatisticsLogger`, so numbers logged during training and numbers
computed afterwards agree.
"""

import math
import numbers

import keras
import numpy as np

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_range
from keras_vae_layers.diagnostics.encoding import encode_dataset

__all__ = [
    "radius_bin_edges",
    "compute_latent_statistics",
    "latent_statistics",
    "summary",
]


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
    # The package's KL formula (and logvar clip), averaged over the data.
    kl_per_dim = np.mean(keras.ops.convert_to_numpy(
        vae_losses.kl_divergence_per_dim(mu, logvar)), axis=0).astype("float64")
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
