"""keras_vae_layers: drop-in Keras 3 parts for Variational Autoencoders."""

from keras_vae_layers import losses
from keras_vae_layers._version import __version__
from keras_vae_layers.layers import KLDivergenceLayer
from keras_vae_layers.layers import SamplingLayer
from keras_vae_layers.losses import fact_to_beta
from keras_vae_layers.losses import kl_divergence
from keras_vae_layers.losses import negative_elbo
from keras_vae_layers.losses import ReconstructionLoss
from keras_vae_layers.losses import reconstruction_loss

__all__ = [
    "__version__",
    "KLDivergenceLayer",
    "SamplingLayer",
    "losses",
    "kl_divergence",
    "reconstruction_loss",
    "ReconstructionLoss",
    "negative_elbo",
    "fact_to_beta",
]
