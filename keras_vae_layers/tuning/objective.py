"""Tuning objectives: which `VAEModel` metric a search minimises.

Every metric `VAEModel` logs is a loss, so every objective is "min".
`val_neg_elbo` (the unweighted negative ELBO `reco + kl`) is the default:
with `beta` in the search space, `val_loss` (`reco + beta * kl`) always
favours a smaller `beta` whatever the model's quality.
"""

import keras_tuner

from keras_vae_layers.models.vae import LOGGED_METRICS

__all__ = [
    "BETA_WEIGHTED_OBJECTIVES",
    "DEFAULT_OBJECTIVE",
    "OBJECTIVE_NAMES",
    "completed_trials",
    "vae_objective",
]

DEFAULT_OBJECTIVE = "val_neg_elbo"
"""Unweighted validation negative ELBO: comparable across `beta` values."""

OBJECTIVE_NAMES = tuple(m for m in LOGGED_METRICS if m != "beta")
"""Metrics `VAEModel` logs that can serve as a tuning objective (all "min")."""

BETA_WEIGHTED_OBJECTIVES = ("loss", "total_loss", "val_loss",
                            "val_total_loss")
"""Objectives that contain `beta * kl` and so favour a small `beta`."""


def vae_objective(name=DEFAULT_OBJECTIVE):
    """Returns the `keras_tuner.Objective` for a metric `VAEModel` logs.

    Every metric `VAEModel` logs is a loss, so the direction is always
    `"min"`; this saves spelling it out (keras-tuner cannot infer it for
    names such as `val_neg_elbo`).

    Args:
        name: A metric name from `OBJECTIVE_NAMES` (default
            `"val_neg_elbo"`, the unweighted validation negative ELBO, which
            is comparable across `beta` values; `"val_reco_loss"` is the
            alternative when only reconstructions matter), or a
            `keras_tuner.Objective` for one of them with direction `"min"`.

    Returns:
        A `keras_tuner.Objective(name, direction="min")`.

    Raises:
        ValueError: For a name `VAEModel` does not log (the message lists
            the names it logs), or an `Objective` with direction `"max"`.

    Example:

    ```python
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective=vae_objective("val_reco_loss"), max_trials=10)
    ```
    """
    direction = "min"
    if isinstance(name, keras_tuner.Objective):
        direction = name.direction
        name = name.name
    if not isinstance(name, str) or name not in OBJECTIVE_NAMES:
        hint = ""
        if isinstance(name, str) and name in ("beta", "val_beta"):
            hint = " `beta` is a hyperparameter, not a quality measure."
        raise ValueError(
            f"vae_objective: unknown objective {name!r}; VAEModel logs "
            f"{', '.join(OBJECTIVE_NAMES)} (the `val_*` ones need "
            f"`validation_data`).{hint}"
        )
    if direction != "min":
        raise ValueError(
            f"vae_objective: objective {name!r} is a loss and must be "
            f"minimised; received direction {direction!r}, expected 'min'."
        )
    return keras_tuner.Objective(name, direction="min")


def completed_trials(tuner):
    """Returns the tuner's trials whose status is `COMPLETED`.

    keras-tuner catches exceptions raised inside a trial, marks the trial
    `FAILED` or `INVALID` and carries on, so a search can "finish" without
    a single trained model. Use this to check.

    Args:
        tuner: A `keras_tuner.Tuner` after `search()`.

    Returns:
        A list of `keras_tuner.engine.trial.Trial`, in trial-id order.
    """
    trials = tuner.oracle.trials
    return [trials[k] for k in sorted(trials)
            if trials[k].status == "COMPLETED"]
