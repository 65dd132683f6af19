"""keras-tuner integration: `VAEHyperModel` and the matching objective.

`VAEHyperModel` builds compiled, built `VAEModel`s from the conv
encoder/decoder builder and searches the latent size `z_dim`, the optional
Dense layer between Flatten and the `mu`/`logvar` heads
(`intermediate_dim`) and the KL weight `beta` (and, optionally, the
learning rate). Any of them can be pinned to a fixed value.

Why the objective is `val_neg_elbo` and not `val_loss`: the trained loss is
`reco + beta * kl`, so with `beta` in the search space a smaller `beta`
always gives a smaller `val_loss` whatever the model's quality. The
unweighted negative ELBO `reco + kl` is the same quantity for every trial,
so trials are comparable. `val_reco_loss` is the documented alternative
when only reconstruction quality matters (it too favours a small `beta`).

Note: keras-tuner imports TensorBoard's hparams plugin in every trial, and
it swallows trial exceptions (a failed trial is marked `FAILED`/`INVALID`
and the search goes on). Check `tuner.oracle.trials[i].status` after a
search; `completed_trials(tuner)` does it for you.

Modules, as in keras-tuner's engine: `hypermodel` (`VAEHyperModel`),
`search_space` (the hyperparameter specs it accepts), `objective`
(`vae_objective`, `completed_trials`, the objective names).
"""

from keras_vae_layers.tuning.hypermodel import HYPERPARAMETER_NAMES
from keras_vae_layers.tuning.hypermodel import VAEHyperModel
from keras_vae_layers.tuning.objective import BETA_WEIGHTED_OBJECTIVES
from keras_vae_layers.tuning.objective import DEFAULT_OBJECTIVE
from keras_vae_layers.tuning.objective import OBJECTIVE_NAMES
from keras_vae_layers.tuning.objective import completed_trials
from keras_vae_layers.tuning.objective import vae_objective

__all__ = [
    "DEFAULT_OBJECTIVE",
    "OBJECTIVE_NAMES",
    "VAEHyperModel",
    "completed_trials",
    "vae_objective",
]
