"""Keras callbacks for VAEs: checkpoints, KL annealing, predict-cache
refresh, sample grids and latent statistics.

One module per callback, as in `keras.callbacks`; `schedules` holds the KL
annealing schedules. `write_sample_grid` / `write_reconstruction_grid` are
`keras_vae_layers.images`' and re-exported here.
"""

from keras_vae_layers.callbacks.annealing import KLAnnealing
from keras_vae_layers.callbacks.checkpoint import VAECheckpoint
from keras_vae_layers.callbacks.checkpoint import find_encoder_decoder
from keras_vae_layers.callbacks.checkpoint import list_checkpoints
from keras_vae_layers.callbacks.checkpoint import load_decoder_weights
from keras_vae_layers.callbacks.checkpoint import load_encoder_weights
from keras_vae_layers.callbacks.checkpoint import restore_best
from keras_vae_layers.callbacks.checkpoint import restore_latest
from keras_vae_layers.callbacks.latent_stats import LatentStatisticsLogger
from keras_vae_layers.callbacks.predict_cache import PredictCacheRefresh
from keras_vae_layers.callbacks.predict_cache import refresh_predict_cache
from keras_vae_layers.callbacks.sample_grid import SampleGridLogger
from keras_vae_layers.callbacks.schedules import beta_schedule
from keras_vae_layers.images.decoded import write_reconstruction_grid
from keras_vae_layers.images.decoded import write_sample_grid

__all__ = [
    "KLAnnealing",
    "LatentStatisticsLogger",
    "PredictCacheRefresh",
    "SampleGridLogger",
    "VAECheckpoint",
    "beta_schedule",
    "find_encoder_decoder",
    "list_checkpoints",
    "load_decoder_weights",
    "load_encoder_weights",
    "refresh_predict_cache",
    "restore_best",
    "restore_latest",
    "write_reconstruction_grid",
    "write_sample_grid",
]
