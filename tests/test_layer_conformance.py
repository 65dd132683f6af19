"""Keras' own layer-conformance harness on both layers, on the active
backend (`keras.src.testing.TestCase.run_layer_test`: build, symbolic and
eager calls, config and `.keras` round trips, training, mixed precision).
"""

import keras
import numpy as np
from keras.src.testing import TestCase

from keras_vae_layers import KLDivergenceLayer
from keras_vae_layers import SamplingLayer

# On TensorFlow the harness's training check cannot run for layers taking a
# list of inputs (Keras' own `Add` layer fails it identically), so it runs
# on JAX and torch only.
TRAINING_CHECK = keras.backend.backend() != "tensorflow"

SHAPES = [(2, 3), (2, 3)]


def _harness():
    return TestCase()


def test_kl_divergence_layer_conforms():
    mu = np.array([[0.5, -1.0, 0.0], [1.0, 0.2, -0.3]], "float32")
    logvar = np.array([[0.1, -0.2, 0.0], [0.3, 0.0, -1.0]], "float32")
    _harness().run_layer_test(
        KLDivergenceLayer,
        init_kwargs={"beta": 0.5, "free_bits": 0.01},
        input_shape=SHAPES,
        expected_output_shape=SHAPES,
        expected_num_trainable_weights=0,
        # beta and the running KL sum and count
        expected_num_non_trainable_weights=3,
        expected_num_non_trainable_variables=3,
        expected_num_seed_generators=0,
        expected_num_losses=1,
        supports_masking=False,
        run_training_check=TRAINING_CHECK,
    )
    _harness().run_layer_test(
        KLDivergenceLayer,
        init_kwargs={"beta": 1.0},
        input_data=[mu, logvar],
        expected_output=[mu, logvar],  # a pass-through
        expected_num_losses=1,
        run_training_check=TRAINING_CHECK,
    )


def test_sampling_layer_conforms():
    _harness().run_layer_test(
        SamplingLayer,
        init_kwargs={"eps_clip": 3.0, "seed": 1},
        input_shape=SHAPES,
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=1,     # eps_factor
        expected_num_non_trainable_variables=2,   # + the seed state
        expected_num_seed_generators=1,
        expected_num_losses=0,
        supports_masking=False,
        run_training_check=TRAINING_CHECK,
    )
