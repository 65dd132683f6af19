"""Importance-weighted estimates of a VAE's log-likelihood (Burda et al. 2016).

`log_likelihood` estimates `log p(x)` per sample with `K` draws from the
encoder's posterior `q(z|x)`:

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K

The estimate is a lower bound in expectation that tightens as `K` grows and
converges to `log p(x)`; `K = 1` is the single-sample ELBO. Everything runs
through `keras.ops` and numpy (no backend import), one decoder batch at a
time.
"""

import math
import sys
import time

import keras
import numpy as np
from keras import ops

from keras_vae_layers import losses as vae_losses
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.diagnostics.encoding import forward_batch
from keras_vae_layers.diagnostics import encode_dataset
from keras_vae_layers.evaluation._factors import check_seed

__all__ = ["log_likelihood", "bits_per_dim", "LIKELIHOODS"]

LIKELIHOODS = ("bernoulli", "gaussian")
"""Observation models `log_likelihood` knows."""

DEFAULT_SIGMA = math.sqrt(0.5)
"""Default Gaussian observation std: the one the `"mse"` loss implies."""

# One decoder call produces at most this many output elements by default
# (16 MB of float32), whatever the image size.
_DEFAULT_OUTPUT_ELEMENTS = 1 << 22
_MAX_DEFAULT_ROWS = 4096
# Seconds between progress lines on stderr (the first comes after one
# interval, so short runs print nothing).
_PROGRESS_INTERVAL = 10.0
_ZERO = np.float64(0.0)


