"""VAE loss terms as plain functions on `keras.ops`.

Convention (see the README, "Loss convention"):

* The KL term is computed per sample, **summed over latent dimensions**.
* The reconstruction term is computed per sample, **summed over all non-batch
  elements** (`reduction="sum"`, a proper negative log-likelihood) or averaged
  over them (`reduction="mean"`, for recipes that used tiny `fact` weights).
* Both are averaged over the batch; `total = reco + beta * kl`.
* The unweighted negative ELBO (`reco + kl`) is comparable across `beta`.

All terms are computed in float32, whatever the inputs' dtype (mixed
precision safe).
"""

import math

import keras
from keras import ops

from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_range

RECONSTRUCTION_KINDS = ("bce", "mse")
REDUCTIONS = ("sum", "mean")
DEFAULT_LOGVAR_CLIP = (-30.0, 20.0)

__all__ = [
    "kl_divergence",
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


def _float32(x):
    x = ops.convert_to_tensor(x)
    if x.dtype != "float32":
        x = ops.cast(x, "float32")
    return x


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
    per_dim = 0.5 * (ops.square(mu) + ops.exp(logvar) - 1.0 - logvar)
    return ops.sum(per_dim, axis=-1)


def kl_divergence_per_dim(mu, logvar, logvar_clip=DEFAULT_LOGVAR_CLIP):
    """Like `kl_divergence` but without summing the latent axis."""
    mu = _float32(mu)
    logvar = _float32(logvar)
    if logvar_clip is not None:
        low, high = check_range(logvar_clip, "logvar_clip", "kl_divergence")
        logvar = ops.clip(logvar, low, high)
    return 0.5 * (ops.square(mu) + ops.exp(logvar) - 1.0 - logvar)


def _reduce_non_batch(values, reduction):
    axes = tuple(range(1, len(values.shape)))
    if not axes:
        return values
    if reduction == "sum":
        return ops.sum(values, axis=axes)
    return ops.mean(values, axis=axes)


def reconstruction_loss(x, x_hat, kind="bce", reduction="sum",
                        from_logits=False):
    """Per-sample reconstruction negative log-likelihood.

    Args:
        x: Target tensor `(batch, ...)`, values in `[0, 1]` for `"bce"`.
        x_hat: Decoder output of the same shape: probabilities, or logits
            when `from_logits=True`.
        kind: `"bce"` (Bernoulli / binary cross-entropy) or `"mse"`
            (squared error, a Gaussian NLL up to constants).
        reduction: `"sum"` sums over all non-batch elements (the proper NLL,
            the package default); `"mean"` averages over them, which is what
            older recipes with `fact` ~ 1e-4 used. See `fact_to_beta`.
        from_logits: Whether `x_hat` holds logits (a sigmoid is implied).

    Returns:
        float32 tensor of shape `(batch,)`.

    Example:

    >>> x = np.full((2, 4, 4, 1), 0.5, "float32")
    >>> reconstruction_loss(x, x, kind="mse").shape
    (2,)
    """
    check_choice(kind, "kind", RECONSTRUCTION_KINDS, "reconstruction_loss")
    check_choice(reduction, "reduction", REDUCTIONS, "reconstruction_loss")
    # Keras keeps the pre-activation tensor of a sigmoid output as
    # `_keras_logits` (as its own binary_crossentropy does): the logits form
    # is cheaper (no clip, one log) and exact where probabilities saturate.
    cached_logits = (
        getattr(x_hat, "_keras_logits", None)
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


def negative_elbo(x, x_hat, mu, logvar, kind="bce", reduction="sum",
                  from_logits=False):
    """Unweighted negative ELBO per sample: `reco + kl` (no `beta`).

    Unlike the training total, this value is comparable between models
    trained with different `beta`, so use it to select models.

    Args:
        x, x_hat, kind, reduction, from_logits: As in `reconstruction_loss`.
        mu, logvar: As in `kl_divergence`.

    Returns:
        float32 tensor of shape `(batch,)`.

    Example:

    >>> nelbo = negative_elbo(x, vae(x), mu, logvar)   # (batch,)
    """
    reco = reconstruction_loss(x, x_hat, kind, reduction, from_logits)
    return reco + kl_divergence(mu, logvar)


def vae_loss_terms(x, x_hat, mu, logvar, beta=1.0, kind="bce",
                   reduction="sum", from_logits=False):
    """Batch-averaged VAE loss terms.

    Args:
        x, x_hat, mu, logvar, kind, reduction, from_logits: As in
            `reconstruction_loss` and `kl_divergence`.
        beta: KL weight (a float or a scalar tensor/variable).

    Returns:
        Dict of float32 scalars: `reco_loss`, `kl_loss` (unweighted),
        `total_loss` (`reco + beta * kl`) and `neg_elbo` (`reco + kl`).
    """
    reco = ops.mean(reconstruction_loss(x, x_hat, kind, reduction, from_logits))
    kl = ops.mean(kl_divergence(mu, logvar))
    beta = _float32(beta)
    return {
        "reco_loss": reco,
        "kl_loss": kl,
        "total_loss": reco + beta * kl,
        "neg_elbo": reco + kl,
    }


def fact_to_beta(fact, data_shape):
    """Converts a `fact` tuned with `reduction="mean"` to the `beta` that gives
    the same optimum with `reduction="sum"`.

    With `reduction="mean"` the loss is `reco_sum / D + fact * kl`, which is
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
        The equivalent `fact` for `reduction="mean"`, as a float.

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
        kind: `"bce"` or `"mse"`.
        reduction_over_elements: `"sum"` (default) or `"mean"` over the
            non-batch elements of one sample (named so as not to clash with
            Keras' own batch `reduction` argument).
        from_logits: Whether predictions are logits.
        name: Loss name.

    Example:

    ```python
    vae.compile(optimizer="adam", loss=ReconstructionLoss("bce"))
    vae.fit(x, x, epochs=10)
    ```
    """

    def __init__(self, kind="bce", reduction_over_elements="sum",
                 from_logits=False, name="reconstruction_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.kind = check_choice(kind, "kind", RECONSTRUCTION_KINDS,
                                 "ReconstructionLoss")
        self.reduction_over_elements = check_choice(
            reduction_over_elements, "reduction_over_elements", REDUCTIONS,
            "ReconstructionLoss",
        )
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return reconstruction_loss(y_true, y_pred, self.kind,
                                   self.reduction_over_elements,
                                   self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update({
            "kind": self.kind,
            "reduction_over_elements": self.reduction_over_elements,
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
    if x.dtype not in ("float32", "float64"):
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
    dtype = "float64" if all(v.dtype == "float64"
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
