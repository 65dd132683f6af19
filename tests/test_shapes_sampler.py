"""`datasets.sample_shapes_with_fixed_factor`: factor-conditioned sprites."""

import math

import numpy as np
import pytest

from keras_vae_layers import datasets
from keras_vae_layers.datasets import sample_shapes_with_fixed_factor

FLOATS = ("scale", "rotation", "x", "y")


def test_nothing_fixed_equals_load_shapes():
    images, factors = sample_shapes_with_fixed_factor(40, size=16, seed=4)
    ref_images, ref_factors = datasets.load_shapes(40, size=16, seed=4)
    np.testing.assert_array_equal(images, ref_images)
    assert list(factors) == list(ref_factors)
    for key in factors:
        assert factors[key].dtype == ref_factors[key].dtype
        np.testing.assert_array_equal(factors[key], ref_factors[key])


@pytest.mark.parametrize("factor", ("shape",) + FLOATS)
def test_one_random_value_is_shared_and_the_rest_varies(factor):
    images, factors = sample_shapes_with_fixed_factor(
        64, factor, size=16, seed=1, dtype="float32")
    assert images.shape == (64, 16, 16, 1) and images.dtype == np.float32
    assert len(np.unique(factors[factor])) == 1
    for other in set(factors) - {factor}:
        assert len(np.unique(factors[other])) > 1, other
    # The images are the renders of the returned factors (which are
    # rounded to float32).
    np.testing.assert_allclose(images, datasets.render_shapes(
        factors["shape"], factors["scale"], factors["rotation"],
        factors["x"], factors["y"], size=16, dtype="float32"), atol=1e-4)


def test_scalar_and_per_image_values():
    _, f = sample_shapes_with_fixed_factor(10, "shape", "heart", size=16)
    assert f["shape"].tolist() == [2] * 10
    _, f = sample_shapes_with_fixed_factor(10, "x", 0.25, size=16, seed=2)
    assert set(f["x"].tolist()) == {0.25}
    # Per-image values, e.g. the factors of another batch (beta-VAE pairs):
    # rotations near 2 pi survive the float32 round trip.
    _, first = sample_shapes_with_fixed_factor(
        200, size=16, seed=3, rotation_range=(6.2, 2 * math.pi))
    images, second = sample_shapes_with_fixed_factor(
        200, "rotation", first["rotation"], size=16, seed=4,
        rotation_range=(6.2, 2 * math.pi))
    np.testing.assert_array_equal(second["rotation"], first["rotation"])
    assert not np.array_equal(second["x"], first["x"])
    _, shapes = sample_shapes_with_fixed_factor(5, "shape", [0, 1, 0, 1, 0],
                                                size=16)
    assert shapes["shape"].tolist() == [0, 1, 0, 1, 0]


def test_bad_input_names_the_argument():
    f = sample_shapes_with_fixed_factor
    with pytest.raises(ValueError, match="unknown `factor` 'color'"):
        f(4, "color", size=16)
    with pytest.raises(ValueError, match="`value` needs a `factor`"):
        f(4, None, 0.5, size=16)
    with pytest.raises(ValueError, match=r"`value` for 'scale' must lie "
                       r"within \[0.5, 1.0\], received 0.2"):
        f(4, "scale", 0.2, size=16)
    with pytest.raises(ValueError, match=r"`value` must be a scalar or have "
                       r"shape \(4,\)"):
        f(4, "x", [0.1, 0.2], size=16)
    with pytest.raises(ValueError, match=r"shape `value` must be ids of "
                       r"\('square',\) \(\[0\]\) or their names, "
                       r"received 1\."):
        f(4, "shape", 1, size=16, shapes=("square",))
    with pytest.raises(ValueError, match="unknown `value` 'circle'"):
        f(4, "shape", "circle", size=16)
    with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
        f(0, "x", size=16)
