"""VAE loss terms as plain functions on `keras.ops`.

Convention (see the README, "Loss convention"):

* The KL term is computed per sample, **summed over latent dimensions**.
* The reconstruction term is computed per sample, **summed over all non-batch
  elements** (`element_reduction="sum"`, a proper negative log-likelihood) or
  averaged over them (`element_reduction="mean"`, for recipes that used tiny
  `fact` weights).
* Both are averaged over the batch; `total = reco + beta * kl`.
* The unweighted negative ELBO (`reco + kl`) is comparable across `beta`.

This module is the one place the package's VAE math is written down: the KL
formula, the free-bits floor, the reparameterised sample and the
reconstruction terms. The layers, `VAEModel`, the diagnostics and the
evaluation functions call these functions.

All terms are computed in float32, whatever the inputs' dtype (mixed
precision safe).
"""

import math

import keras
from keras import ops

from keras_vae_layers import _keras_compat
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_range
from keras_vae_layers._validation import reject_unknown_arguments
from keras_vae_layers._validation import renamed

RECONSTRUCTION_LOSSES = ("bce", "mse")
"""Values of `reconstruction_loss`: Bernoulli cross-entropy or squared error."""
ELEMENT_REDUCTIONS = ("sum", "mean")
"""Values of `element_reduction`: over the elements of one sample."""
# Spellings of 0.1, kept for code that imported them.
RECONSTRUCTION_KINDS = RECONSTRUCTION_LOSSES
REDUCTIONS = ELEMENT_REDUCTIONS
DEFAULT_LOGVAR_CLIP = (-30.0, 20.0)

__all__ = [
    "kl_divergence",
    "kl_divergence_per_dim",
    "free_bits_kl",
    "reparameterize",
    "reconstruction_loss",
    "negative_elbo",
    "vae_loss_terms",
    "fact_to_beta",
    "beta_to_fact",
    "ReconstructionLoss",
    "gaussian_log_density",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
]

LOG_2PI = math.log(2.0 * math.pi)


def _dtype(x):
    # A string on every backend (torch tensors carry `torch.float32`).
    return keras.backend.standardize_dtype(x.dtype)


def _float32(x):
    x = ops.convert_to_tensor(x)
    if _dtype(x) != "float32":
        x = ops.cast(x, "float32")
    return x


def kl_divergence_per_dim(mu, logvar, logvar_clip=DEFAULT_LOGVAR_CLIP):
    """KL(N(mu, exp(logvar)) || N(0, 1)) of every latent element.

    The package's one KL formula: `0.5 * (mu^2 + exp(logvar) - 1 - logvar)`,
    in float32, with `logvar` clipped before `exp`.

    Args:
        mu: Tensor `(batch, ..., latent_dim)`, posterior means.
        logvar: Tensor of the same shape, posterior log-variances.
        logvar_clip: `(low, high)` range `logvar` is clipped to before `exp`
            (guards against overflow), or `None` to disable.

    Returns:
        float32 tensor of the shape of `mu`.

    Example:

    >>> kl = kl_divergence_per_dim(np.ones((1, 2)), np.zeros((1, 2)))
    >>> keras.ops.convert_to_numpy(kl)
    array([[0.5, 0.5]], dtype=float32)
    """
    mu = _float32(mu)
    logvar = _float32(logvar)
    if tuple(mu.shape) != tuple(logvar.shape):
        raise ValueError(
            "kl_divergence: `mu` and `logvar` must have the same shape, "
            f"received mu shape {tuple(mu.shape)} and logvar shape "
            f"{tuple(logvar.shape)}."
        )
    if logvar_clip is not None:
        low, high = check_range(logvar_clip, "logvar_clip", "kl_divergence")
        logvar = ops.clip(logvar, low, high)
    return 0.5 * (ops.square(mu) + ops.exp(logvar) - 1.0 - logvar)


