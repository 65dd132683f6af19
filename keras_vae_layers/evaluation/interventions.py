"""Disentanglement scores that need factor-conditioned batches.

* `beta_vae_score` (Higgins et al. 2017),
* `factor_vae_score` (Kim & Mnih 2018).

Both draw images from a **sampler** that holds one generative factor fixed
and varies the others, and encode them with a **representation**:

* `sampler(n, factor, value, seed=...) -> (images, factors)`: `n` images
  whose factor named `factor` is `value` (a scalar for all images, a
  length-`n` array of per-image values, or `None` for one random value
  shared by all), the other factors drawn at random; `factor=None` fixes
  nothing. `factors` is a dict of length-`n` arrays keyed by factor name.
  `datasets.sample_shapes_with_fixed_factor` is such a sampler for the
  built-in shapes set (bind its image options with `functools.partial`).
* `representation`: a Keras encoder or VAE (its `mu` is used, through
  `diagnostics.encode_dataset`), or any callable mapping images to an
  `(n, z_dim)` array.
"""

import keras
import numpy as np

from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.diagnostics import encode_dataset
from keras_vae_layers.evaluation._factors import check_latents
from keras_vae_layers.evaluation._factors import check_seed

__all__ = ["beta_vae_score", "factor_vae_score"]

# Votes (or pairs of batches) whose images are encoded in one call.
_VOTES_PER_CALL = 16


def _representation_fn(representation, owner):
    if isinstance(representation, keras.layers.Layer):
        def encode(images):
            mu = encode_dataset(representation, images, batch_size=256)["mu"]
            return mu.reshape(len(mu), -1)
    elif callable(representation):
        def encode(images):
            return np.asarray(representation(images))
    else:
        raise ValueError(
            f"{owner}: `representation` must be a Keras encoder / VAE or a "
            f"callable mapping images to (n, z_dim), received "
            f"{type(representation).__name__}."
        )

    def checked(images):
        z = check_latents(encode(images), owner, "representation(images)")
        if len(z) != len(images):
            raise ValueError(
                f"{owner}: `representation` returned {len(z)} rows for "
                f"{len(images)} images."
            )
        return z

    return checked


def _call_sampler(sampler, owner, n, factor, value, seed):
    out = sampler(n, factor, value, seed=seed)
    if not (isinstance(out, tuple) and len(out) == 2
            and isinstance(out[1], dict)):
        raise ValueError(
            f"{owner}: `sampler` must return (images, factors_dict), "
            f"received {type(out).__name__}."
        )
    images, factors = out
    if len(images) != n:
        raise ValueError(
            f"{owner}: `sampler` returned {len(images)} images, {n} asked."
        )
    return images, factors


def _setup(representation, sampler, factor_names, batch_size, num_train,
           num_eval, seed, owner):
    if not callable(sampler):
        raise ValueError(
            f"{owner}: `sampler` must be callable as sampler(n, factor, "
            f"value, seed=...), received {type(sampler).__name__}."
        )
    encode = _representation_fn(representation, owner)
    batch_size = check_positive_int(batch_size, "batch_size", owner,
                                    minimum=2)
    num_train = check_positive_int(num_train, "num_train", owner)
    num_eval = check_positive_int(num_eval, "num_eval", owner)
    rng = np.random.default_rng(check_seed(seed, owner))
    if factor_names is None:
        _, probe = _call_sampler(sampler, owner, 1, None, None,
                                 int(rng.integers(2**31)))
        factor_names = list(probe)
    factor_names = list(factor_names)
    if len(factor_names) < 2:
        raise ValueError(
            f"{owner}: need at least two factors to tell apart, received "
            f"factor_names={factor_names!r}."
        )
    return encode, batch_size, num_train, num_eval, rng, factor_names


def _seeds(rng, count):
    return [int(s) for s in rng.integers(2**31, size=count)]


def _beta_vae_points(encode, sampler, names, batch_size, count, rng, owner):
    """`count` (mean |z1 - z2| over a batch of pairs, fixed factor) points."""
    labels = rng.integers(len(names), size=count)
    features = []
    for start in range(0, count, _VOTES_PER_CALL):
        images = []
        for label in labels[start:start + _VOTES_PER_CALL]:
            s1, s2 = _seeds(rng, 2)
            first, f1 = _call_sampler(sampler, owner, batch_size, None, None,
                                      s1)
            name = names[label]
            if name not in f1:
                raise ValueError(
                    f"{owner}: factor {name!r} is not among the sampler's "
                    f"factors {sorted(f1)}."
                )
            second, _ = _call_sampler(sampler, owner, batch_size, name,
                                      f1[name], s2)
            images += [first, second]
        z = encode(np.concatenate(images))
        for pair in z.reshape(-1, 2, batch_size, z.shape[-1]):
            features.append(np.mean(np.abs(pair[0] - pair[1]), axis=0))
    return np.array(features), labels


