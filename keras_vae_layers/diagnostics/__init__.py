"""Latent-space diagnostics: radii, active units, KL per dimension, plots.

Everything here works on numpy, one module per job:

* `discovery`: `find_encoder` / `find_decoder` locate the parts of a VAE.
* `encoding`: `encode_dataset` runs an encoder over a dataset in batches
  (never moving the whole set onto the device at once).
* `statistics`: `compute_latent_statistics` turns the encodings into
  statistics, `latent_statistics` does both, `summary` keeps the scalars.
* `plots`: overlaid radius histograms and 2-D latent scatter plots
  (matplotlib, an optional extra: `pip install keras_vae_layers[plot]`).

The same functions back `LatentStatisticsLogger` and `SampleGridLogger`, so
numbers logged during training and numbers computed afterwards agree.

Encoders may be given directly or through a model that holds one:

* a `VAEModel` (or any model with an `encoder` attribute),
* a Functional VAE whose encoder is a nested sub-model holding a
  `SamplingLayer`,
* a flat Functional VAE with a single `SamplingLayer` (its `[z, mu, logvar]`
  are read from inside the graph),
* an encoder returning `[z, mu, logvar]`, `[mu, logvar]` or a dict with keys
  `mu`, `logvar` (and optionally `z`).
"""

from keras_vae_layers.diagnostics.discovery import decoder_latent_size
from keras_vae_layers.diagnostics.discovery import encoder_latent_size
from keras_vae_layers.diagnostics.discovery import find_decoder
from keras_vae_layers.diagnostics.discovery import find_encoder
from keras_vae_layers.diagnostics.discovery import find_encoder_decoder
from keras_vae_layers.diagnostics.encoding import DEFAULT_EPS_CLIP
from keras_vae_layers.diagnostics.encoding import encode_dataset
from keras_vae_layers.diagnostics.encoding import predict_in_batches
from keras_vae_layers.diagnostics.plots import pca_2d
from keras_vae_layers.diagnostics.plots import plot_latent_scatter
from keras_vae_layers.diagnostics.plots import plot_radius_histograms
from keras_vae_layers.diagnostics.statistics import compute_latent_statistics
from keras_vae_layers.diagnostics.statistics import latent_statistics
from keras_vae_layers.diagnostics.statistics import radius_bin_edges
from keras_vae_layers.diagnostics.statistics import summary

__all__ = [
    "DEFAULT_EPS_CLIP",
    "find_encoder",
    "find_decoder",
    "find_encoder_decoder",
    "encoder_latent_size",
    "decoder_latent_size",
    "predict_in_batches",
    "encode_dataset",
    "radius_bin_edges",
    "compute_latent_statistics",
    "latent_statistics",
    "summary",
    "pca_2d",
    "plot_radius_histograms",
    "plot_latent_scatter",
]
