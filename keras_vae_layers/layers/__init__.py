"""VAE layers: the KL pass-through layer and the clamped sampling layer."""

from keras_vae_layers.layers.kl_divergence import KLDivergenceLayer
from keras_vae_layers.layers.sampling import SamplingLayer

__all__ = ["KLDivergenceLayer", "SamplingLayer"]
