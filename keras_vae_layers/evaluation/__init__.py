"""Evaluation the way the literature does it.

* `log_likelihood`, `bits_per_dim`: importance-weighted (IWAE) estimates of
  `log p(x)` (Burda et al. 2016).
* `mutual_information_gap`, `dci`, `sap_score`: disentanglement metrics
  from latents and ground-truth factors.
* `beta_vae_score`, `factor_vae_score`: disentanglement scores from
  factor-conditioned batches (`datasets.sample_shapes_with_fixed_factor`).

Each estimator is checked in the tests against cases with known answers
(quadrature for a 1-D latent, probabilistic PCA, latents equal to the
factors versus pure noise).
"""

from keras_vae_layers.evaluation._factors import discretize_factors
from keras_vae_layers.evaluation.disentanglement import dci
from keras_vae_layers.evaluation.disentanglement import mutual_information_gap
from keras_vae_layers.evaluation.disentanglement import sap_score
from keras_vae_layers.evaluation.interventions import beta_vae_score
from keras_vae_layers.evaluation.interventions import factor_vae_score
from keras_vae_layers.evaluation.likelihood import LIKELIHOODS
from keras_vae_layers.evaluation.likelihood import bits_per_dim
from keras_vae_layers.evaluation.likelihood import log_likelihood

__all__ = [
    "LIKELIHOODS",
    "beta_vae_score",
    "bits_per_dim",
    "dci",
    "discretize_factors",
    "factor_vae_score",
    "log_likelihood",
    "mutual_information_gap",
    "sap_score",
]
