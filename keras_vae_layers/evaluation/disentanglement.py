"""Disentanglement metrics computed from latents and ground-truth factors.

* `mutual_information_gap` (MIG; Chen et al. 2018),
* `dci` (disentanglement, completeness, informativeness; Eastwood &
  Williams 2018),
* `sap_score` (Kumar et al. 2018).

Each takes `latents`, an `(n, z_dim)` array (typically the posterior means
`mu` of a test set), and `factors`, an `(n, k)` array of discrete factor
values or the dict `load_shapes` returns; continuous factors are cut into
`factor_bins` equal-width bins (see `discretize_factors`). All are
invariant to a permutation of the latent dimensions.
"""

import numpy as np

from keras_vae_layers._validation import check_positive_int
from keras_vae_layers.evaluation._factors import DEFAULT_FACTOR_BINS
from keras_vae_layers.evaluation._factors import check_latents_and_factors
from keras_vae_layers.evaluation._factors import discretize_factors
from keras_vae_layers.evaluation._factors import entropy
from keras_vae_layers.evaluation._factors import histogram_codes
from keras_vae_layers.evaluation._factors import mutual_information
from keras_vae_layers.evaluation._factors import split_indices

__all__ = [
    "mutual_information_gap",
    "dci",
    "sap_score",
    "discretize_factors",
]


def _top_two_gap(matrix):
    """Per column: largest minus second-largest entry (0 if one row)."""
    ordered = -np.sort(-matrix, axis=0)
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return ordered[0] - second


def mutual_information_gap(latents, factors, num_bins=20,
                           factor_bins=DEFAULT_FACTOR_BINS):
    """Mutual information gap (MIG; Chen et al. 2018).

    Each latent dimension is cut into `num_bins` equal-width bins (as in
    disentanglement_lib). With the plug-in mutual information `I(z_i; v_j)`
    and factor entropy `H(v_j)` (nats), the score is the mean over factors
    of `(I(z_(1); v_j) - I(z_(2); v_j)) / H(v_j)`, where `z_(1)`, `z_(2)`
    are the two latents most informative about `v_j` (the second counts as 0
    for a one-dimensional latent). 1: each factor is captured by one latent
    alone; 0: by none, or by several equally. Plug-in estimates are biased
    upwards on small samples: use a few thousand points.

    Args:
        latents: `(n, z_dim)` array, typically the posterior means.
        factors: `(n, k)` array of discrete factor values or a dict of
            length-`n` arrays (as `load_shapes` returns).
        num_bins: Bins per latent dimension, an int >= 2.
        factor_bins: Bins per continuous factor, an int >= 2.

    Returns:
        The MIG as a float in [0, 1].

    Raises:
        ValueError: Latents and factors of different lengths, NaN or inf,
            or a factor with a single value.

    Example:

    >>> v = np.random.default_rng(0).integers(0, 5, size=(2000, 2))
    >>> round(mutual_information_gap(v.astype(float), v), 2)
    1.0
    """
    owner = "mutual_information_gap"
    num_bins = check_positive_int(num_bins, "num_bins", owner, minimum=2)
    z, codes, _ = check_latents_and_factors(latents, factors, factor_bins,
                                            owner)
    z_codes = histogram_codes(z, num_bins)
    mi = np.array([[mutual_information(z_codes[:, i], codes[:, j])
                    for j in range(codes.shape[1])]
                   for i in range(z.shape[1])])
    h = np.array([entropy(codes[:, j]) for j in range(codes.shape[1])])
    return float(np.mean(_top_two_gap(mi) / h))


def _base_entropy(p, base):
    """Entropy of the columns of the non-negative matrix `p`, in log-`base`
    units (1 for uniform columns, 0 for one-hot ones)."""
    total = p.sum(axis=0, keepdims=True)
    q = np.where(total > 0, p / np.where(total > 0, total, 1.0),
                 1.0 / p.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log(q), 0.0)
    return -terms.sum(axis=0) / np.log(base)


