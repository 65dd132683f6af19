"""keras_vae_layers: drop-in Keras 3 parts for Variational Autoencoders."""

from keras_vae_layers import datasets
from keras_vae_layers import images
from keras_vae_layers import losses
from keras_vae_layers._version import __version__
from keras_vae_layers.layers import KLDivergenceLayer
from keras_vae_layers.layers import SamplingLayer
from keras_vae_layers.losses import beta_to_fact
from keras_vae_layers.losses import fact_to_beta
from keras_vae_layers.losses import kl_divergence
from keras_vae_layers.losses import negative_elbo
from keras_vae_layers.losses import ReconstructionLoss
from keras_vae_layers.losses import reconstruction_loss
from keras_vae_layers.losses import vae_loss_terms
from keras_vae_layers.models import VAEModel
from keras_vae_layers.models import build_conv_encoder_decoder

__all__ = [
    "__version__",
    "KLDivergenceLayer",
    "SamplingLayer",
    "VAEModel",
    "build_conv_encoder_decoder",
    "datasets",
    "images",
    "losses",
    "kl_divergence",
    "reconstruction_loss",
    "ReconstructionLoss",
    "negative_elbo",
    "fact_to_beta",
    "beta_to_fact",
    "vae_loss_terms",
]
