"""Latent points drawn with numpy: the prior N(0, I) or a uniform box.

A low-level module (numpy only) shared by `VAEModel.sample`, the sample-grid
functions of `keras_vae_layers.images` and `SampleGridLogger`, so that code
drawing latent points never has to import the model module.
"""

import numpy as np

__all__ = ["SAMPLE_DISTRIBUTIONS", "latent_points"]

SAMPLE_DISTRIBUTIONS = ("normal", "uniform")
"""Distributions `latent_points` draws from."""


def latent_points(n, z_dim, seed=None, distribution="normal", limit=3.0):
    """Draws `n` float32 latent points from N(0, I) or U[-limit, limit].

    Args:
        n: Number of points.
        z_dim: Latent size.
        seed: Seed of the numpy generator (same seed, same points).
        distribution: `"normal"` or `"uniform"`.
        limit: Half-width of the uniform box.

    Returns:
        float32 numpy array `(n, z_dim)`.

    Example:

    >>> latent_points(4, 2, seed=0).shape
    (4, 2)
    """
    rng = np.random.default_rng(seed)
    if distribution == "normal":
        z = rng.standard_normal((n, z_dim))
    else:
        z = rng.uniform(-limit, limit, size=(n, z_dim))
    return z.astype("float32")