def dci(latents, factors, factor_bins=DEFAULT_FACTOR_BINS, test_fraction=0.25,
        n_estimators=30, seed=0):
    """Disentanglement, completeness and informativeness (Eastwood &
    Williams 2018).

    One classifier per factor predicts it from all latents; its feature
    importances fill column `j` of the importance matrix `R` (`z_dim x k`).
    The classifier is scikit-learn's `RandomForestClassifier`
    (`n_estimators` trees, all features considered at every split, leaves
    of at least 5 samples), with its impurity-based importances: a
    non-linear, fast model, one of the two the original paper used.
    disentanglement_lib uses gradient-boosted trees instead, which give
    importances of the same kind but take far longer on a CPU; numbers from
    the two are similar in ranking, not identical.

    * disentanglement: per latent `i`, `1 - H_k(R[i] / sum R[i])` (entropy
      in base `k`), averaged with weights `sum R[i] / sum R`. 1 when each
      latent informs about one factor only.
    * completeness: per factor `j`, `1 - H_z_dim(R[:, j] / sum R[:, j])`,
      averaged with weights `sum R[:, j] / sum R`. 1 when each factor is
      captured by one latent only.
    * informativeness: the classifiers' mean accuracy on the held-out
      `test_fraction` of the samples (as disentanglement_lib reports it;
      higher is better, chance is the majority-class rate).

    With one factor the disentanglement is 1, with one latent the
    completeness is 1 (the base-1 entropy is undefined).

    Args:
        latents: `(n, z_dim)` array.
        factors: `(n, k)` array of discrete values or a dict of arrays.
        factor_bins: Bins per continuous factor.
        test_fraction: Held-out share for the informativeness, in (0, 1).
        n_estimators: Trees per forest.
        seed: Seed of the split and the forests (int >= 0 or `None`).

    Returns:
        Dict of floats `"disentanglement"`, `"completeness"`,
        `"informativeness"`, plus `"importance"`, the matrix `R` as nested
        lists (rows: latents, columns: factors).

    Example:

    ```python
    scores = dci(mu_test, factors_test)
    scores["disentanglement"], scores["completeness"]
    ```
    """
    owner = "dci"
    from sklearn.ensemble import RandomForestClassifier

    n_estimators = check_positive_int(n_estimators, "n_estimators", owner)
    z, codes, _ = check_latents_and_factors(latents, factors, factor_bins,
                                            owner)
    train, test = split_indices(len(z), test_fraction, seed, owner)
    num_latents, num_factors = z.shape[1], codes.shape[1]
    importance = np.zeros((num_latents, num_factors))
    accuracy = []
    for j in range(num_factors):
        forest = RandomForestClassifier(
            n_estimators=n_estimators, max_features=None, min_samples_leaf=5,
            random_state=seed, n_jobs=1)
        forest.fit(z[train], codes[train, j])
        importance[:, j] = np.abs(forest.feature_importances_)
        accuracy.append(float(forest.score(z[test], codes[test, j])))
    total = importance.sum()
    weights = importance if total > 0 else np.ones_like(importance)
    if num_factors > 1:
        per_code = 1.0 - _base_entropy(importance.T, num_factors)
        code_weight = weights.sum(axis=1) / weights.sum()
        disentanglement = float(np.sum(per_code * code_weight))
    else:
        disentanglement = 1.0
    if num_latents > 1:
        per_factor = 1.0 - _base_entropy(importance, num_latents)
        factor_weight = weights.sum(axis=0) / weights.sum()
        completeness = float(np.sum(per_factor * factor_weight))
    else:
        completeness = 1.0
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness": float(np.mean(accuracy)),
        "importance": importance.tolist(),
    }


def _histogram_classifier_accuracy(z_train, y_train, z_test, y_test,
                                   num_bins):
    """Held-out accuracy of predicting `y` from one latent by the majority
    class of its bin (bins fitted on the train split)."""
    train_bins = histogram_codes(z_train[:, None], num_bins)[:, 0]
    test_bins = histogram_codes(z_test[:, None], num_bins,
                                edges_from=z_train[:, None])[:, 0]
    classes = int(max(y_train.max(), y_test.max())) + 1
    counts = np.bincount(train_bins * classes + y_train,
                         minlength=num_bins * classes).reshape(num_bins,
                                                               classes)
    majority = np.bincount(y_train, minlength=classes).argmax()
    prediction = np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1),
                          majority)
    return float(np.mean(prediction[test_bins] == y_test))


def sap_score(latents, factors, num_bins=20, factor_bins=DEFAULT_FACTOR_BINS,
              test_fraction=0.25, seed=0):
    """Separated attribute predictability (SAP; Kumar et al. 2018).

    For every latent `i` and factor `j`, a one-dimensional classifier
    predicts `v_j` from `z_i` alone and is scored by its accuracy on the
    held-out `test_fraction`. The SAP is the mean over factors of the gap
    between the best and the second-best latent's accuracy (the second
    counts as 0 for a one-dimensional latent).

    The classifier cuts `z_i` into `num_bins` equal-width bins on the train
    split and predicts each bin's majority class: numpy only, deterministic
    and, unlike disentanglement_lib's linear SVM per dimension, not limited
    to codes that order the classes along the axis. The numbers are
    therefore not directly comparable with disentanglement_lib's. A perfect
    code scores `1 - (accuracy of the best other latent)`, which for
    independent factors is close to `1 - majority-class rate`, not 1.

    Args:
        latents: `(n, z_dim)` array.
        factors: `(n, k)` array of discrete values or a dict of arrays.
        num_bins: Bins of the per-latent classifier, an int >= 2.
        factor_bins: Bins per continuous factor.
        test_fraction: Held-out share, in (0, 1).
        seed: Seed of the train / test split.

    Returns:
        The SAP score as a float in [0, 1].

    Example:

    ```python
    sap = sap_score(mu_test, factors_test)
    ```
    """
    owner = "sap_score"
    num_bins = check_positive_int(num_bins, "num_bins", owner, minimum=2)
    z, codes, _ = check_latents_and_factors(latents, factors, factor_bins,
                                            owner)
    train, test = split_indices(len(z), test_fraction, seed, owner)
    scores = np.array([
        [_histogram_classifier_accuracy(z[train, i], codes[train, j],
                                        z[test, i], codes[test, j], num_bins)
         for j in range(codes.shape[1])]
        for i in range(z.shape[1])
    ])
    return float(np.mean(_top_two_gap(scores)))
