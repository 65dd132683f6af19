"""Images: PNG grids of arrays (`grid`) and of decoded latents (`decoded`).

`grid` turns image arrays into uint8 grids and writes them atomically;
`decoded` runs a decoder (and an encoder) to make sample and reconstruction
grids, the code `SampleGridLogger` runs during training.
"""

from keras_vae_layers.images.decoded import write_reconstruction_grid
from keras_vae_layers.images.decoded import write_sample_grid
from keras_vae_layers.images.grid import grid_shape
from keras_vae_layers.images.grid import make_grid
from keras_vae_layers.images.grid import save_grid
from keras_vae_layers.images.grid import save_image
from keras_vae_layers.images.grid import sharpen_images
from keras_vae_layers.images.grid import to_uint8

__all__ = [
    "grid_shape",
    "make_grid",
    "save_grid",
    "save_image",
    "sharpen_images",
    "to_uint8",
    "write_reconstruction_grid",
    "write_sample_grid",
]
