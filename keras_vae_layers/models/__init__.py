"""VAE models and model builders."""

from keras_vae_layers.models.builders import build_conv_encoder_decoder
from keras_vae_layers.models.vae import VAEModel

__all__ = ["build_conv_encoder_decoder", "VAEModel"]