def beta_vae_score(representation, sampler, factor_names=None, batch_size=64,
                   num_train=500, num_eval=250, seed=0):
    """The beta-VAE disentanglement score (Higgins et al. 2017).

    Each point picks a factor `y` at random and draws `batch_size` pairs of
    images that agree on `y` (each pair with its own value) and differ in
    the other factors; its feature is the mean absolute difference of the
    pairs' representations. A linear classifier (scikit-learn's
    `LogisticRegression`, the low-capacity classifier of the original
    paper) learns `y` from `num_train` such points; the score is its
    accuracy on `num_eval` new points. Chance is `1 / k`. The defaults are
    smaller than disentanglement_lib's (10,000 / 5,000 points) to run in
    seconds on a CPU; the score's sampling error is then a few percent.

    Args:
        representation: A Keras encoder or VAE (uses `mu`), or a callable
            mapping images to `(n, z_dim)`.
        sampler: `sampler(n, factor, value, seed=...) -> (images, factors)`
            (see the module docstring), e.g. `functools.partial(
            datasets.sample_shapes_with_fixed_factor, size=32,
            dtype="float32")`.
        factor_names: Factors to probe (default: every key the sampler
            returns).
        batch_size: Pairs per point, >= 2.
        num_train: Training points.
        num_eval: Evaluation points.
        seed: Seed of every draw (int >= 0 or `None`).

    Returns:
        Dict of floats `"train_accuracy"` and `"eval_accuracy"` (the score).

    Example:

    ```python
    sampler = functools.partial(datasets.sample_shapes_with_fixed_factor,
                                size=32, dtype="float32")
    beta_vae_score(vae, sampler)["eval_accuracy"]
    ```
    """
    owner = "beta_vae_score"
    from sklearn.linear_model import LogisticRegression

    encode, batch_size, num_train, num_eval, rng, names = _setup(
        representation, sampler, factor_names, batch_size, num_train,
        num_eval, seed, owner)
    x_train, y_train = _beta_vae_points(encode, sampler, names, batch_size,
                                        num_train, rng, owner)
    x_eval, y_eval = _beta_vae_points(encode, sampler, names, batch_size,
                                      num_eval, rng, owner)
    if len(np.unique(y_train)) < 2:
        raise ValueError(
            f"{owner}: the {num_train} training points hold a single "
            "factor; increase `num_train`."
        )
    model = LogisticRegression(max_iter=2000)
    model.fit(x_train, y_train)
    return {
        "train_accuracy": float(model.score(x_train, y_train)),
        "eval_accuracy": float(model.score(x_eval, y_eval)),
    }


def _factor_vae_votes(encode, sampler, names, batch_size, count, rng,
                      active, scale, owner):
    """`count` (argmin of normalised variance, fixed factor) votes."""
    labels = rng.integers(len(names), size=count)
    votes = []
    for start in range(0, count, _VOTES_PER_CALL):
        images = [
            _call_sampler(sampler, owner, batch_size, names[label], None,
                          s)[0]
            for label, s in zip(labels[start:start + _VOTES_PER_CALL],
                                _seeds(rng, _VOTES_PER_CALL))
        ]
        z = encode(np.concatenate(images))
        for batch in z.reshape(-1, batch_size, z.shape[-1]):
            local = np.var(batch[:, active] / scale, axis=0, ddof=1)
            votes.append(int(np.argmin(local)))
    return np.array(votes), labels


def factor_vae_score(representation, sampler, factor_names=None,
                     batch_size=64, num_train=500, num_eval=300,
                     num_variance_estimate=5000, prune_threshold=0.05,
                     seed=0):
    """The FactorVAE disentanglement score (Kim & Mnih 2018).

    Each latent is divided by its standard deviation over
    `num_variance_estimate` freely drawn images; latents whose variance is
    below `prune_threshold` (collapsed units) are left out. Each vote picks
    a factor at random, draws `batch_size` images with that factor fixed to
    one value, and names the (kept) latent with the smallest normalised
    variance. A majority-vote classifier maps each latent to the factor it
    was most often named for (on `num_train` votes); the score is its
    accuracy on `num_eval` new votes. Chance is about `1 / k`; the score
    is 0 when every latent collapsed. Defaults are smaller than
    disentanglement_lib's, for CPU budgets.

    Args:
        representation, sampler, factor_names, batch_size, seed: As in
            `beta_vae_score`.
        num_train: Training votes.
        num_eval: Evaluation votes.
        num_variance_estimate: Images for the global variances.
        prune_threshold: Minimum global variance of a kept latent (>= 0).

    Returns:
        Dict of floats `"train_accuracy"`, `"eval_accuracy"` (the score) and
        `"num_active"` (kept latents).

    Example:

    ```python
    factor_vae_score(vae, sampler)["eval_accuracy"]
    ```
    """
    owner = "factor_vae_score"
    encode, batch_size, num_train, num_eval, rng, names = _setup(
        representation, sampler, factor_names, batch_size, num_train,
        num_eval, seed, owner)
    num_variance_estimate = check_positive_int(
        num_variance_estimate, "num_variance_estimate", owner, minimum=2)
    prune_threshold = check_finite_number(prune_threshold, "prune_threshold",
                                          owner, minimum=0.0)
    images, _ = _call_sampler(sampler, owner, num_variance_estimate, None,
                              None, _seeds(rng, 1)[0])
    global_var = np.var(encode(images), axis=0, ddof=1)
    active = global_var >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0,
                "num_active": 0.0}
    scale = np.sqrt(global_var[active])
    v_train, y_train = _factor_vae_votes(encode, sampler, names, batch_size,
                                         num_train, rng, active, scale, owner)
    v_eval, y_eval = _factor_vae_votes(encode, sampler, names, batch_size,
                                       num_eval, rng, active, scale, owner)
    counts = np.zeros((int(active.sum()), len(names)), dtype=np.int64)
    np.add.at(counts, (v_train, y_train), 1)
    vote_for = counts.argmax(axis=1)
    return {
        "train_accuracy": float(np.mean(vote_for[v_train] == y_train)),
        "eval_accuracy": float(np.mean(vote_for[v_eval] == y_eval)),
        "num_active": float(active.sum()),
    }