def kl_divergence(mu, logvar, logvar_clip=DEFAULT_LOGVAR_CLIP):
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims.

    Args:
        mu: Tensor `(batch, ..., latent_dim)`, posterior means.
        logvar: Tensor of the same shape, posterior log-variances.
        logvar_clip: `(low, high)` range `logvar` is clipped to before `exp`
            (guards against overflow), or `None` to disable.

    Returns:
        float32 tensor of shape `(batch, ...)` (the latent axis summed out).

    Example:

    >>> kl = kl_divergence(np.zeros((2, 3)), np.zeros((2, 3)))
    >>> keras.ops.convert_to_numpy(kl)
    array([0., 0.], dtype=float32)
    """
    return ops.sum(kl_divergence_per_dim(mu, logvar, logvar_clip), axis=-1)


def weighted_mean(values, sample_weight=None):
    """Mean of per-sample `values`, weighted by `sample_weight` if given."""
    if sample_weight is None:
        return ops.mean(values)
    w = ops.cast(ops.reshape(sample_weight, ops.shape(values)), "float32")
    return ops.sum(values * w) / ops.maximum(ops.sum(w), 1e-12)


def free_bits_kl(kl_per_dim, free_bits, sample_weight=None):
    """The KL term with a free-bits floor (Kingma et al. 2016).

    Each latent dimension's KL is averaged over the batch (weighted by
    `sample_weight`), floored at `free_bits` nats, and the floored values
    are summed. With `free_bits=0` this is the batch-mean KL.

    Args:
        kl_per_dim: `kl_divergence_per_dim` output `(batch, ..., latent)`.
        free_bits: Non-negative floor per latent dimension, in nats.
        sample_weight: Optional per-sample weights `(batch,)`.

    Returns:
        float32 scalar.

    Example:

    >>> kl = kl_divergence_per_dim(mu, logvar)
    >>> trained = free_bits_kl(kl, free_bits=0.1)
    """
    latent = kl_per_dim.shape[-1]
    if sample_weight is None:
        per_dim = ops.mean(ops.reshape(kl_per_dim, (-1, latent)), axis=0)
    else:
        w = ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        flat = ops.reshape(kl_per_dim, (ops.shape(w)[0], -1, latent))
        per_dim = ops.sum(ops.mean(flat, axis=1) * w[:, None], axis=0)
        per_dim = per_dim / ops.maximum(ops.sum(w), 1e-12)
    if free_bits > 0.0:
        per_dim = ops.maximum(per_dim, free_bits)
    return ops.sum(per_dim)


def reparameterize(mu, logvar, eps, eps_clip=None,
                   logvar_clip=DEFAULT_LOGVAR_CLIP, eps_factor=1.0):
    """The reparameterised sample `mu + exp(0.5 * logvar) * eps`.

    Computed in float32: `logvar` is clipped to `logvar_clip` and `eps` to
    `[-eps_clip, eps_clip]` first (rare |eps| > 4 draws have pushed runs
    with small KL weights into another minimum). `SamplingLayer` draws
    `eps` with its seed generator; the diagnostics pass numpy noise.

    Args:
        mu: Means `(batch, ..., latent_dim)`.
        logvar: Log-variances of the same shape.
        eps: Standard normal noise of the same shape.
        eps_clip: Positive clamp for `eps`, or `None`.
        logvar_clip: `(low, high)` for `logvar`, or `None`.
        eps_factor: Multiplies the noise (`0` gives `z == mu`).

    Returns:
        float32 tensor `z` of the shape of `mu`.

    Example:

    >>> z = reparameterize(mu, logvar, np.random.standard_normal(mu.shape))
    """
    mu = _float32(mu)
    logvar = _float32(logvar)
    eps = _float32(eps)
    if logvar_clip is not None:
        logvar = ops.clip(logvar, logvar_clip[0], logvar_clip[1])
    if eps_clip is not None:
        eps = ops.clip(eps, -eps_clip, eps_clip)
    return mu + ops.exp(0.5 * logvar) * eps * eps_factor


def _reduce_non_batch(values, element_reduction):
    axes = tuple(range(1, len(values.shape)))
    if not axes:
        return values
    if element_reduction == "sum":
        return ops.sum(values, axis=axes)
    return ops.mean(values, axis=axes)


def reconstruction_loss(x, x_hat, reconstruction_loss="bce",
                        element_reduction="sum", from_logits=False,
                        **deprecated):
    """Per-sample reconstruction negative log-likelihood.

    Args:
        x: Target tensor `(batch, ...)`, values in `[0, 1]` for `"bce"`.
        x_hat: Decoder output of the same shape: probabilities, or logits
            when `from_logits=True`.
        reconstruction_loss: `"bce"` (Bernoulli / binary cross-entropy) or
            `"mse"` (squared error, a Gaussian NLL up to constants).
        element_reduction: `"sum"` sums over all non-batch elements (the
            proper NLL, the package default); `"mean"` averages over them,
            which is what older recipes with `fact` ~ 1e-4 used. See
            `fact_to_beta`.
        from_logits: Whether `x_hat` holds logits (a sigmoid is implied).
        **deprecated: `kind` and `reduction`, the 0.1 spellings of
            `reconstruction_loss` and `element_reduction`.

    Returns:
        float32 tensor of shape `(batch,)`.

    Example:

    >>> x = np.full((2, 4, 4, 1), 0.5, "float32")
    >>> reconstruction_loss(x, x, "mse").shape
    (2,)
    """
    owner = "reconstruction_loss"
    kind = renamed(deprecated, "kind", "reconstruction_loss",
                   reconstruction_loss, "bce", owner)
    reduction = renamed(deprecated, "reduction", "element_reduction",
                        element_reduction, "sum", owner)
    reject_unknown_arguments(deprecated, owner)
    check_choice(kind, "reconstruction_loss", RECONSTRUCTION_LOSSES, owner)
    check_choice(reduction, "element_reduction", ELEMENT_REDUCTIONS, owner)
    cached_logits = (
        _keras_compat.sigmoid_logits(x_hat)
        if kind == "bce" and not from_logits else None
    )
    x = _float32(x)
    x_hat = _float32(x_hat)
    if tuple(x.shape) != tuple(x_hat.shape) and None not in x.shape:
        raise ValueError(
            "reconstruction_loss: `x` and `x_hat` must have the same shape, "
            f"received x shape {tuple(x.shape)} and x_hat shape "
            f"{tuple(x_hat.shape)}."
        )
    if kind == "bce":
        if from_logits or cached_logits is not None:
            logits = x_hat if from_logits else _float32(cached_logits)
            # Numerically stable form of -[x log s(l) + (1-x) log(1-s(l))].
            values = (
                ops.relu(logits) - logits * x
                + ops.log1p(ops.exp(-ops.abs(logits)))
            )
        else:
            eps = keras.config.epsilon()
            p = ops.clip(x_hat, eps, 1.0 - eps)
            values = -(x * ops.log(p) + (1.0 - x) * ops.log(1.0 - p))
    else:
        if from_logits:
            x_hat = ops.sigmoid(x_hat)
        values = ops.square(x - x_hat)
    return _reduce_non_batch(values, reduction)


def negative_elbo(x, x_hat, mu, logvar, reconstruction_loss="bce",
                  element_reduction="sum", from_logits=False, **deprecated):
    """Unweighted negative ELBO per sample: `reco + kl` (no `beta`).

    Unlike the training total, this value is comparable between models
    trained with different `beta`, so use it to select models.

    Args:
        x, x_hat, reconstruction_loss, element_reduction, from_logits: As in
            `reconstruction_loss`.
        mu, logvar: As in `kl_divergence`.
        **deprecated: `kind`, `reduction` (0.1 spellings).

    Returns:
        float32 tensor of shape `(batch,)`.

    Example:

    >>> nelbo = negative_elbo(x, vae(x), mu, logvar)   # (batch,)
    """
    reco = _reconstruction(x, x_hat, reconstruction_loss, element_reduction,
                           from_logits, deprecated, "negative_elbo")
    return reco + kl_divergence(mu, logvar)


def _reconstruction(x, x_hat, kind, reduction, from_logits, deprecated,
                    owner):
    kind = renamed(deprecated, "kind", "reconstruction_loss", kind, "bce",
                   owner)
    reduction = renamed(deprecated, "reduction", "element_reduction",
                        reduction, "sum", owner)
    reject_unknown_arguments(deprecated, owner)
    return reconstruction_loss(x, x_hat, kind, reduction, from_logits)


def vae_loss_terms(x, x_hat, mu, logvar, beta=1.0, reconstruction_loss="bce",
                   element_reduction="sum", from_logits=False, free_bits=0.0,
                   sample_weight=None, **deprecated):
    """Batch-averaged VAE loss terms: what `VAEModel` trains and logs.

    Args:
        x, x_hat, reconstruction_loss, element_reduction, from_logits: As in
            `reconstruction_loss`.
        mu, logvar: As in `kl_divergence`.
        beta: KL weight (a float or a scalar tensor/variable).
        free_bits: Per-dimension KL floor of the trained term (nats; see
            `free_bits_kl`); the logged `kl_loss` stays the raw KL.
        sample_weight: Optional per-sample weights `(batch,)`.
        **deprecated: `kind`, `reduction` (0.1 spellings).

    Returns:
        Dict of float32 scalars: `reco_loss`, `kl_loss` (unweighted),
        `total_loss` (`reco + beta * kl_trained`) and `neg_elbo`
        (`reco + kl`).

    Example:

    >>> terms = vae_loss_terms(x, x_hat, mu, logvar, beta=0.5)
    >>> float(terms["neg_elbo"])
    """
    reco = _reconstruction(x, x_hat, reconstruction_loss, element_reduction,
                           from_logits, deprecated, "vae_loss_terms")
    kl_per_dim = kl_divergence_per_dim(mu, logvar)
    reco_mean = weighted_mean(reco, sample_weight)
    kl_mean = weighted_mean(ops.sum(kl_per_dim, axis=-1), sample_weight)
    if free_bits > 0.0:
        kl_trained = free_bits_kl(kl_per_dim, free_bits, sample_weight)
    else:
        kl_trained = kl_mean
    beta = _float32(beta)
    return {
        "reco_loss": reco_mean,
        "kl_loss": kl_mean,
        "total_loss": reco_mean + beta * kl_trained,
        "neg_elbo": reco_mean + kl_mean,
    }


def fact_to_beta(fact, data_shape):
    """Converts a `fact` tuned with `element_reduction="mean"` to the `beta`
    that gives the same optimum with `element_reduction="sum"`.

    With `element_reduction="mean"` the loss is `reco_sum / D + fact * kl`, which is
    `(reco_sum + fact * D * kl) / D`; so `beta = fact * D` where `D` is the
    number of elements per sample (e.g. 28*28 = 784 for MNIST).

    Args:
        fact: KL weight used with per-element-mean reconstruction.
        data_shape: Shape of one sample, without the batch axis.

    Returns:
        The equivalent `beta` as a float.

    Example:

    >>> fact_to_beta(1e-4, (28, 28, 1))
    0.0784
    """
    fact = check_finite_number(fact, "fact", "fact_to_beta", minimum=0.0)
    return fact * _num_elements(data_shape, "fact_to_beta")


def beta_to_fact(beta, data_shape):
    """Inverse of `fact_to_beta`: `fact = beta / D`.

    Args:
        beta: KL weight used with per-sample-sum reconstruction.
        data_shape: Shape of one sample, without the batch axis.

    Returns:
        The equivalent `fact` for `element_reduction="mean"`, as a float.

    Example:

    >>> round(beta_to_fact(0.0784, (28, 28, 1)), 10)
    0.0001
    """
    beta = check_finite_number(beta, "beta", "beta_to_fact", minimum=0.0)
    return beta / _num_elements(data_shape, "beta_to_fact")


def _num_elements(data_shape, owner):
    try:
        dims = [int(d) for d in data_shape]
    except (TypeError, ValueError):
        raise ValueError(
            f"{owner}: `data_shape` must be a sequence of positive ints (one "
            f"sample, no batch axis), received {data_shape!r}."
        ) from None
    if not dims or any(d < 1 for d in dims):
        raise ValueError(
            f"{owner}: `data_shape` must be a non-empty sequence of positive "
            f"ints, received {data_shape!r}."
        )
    n = 1
    for d in dims:
        n *= d
    return n


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class ReconstructionLoss(keras.losses.Loss):
    """`reconstruction_loss` as a Keras `Loss` for `model.compile(loss=...)`.

    Use it when you compose the layers into your own Functional VAE and
    train with `fit(x, x)`: the per-sample value follows the package
    convention (summed over all non-batch elements by default), and Keras
    averages it over the batch. Pair it with a `KLDivergenceLayer` whose
    `beta` is on the same scale.

    Args:
        reconstruction_loss: `"bce"` or `"mse"`.
        element_reduction: `"sum"` (default) or `"mean"` over the non-batch
            elements of one sample (Keras' own `reduction` argument, over
            the batch, keeps its meaning).
        from_logits: Whether predictions are logits.
        name: Loss name.
        **kwargs: Keras `Loss` arguments; `kind` and
            `reduction_over_elements` are accepted as the deprecated 0.1
            spellings.

    Example:

    ```python
    vae.compile(optimizer="adam", loss=ReconstructionLoss("bce"))
    vae.fit(x, x, epochs=10)
    ```
    """

    def __init__(self, reconstruction_loss="bce", element_reduction="sum",
                 from_logits=False, name="reconstruction_loss", **kwargs):
        owner = "ReconstructionLoss"
        reconstruction_loss = renamed(kwargs, "kind", "reconstruction_loss",
                                      reconstruction_loss, "bce", owner)
        element_reduction = renamed(
            kwargs, "reduction_over_elements", "element_reduction",
            element_reduction, "sum", owner)
        super().__init__(name=name, **kwargs)
        self.reconstruction_loss = check_choice(
            reconstruction_loss, "reconstruction_loss",
            RECONSTRUCTION_LOSSES, owner)
        self.element_reduction = check_choice(
            element_reduction, "element_reduction", ELEMENT_REDUCTIONS, owner)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return reconstruction_loss(y_true, y_pred, self.reconstruction_loss,
                                   self.element_reduction, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update({
            "reconstruction_loss": self.reconstruction_loss,
            "element_reduction": self.element_reduction,
            "from_logits": self.from_logits,
        })
        return config


# ---------------------------------------------------------------------------
# Log-densities with their normalising constants (for likelihood estimates).
# ---------------------------------------------------------------------------


def _float_tensor(x):
    # Keep float64 inputs in float64 (where the backend has it); everything
    # else is computed in float32, as the loss terms above.
    x = ops.convert_to_tensor(x)
    if _dtype(x) not in ("float32", "float64"):
        x = ops.cast(x, "float32")
    return x


def gaussian_log_density(x, mean, logvar):
    """Element-wise `log N(x; mean, exp(logvar))` with its normalising constant.

    `-0.5 * ((x - mean)^2 / exp(logvar) + logvar + log(2 pi))`, in float64
    when all inputs are float64 numpy arrays (and the backend supports
    float64; JAX needs `jax_enable_x64`), else in float32. No clipping:
    likelihood estimators need the exact density of the proposal.

    Args:
        x: Points.
        mean: Means, broadcastable to `x`.
        logvar: Log-variances, broadcastable to `x`.

    Returns:
        Tensor of the broadcast shape (nothing is summed).

    Example:

    >>> float(gaussian_log_density(0.0, 0.0, 0.0))   # -0.5 log(2 pi)
    -0.918938...
    """
    x, mean, logvar = (_float_tensor(v) for v in (x, mean, logvar))
    dtype = "float64" if all(_dtype(v) == "float64"
                             for v in (x, mean, logvar)) else "float32"
    x, mean, logvar = (ops.cast(v, dtype) for v in (x, mean, logvar))
    return -0.5 * (ops.square(x - mean) * ops.exp(-logvar) + logvar + LOG_2PI)


def bernoulli_log_likelihood(x, x_hat, from_logits=False):
    """Per-sample Bernoulli log-likelihood `log p(x | x_hat)`, in nats.

    Exactly `-reconstruction_loss(x, x_hat, "bce", "sum", from_logits)`:
    summed over all non-batch elements. For binary `x` this is the
    log-probability of the data. For grey values in (0, 1) it is the
    expected log-probability of a random binarisation of `x` (each pixel 1
    with probability `x`), not a normalised density of grey images: the
    continuous Bernoulli's normaliser is missing, so compare such values
    between models on the same data only.

    Args:
        x: Targets in `[0, 1]`, `(batch, ...)`.
        x_hat: Probabilities, or logits with `from_logits=True`.
        from_logits: Whether `x_hat` holds logits (exact where
            probabilities would saturate; probabilities are clipped to
            `[1e-7, 1 - 1e-7]`, as in training).

    Returns:
        float32 tensor `(batch,)`.

    Example:

    >>> x = np.array([[1.0, 0.0]], "float32")
    >>> float(bernoulli_log_likelihood(x, np.array([[0.0, 0.0]]),
    ...                                from_logits=True)[0])  # 2 log 0.5
    -1.386294...
    """
    return -reconstruction_loss(x, x_hat, "bce", "sum", from_logits)


def gaussian_log_likelihood(x, mean, sigma):
    """Per-sample `log N(x; mean, sigma^2 I)`, summed over non-batch elements.

    With `D` elements per sample this is
    `-sum((x - mean)^2) / (2 sigma^2) - D (log sigma + 0.5 log(2 pi))`.
    The package's `"mse"` loss (`reduction="sum"`) is the same Gaussian
    negative log-likelihood for `sigma^2 = 1/2` up to a constant:
    `reconstruction_loss(x, m, "mse") ==
    -gaussian_log_likelihood(x, m, 0.5 ** 0.5) - 0.5 * D * log(pi)`.

    Args:
        x: Targets `(batch, ...)`.
        mean: Decoder means of the same shape.
        sigma: Observation standard deviation, a positive number.

    Returns:
        Tensor `(batch,)` (float64 for float64 inputs, else float32).

    Example:

    >>> x = np.zeros((1, 3))
    >>> float(gaussian_log_likelihood(x, x, 1.0)[0])   # -1.5 log(2 pi)
    -2.756815...
    """
    sigma = check_finite_number(sigma, "sigma", "gaussian_log_likelihood",
                                minimum=0.0, strict_minimum=True)
    log_density = gaussian_log_density(x, mean, 2.0 * math.log(sigma))
    return _reduce_non_batch(log_density, "sum")
