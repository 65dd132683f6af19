"""keras_vae_layers: drop-in Keras 3 parts for Variational Autoencoders.

The layers, losses, `VAEModel`, the builder, `datasets`, `images` (with
the `diagnostics` helpers its decoder grids use), `latents` and `io`
(atomic file writing) are imported with the package. `callbacks`,
`distribute`, `evaluation` and `tuning` load on first attribute access
(`kvl.callbacks.VAECheckpoint`), the way `keras.callbacks` is reached from
`keras`: `tuning` imports keras-tuner, which a user who never tunes should
not pay for at import time.
"""

import importlib

from keras_vae_layers import datasets
from keras_vae_layers import images
from keras_vae_layers import io
from keras_vae_layers import latents
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

_LAZY_SUBMODULES = ("callbacks", "diagnostics", "distribute", "evaluation",
                    "tuning")

__all__ = [
    "__version__",
    "callbacks",
    "diagnostics",
    "distribute",
    "evaluation",
    "tuning",
    "KLDivergenceLayer",
    "SamplingLayer",
    "VAEModel",
    "build_conv_encoder_decoder",
    "datasets",
    "images",
    "io",
    "latents",
    "losses",
    "kl_divergence",
    "reconstruction_loss",
    "ReconstructionLoss",
    "negative_elbo",
    "fact_to_beta",
    "beta_to_fact",
    "vae_loss_terms",
]


def __getattr__(name):
    # PEP 562: import a sub-package the first time it is reached as an
    # attribute; afterwards it is an ordinary module attribute.
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES))