class _Likelihood:
    """A VAE's encoder and its decoder's `log p(x|z)`, resolved once.

    The callback keeps one instance across epochs, so the decoder's cached
    predict function (and the logits view below) is built once.
    """

    def __init__(self, vae, likelihood=None, sigma=None,
                 owner="log_likelihood"):
        self.owner = owner
        for part in ("encoder", "decoder"):
            if not isinstance(getattr(vae, part, None), keras.layers.Layer):
                raise ValueError(
                    f"{owner}: `vae` must be a VAEModel (an object with "
                    f"Keras `encoder` and `decoder`), received {vae!r} of "
                    f"type {type(vae).__name__} without a usable `{part}`."
                )
        self.encoder = vae.encoder
        self.decoder = vae.decoder
        from_logits = getattr(vae, "from_logits", False)
        if likelihood is None:
            kind = getattr(vae, "reconstruction_loss", None)
            if kind not in ("bce", "mse"):
                raise ValueError(
                    f"{owner}: cannot infer the likelihood from `vae` (its "
                    f"reconstruction_loss is {kind!r}); pass likelihood="
                    f"'bernoulli' or 'gaussian'."
                )
            likelihood = "bernoulli" if kind == "bce" else "gaussian"
        self.likelihood = check_choice(likelihood, "likelihood", LIKELIHOODS,
                                       owner)
        if self.likelihood == "gaussian":
            self.sigma = DEFAULT_SIGMA if sigma is None else (
                check_finite_number(sigma, "sigma", owner, minimum=0.0,
                                    strict_minimum=True))
        elif sigma is not None:
            raise ValueError(
                f"{owner}: `sigma` only applies to likelihood='gaussian', "
                f"received sigma={sigma!r} with likelihood='bernoulli'."
            )
        else:
            self.sigma = None
        self.network = self.decoder
        self.outputs_logits = bool(from_logits)
        if self.likelihood == "bernoulli" and not from_logits:
            logits = _sigmoid_logits_model(self.decoder)
            if logits is not None:
                self.network, self.outputs_logits = logits, True

    def log_px(self, x_rows, z_rows):
        """`log p(x|z)` per row, float64 numpy `(rows,)`."""
        out = forward_batch(self.network, z_rows)
        if isinstance(out, (list, tuple, dict)):
            raise ValueError(
                f"{self.owner}: the decoder must return one tensor (the "
                f"reconstruction), received {type(out).__name__}."
            )
        if self.likelihood == "bernoulli":
            if not self.outputs_logits:
                low, high = float(np.min(out)), float(np.max(out))
                if low < 0.0 or high > 1.0:
                    raise ValueError(
                        f"{self.owner}: likelihood='bernoulli' needs decoder "
                        f"outputs in [0, 1] (probabilities), but `vae`'s "
                        f"decoder returned values in [{low:.4g}, {high:.4g}]."
                        " Build the VAEModel with from_logits=True if the "
                        "decoder outputs logits, or use likelihood='gaussian'."
                    )
            ll = vae_losses.bernoulli_log_likelihood(
                x_rows, out, from_logits=self.outputs_logits)
        else:
            mean = ops.sigmoid(out) if self.outputs_logits else out
            ll = vae_losses.gaussian_log_likelihood(x_rows, mean, self.sigma)
        return np.asarray(ops.convert_to_numpy(ll), dtype=np.float64)

    def check_data(self, x):
        x = np.asarray(x)
        if x.ndim < 2 or len(x) == 0:
            raise ValueError(
                f"{self.owner}: `x` must be a non-empty array (n, ...) with "
                f"the batch axis first, received shape {x.shape}."
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(
                x.dtype, np.complexfloating):
            raise ValueError(
                f"{self.owner}: `x` must hold real numbers, received dtype "
                f"{x.dtype}."
            )
        x = x.astype("float32")
        if not np.isfinite(x).all():
            raise ValueError(f"{self.owner}: `x` contains NaN or inf values.")
        if self.likelihood == "bernoulli" and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError(
                f"{self.owner}: likelihood='bernoulli' needs `x` in [0, 1], "
                f"received values in [{x.min():.4g}, {x.max():.4g}] (scale "
                "uint8 images by 1/255)."
            )
        return x


def _sigmoid_logits_model(decoder):
    """A view of `decoder` that stops before a final sigmoid `Activation`.

    Logits make the Bernoulli term exact where probabilities saturate (the
    probability form is clipped to [1e-7, 1 - 1e-7]). Returns `None` for
    decoders whose output is not such a layer (e.g. `Dense(activation=
    "sigmoid")`, or subclassed models); their probabilities are used.
    """
    outputs = getattr(decoder, "outputs", None)
    if not isinstance(decoder, keras.Model) or len(outputs or ()) != 1:
        return None
    for layer in reversed(decoder.layers):
        try:
            if layer.output is not outputs[0]:
                continue
        except (AttributeError, ValueError):
            continue
        if (isinstance(layer, keras.layers.Activation)
                and layer.activation is keras.activations.sigmoid):
            return keras.Model(decoder.inputs, layer.input,
                               name=f"{decoder.name}_logits")
        return None
    return None


def _logsumexp(w, axis=0):
    top = np.max(w, axis=axis)
    safe = np.where(np.isfinite(top), top, 0.0)
    total = np.sum(np.exp(w - np.expand_dims(safe, axis)), axis=axis)
    with np.errstate(divide="ignore"):
        return np.log(total) + safe


def _sum_latent(values, ndim):
    values = np.asarray(ops.convert_to_numpy(values), dtype=np.float64)
    return values.reshape(values.shape[:ndim] + (-1,)).sum(axis=-1)


class _Progress:
    def __init__(self, owner, total, enabled):
        self.owner, self.total, self.enabled = owner, total, enabled
        self.start = self.last = time.monotonic()

    def update(self, done):
        now = time.monotonic()
        if not self.enabled or now - self.last < _PROGRESS_INTERVAL:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed * (self.total - done) / max(done, 1)
        print(f"{self.owner}: {done:,}/{self.total:,} decoder rows "
              f"({100.0 * done / self.total:.1f}%), {elapsed:.0f} s elapsed, "
              f"~{left:.0f} s left", file=sys.stderr, flush=True)


def _estimate(model, x, num_samples, batch_size, seed, verbose):
    owner = model.owner
    num_samples = check_positive_int(num_samples, "num_samples", owner)
    x = model.check_data(x)
    entropy = check_seed(seed, owner)
    if entropy is None:
        entropy = np.random.SeedSequence().entropy
    n = len(x)
    elements = int(np.prod(x.shape[1:]))
    if batch_size is None:
        rows = max(1, min(_MAX_DEFAULT_ROWS,
                          _DEFAULT_OUTPUT_ELEMENTS // elements))
    else:
        rows = check_positive_int(batch_size, "batch_size", owner)
    enc = encode_dataset(model.encoder, x, batch_size=min(rows, 1024))
    mu = enc["mu"].astype(np.float64)
    # The proposal is the one the model samples from: logvar clipped as in
    # SamplingLayer, but no clamp on eps (that would change its density).
    logvar = np.clip(enc["logvar"].astype(np.float64),
                     *vae_losses.DEFAULT_LOGVAR_CLIP)
    latent_shape = mu.shape[1:]
    n_chunk = min(n, rows)
    k_chunk = max(1, min(num_samples, rows // n_chunk))
    progress = _Progress(owner, n * num_samples, bool(verbose))
    result = np.empty(n, dtype=np.float64)
    done = 0
    for start in range(0, n, n_chunk):
        xs = x[start:start + n_chunk]
        m = len(xs)
        mu_c, lv_c = mu[start:start + m], logvar[start:start + m]
        # One generator per data point: the draws do not depend on
        # `batch_size`, so changing it (for memory) keeps the estimate.
        gens = [np.random.default_rng([entropy, start + i]) for i in range(m)]
        total = np.full(m, -np.inf)
        for k0 in range(0, num_samples, k_chunk):
            kk = min(k_chunk, num_samples - k0)
            eps = np.stack([g.standard_normal((kk,) + latent_shape)
                            for g in gens], axis=1)
            z = mu_c + np.exp(0.5 * lv_c) * eps
            log_q = _sum_latent(
                vae_losses.gaussian_log_density(z, mu_c, lv_c), 2)
            log_prior = _sum_latent(
                vae_losses.gaussian_log_density(z, _ZERO, _ZERO), 2)
            x_rows = np.broadcast_to(xs, (kk,) + xs.shape).reshape(
                (kk * m,) + xs.shape[1:])
            z_rows = z.reshape((kk * m,) + latent_shape).astype("float32")
            log_px = model.log_px(x_rows, z_rows).reshape(kk, m)
            total = np.logaddexp(total,
                                 _logsumexp(log_px + log_prior - log_q))
            done += kk * m
            progress.update(done)
        result[start:start + m] = total - math.log(num_samples)
    return result


def log_likelihood(vae, x, num_samples=1000, batch_size=None, seed=None,
                   likelihood=None, sigma=None, verbose=1):
    """Importance-weighted estimate of `log p(x)` per sample, in nats.

    For each sample, `K = num_samples` latent points `z_k ~ q(z|x) =
    N(mu, exp(logvar))` are drawn from the encoder's posterior (no clamp on
    the noise: the estimator needs the proposal's true density; `logvar` is
    clipped to [-30, 20] as when the model samples), and

        log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)]
                    - log K

    with the prior `p(z) = N(0, I)`. The estimate is unbiased for `p(x)`,
    a lower bound on `log p(x)` in expectation, and converges to it as `K`
    grows; `num_samples=1` is the single-sample ELBO (whose mean is the
    model's `-neg_elbo` for the Bernoulli likelihood).

    Observation models (`likelihood`):

    * `"bernoulli"` (default for `reconstruction_loss="bce"`):
      `log p(x|z) = -BCE` summed over elements, exact for binary data. For
      grey values it is the expected log-probability of a random
      binarisation of `x`, not a normalised density of grey images: compare
      such numbers between models on the same data only, and binarise the
      data for figures comparable with the literature. Logits are used when
      the model has `from_logits=True` or the decoder ends in a sigmoid
      `Activation` layer (as the package builder's does); otherwise the
      probabilities, which must lie in [0, 1].
    * `"gaussian"` (default for `"mse"`): `log N(x; x_hat, sigma^2 I)` with
      its normalising constant. `sigma` defaults to `sqrt(1/2)`: the
      package's `"mse"` loss is the Gaussian negative log-likelihood with
      `sigma^2 = 1/2` up to the constant `0.5 * D * log(pi)`.

    Memory stays bounded: the data is encoded once, then decoded in batches
    of `batch_size` (data point, latent sample) rows; `K x n x D` values
    are never held at once. The log-weights are accumulated with a running
    float64 `logsumexp`. With a fixed `seed` the result is deterministic, and
    changing `batch_size` changes it only by float32 rounding in the decoder
    (each data point has its own generator, so the draws are the same).

    Args:
        vae: A `VAEModel` (any object with Keras `encoder` and `decoder`;
            `from_logits` and `reconstruction_loss` are read if present).
        x: numpy array `(n, ...)` of samples in the model's input scale
            (`[0, 1]` for the Bernoulli likelihood).
        num_samples: Importance samples `K` per data point, >= 1.
        batch_size: Rows per decoder call (default: as many as keep one
            output under 4M elements, at most 4096).
        seed: Non-negative int for reproducible draws, or `None`.
        likelihood: `"bernoulli"`, `"gaussian"` or `None` (follow
            `vae.reconstruction_loss`).
        sigma: Gaussian observation std (`"gaussian"` only).
        verbose: If truthy, print progress to stderr every 10 s of a long
            run.

    Returns:
        float64 numpy array `(n,)` of `log p(x)` estimates in nats.

    Raises:
        ValueError: For `num_samples < 1`, empty or non-finite `x`, `x`
            outside [0, 1] or decoder outputs outside [0, 1] with the
            Bernoulli likelihood, or an unknown `likelihood`.

    Example:

    ```python
    ll = log_likelihood(vae, x_test[:1000], num_samples=500, seed=0)
    print(f"test log-likelihood {ll.mean():.2f} nats")
    ```
    """
    model = _Likelihood(vae, likelihood, sigma, "log_likelihood")
    return _estimate(model, x, num_samples, batch_size, seed, verbose)


def bits_per_dim(vae, x, num_samples=1000, batch_size=None, seed=None,
                 likelihood=None, sigma=None, bin_width=None, verbose=1):
    """`-log p(x) / (D ln 2)` per sample: the estimate in bits per dimension.

    `D` is the number of elements of one sample (pixels x channels).
    With the Bernoulli likelihood `p(x)` is a probability of binary data,
    so this is the code length of the data in bits per dimension.

    With the Gaussian likelihood `p(x)` is a density. For discrete data
    such as 8-bit images scaled to [0, 1], pass the width of one
    quantisation bin (`bin_width=1/255` for `k / 255`, `1/256` for
    dequantised `(k + u) / 256`): the probability of the bin is then taken
    as `p(x) * bin_width^D` (the density constant over a bin), and the
    result is `-(log p(x) + D log(bin_width)) / (D ln 2)`, comparable with
    published bits/dim of 8-bit data (at most 8 for a uniform model).
    Without `bin_width`, a density's bits/dim can be negative.

    Args:
        vae, x, num_samples, batch_size, seed, likelihood, sigma, verbose:
            As in `log_likelihood`.
        bin_width: Quantisation bin width of the data (Gaussian only), or
            `None`.

    Returns:
        float64 numpy array `(n,)`.

    Example:

    ```python
    bpd = bits_per_dim(vae, x_test[:500], num_samples=200, seed=0)
    ```
    """
    owner = "bits_per_dim"
    model = _Likelihood(vae, likelihood, sigma, owner)
    if bin_width is not None:
        if model.likelihood != "gaussian":
            raise ValueError(
                f"{owner}: `bin_width` applies to the Gaussian (continuous) "
                f"likelihood only; the Bernoulli likelihood is already a "
                f"probability. Received bin_width={bin_width!r}."
            )
        bin_width = check_finite_number(bin_width, "bin_width", owner,
                                        minimum=0.0, strict_minimum=True)
    ll = _estimate(model, x, num_samples, batch_size, seed, verbose)
    dims = int(np.prod(np.shape(x)[1:]))
    if bin_width is not None:
        ll = ll + dims * math.log(bin_width)
    return -ll / (dims * math.log(2.0))
