import math

import keras
import numpy as np
import pytest
from keras import ops
from scipy_free_stats import clipped_normal_variance

from helpers import TraceCounter, binary_data, dense_vae, find_layer, trace_mark
from keras_vae_layers import KLDivergenceLayer, SamplingLayer


def np_kl(mu, logvar):
    return -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)


# --------------------------------------------------------------- KL layer


def test_kl_layer_is_pass_through_and_adds_beta_kl(rng):
    mu = rng.normal(size=(8, 3)).astype("float32")
    lv = rng.normal(size=(8, 3)).astype("float32")
    layer = KLDivergenceLayer(beta=0.5)
    out_mu, out_lv = layer([mu, lv])
    np.testing.assert_array_equal(ops.convert_to_numpy(out_mu), mu)
    np.testing.assert_array_equal(ops.convert_to_numpy(out_lv), lv)
    assert len(layer.losses) == 1
    loss = float(ops.convert_to_numpy(layer.losses[0]))
    assert loss == pytest.approx(0.5 * np_kl(mu, lv).mean(), rel=1e-5)
    tracked = float(ops.convert_to_numpy(layer.kl_tracker.result()))
    assert tracked == pytest.approx(np_kl(mu, lv).mean(), rel=1e-5)


def test_kl_layer_beta_is_a_non_trainable_variable():
    layer = KLDivergenceLayer(beta=2.0)
    assert isinstance(layer.beta, keras.Variable)
    assert not layer.beta.trainable
    assert layer.beta in layer.non_trainable_weights
    layer.beta.assign(0.0)
    layer([np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")])
    assert float(ops.convert_to_numpy(layer.losses[0])) == 0.0


def test_free_bits_floors_each_dimension():
    mu = np.zeros((4, 3), "float32")
    mu[:, 0] = 2.0  # KL of dim 0 = 2.0 nats, others 0
    layer = KLDivergenceLayer(free_bits=0.5)
    layer([mu, np.zeros_like(mu)])
    # max(2, .5) + max(0, .5) + max(0, .5)
    assert float(ops.convert_to_numpy(layer.losses[0])) == pytest.approx(3.0)
    # the logged KL stays the raw value
    assert float(ops.convert_to_numpy(layer.kl_tracker.result())) == pytest.approx(2.0)


@pytest.mark.parametrize("nested", [False, True])
def test_kl_loss_appears_in_fit_history(nested):
    vae = dense_vae(nested=nested)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    data = binary_data()
    hist = vae.fit(data, data, epochs=2, batch_size=16, verbose=0,
                   validation_data=(data, data))
    assert "kl_loss" in hist.history and "val_kl_loss" in hist.history
    assert len(hist.history["kl_loss"]) == 2
    assert all(v > 0 for v in hist.history["kl_loss"])


def test_beta_assignment_changes_loss_without_retrace():
    counter = TraceCounter()
    vae = dense_vae(beta=0.0, counter=counter)
    find_layer(vae, SamplingLayer).set_deterministic(True)
    kl_layer = find_layer(vae, KLDivergenceLayer)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    data = binary_data()
    vae.fit(data, data, epochs=1, batch_size=16, verbose=0)
    base = vae.evaluate(data, data, batch_size=64, verbose=0, return_dict=True)
    mark = trace_mark(counter, vae)  # the train and test steps are traced
    kl_layer.beta.assign(3.0)
    weighted = vae.evaluate(data, data, batch_size=64, verbose=0,
                            return_dict=True)
    assert trace_mark(counter, vae) == mark  # no retrace of the test step
    assert weighted["kl_loss"] == pytest.approx(base["kl_loss"], rel=1e-5)
    assert weighted["loss"] - base["loss"] == pytest.approx(
        3.0 * base["kl_loss"], rel=1e-4
    )

    # and during training: epochs after an assign reuse the traced step
    vae.fit(data, data, epochs=2, batch_size=16, verbose=0)
    kl_layer.beta.assign(0.5)
    vae.fit(data, data, epochs=1, batch_size=16, verbose=0)
    assert trace_mark(counter, vae) == mark


# --------------------------------------------------------- sampling layer


def test_eps_never_exceeds_clip_over_a_million_draws():
    for clip in (5.0, 1.5):
        layer = SamplingLayer(eps_clip=clip, seed=3)
        z = ops.convert_to_numpy(
            layer([np.zeros((1000, 1000), "float32"),
                   np.zeros((1000, 1000), "float32")])
        )
        assert np.abs(z).max() <= clip
        if clip == 1.5:  # the clamp really bites: ~13% of draws are at it
            assert np.mean(np.abs(z) == np.float32(1.5)) > 0.1


def test_no_clip_when_disabled():
    layer = SamplingLayer(eps_clip=None, seed=3)
    z = ops.convert_to_numpy(
        layer([np.zeros((1000, 1000), "float32"), np.zeros((1000, 1000), "float32")])
    )
    assert np.abs(z).max() > 4.0


@pytest.mark.parametrize("clip", [5.0, 1.0])
def test_sample_moments_match_mu_and_clip_corrected_variance(clip):
    n = 200_000
    mu = np.tile(np.array([[1.0, -2.0, 0.5]], "float32"), (n, 1))
    lv = np.tile(np.array([[0.0, 1.0, -2.0]], "float32"), (n, 1))
    z = ops.convert_to_numpy(SamplingLayer(eps_clip=clip, seed=7)([mu, lv]))
    var_eps = clipped_normal_variance(clip)
    expected_var = np.exp(lv[0]) * var_eps
    tolerance = 5 * np.sqrt(expected_var / n)  # 5 standard errors
    assert np.all(np.abs(z.mean(0) - mu[0]) < tolerance)
    np.testing.assert_allclose(z.var(0), expected_var, rtol=0.02)


def test_seeded_layers_reproduce_and_advance():
    mu = np.zeros((4, 5), "float32")
    a = SamplingLayer(seed=11)
    b = SamplingLayer(seed=11)
    a1 = ops.convert_to_numpy(a([mu, mu]))
    b1 = ops.convert_to_numpy(b([mu, mu]))
    np.testing.assert_array_equal(a1, b1)
    a2 = ops.convert_to_numpy(a([mu, mu]))
    assert not np.allclose(a1, a2)  # the generator advances between calls


def test_set_deterministic_after_first_predict():
    vae = dense_vae(latent_dim=3)
    encoder_out = vae.get_layer("sampling").output
    mu_out = vae.get_layer("kl").output[0]
    probe = keras.Model(vae.inputs, [encoder_out, mu_out])
    data = binary_data(32)
    z, mu = probe.predict(data, verbose=0)
    assert not np.allclose(z, mu)
    sampler = find_layer(probe, SamplingLayer)
    sampler.set_deterministic(True)
    assert sampler.deterministic
    z, mu = probe.predict(data, verbose=0)  # same cached predict function
    np.testing.assert_array_equal(z, mu)
    sampler.set_deterministic(False)
    z, mu = probe.predict(data, verbose=0)
    assert not np.allclose(z, mu)


# ---------------------------------------------------------- serialization


def test_functional_vae_keras_round_trip_safe_mode(tmp_path):
    vae = dense_vae(nested=True)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    data = binary_data()
    vae.fit(data, data, epochs=1, batch_size=16, verbose=0)
    find_layer(vae, KLDivergenceLayer).beta.assign(0.25)
    find_layer(vae, SamplingLayer).set_deterministic(True)
    expected = vae.predict(data, verbose=0)
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True, no custom_objects
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), expected)
    assert float(ops.convert_to_numpy(find_layer(loaded, KLDivergenceLayer).beta)) == 0.25
    assert find_layer(loaded, SamplingLayer).deterministic


def test_get_config_round_trip():
    kl = KLDivergenceLayer(beta=0.3, free_bits=0.1, logvar_clip=(-10, 5),
                           metric_name="kl_a", name="k")
    cfg = kl.get_config()
    clone = KLDivergenceLayer.from_config(cfg)
    assert clone.get_config() == cfg
    assert cfg["beta"] == pytest.approx(0.3)
    s = SamplingLayer(eps_clip=3.0, logvar_clip=(-8, 8), seed=5, name="s")
    cfg = s.get_config()
    assert SamplingLayer.from_config(cfg).get_config() == cfg
    assert cfg["eps_clip"] == 3.0 and cfg["seed"] == 5


def test_registered_names():
    assert keras.saving.get_registered_name(KLDivergenceLayer) == (
        "keras_vae_layers>KLDivergenceLayer"
    )
    assert keras.saving.get_registered_name(SamplingLayer) == (
        "keras_vae_layers>SamplingLayer"
    )


# ---------------------------------------------------------- mixed precision


def test_mixed_float16_losses_are_finite_float32():
    keras.config.set_dtype_policy("mixed_float16")
    vae = dense_vae()
    kl_layer = find_layer(vae, KLDivergenceLayer)
    data = binary_data()
    vae(data, training=True)
    assert keras.backend.standardize_dtype(vae.losses[0].dtype) == "float32"
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    hist = vae.fit(data, data, epochs=2, batch_size=16, verbose=0)
    assert all(math.isfinite(v) for v in hist.history["loss"])
    assert all(math.isfinite(v) for v in hist.history["kl_loss"])
    assert kl_layer.beta.dtype == "float32"


def _sample_at_the_logvar_clip(policy):
    keras.config.set_dtype_policy(policy)
    mu = keras.Input((256,))
    logvar = keras.Input((256,))
    model = keras.Model([mu, logvar], SamplingLayer(seed=7)([mu, logvar]))
    # logvar at its clip (20): std = exp(10) = 22026, so |eps| > 2.97
    # exceeds float16's largest value, 65504.
    inputs = [np.zeros((64, 256), "float32"), np.full((64, 256), 20.0,
                                                      "float32")]
    eager = ops.convert_to_numpy(model(inputs))
    traced = model.predict(inputs, verbose=0)
    return eager, traced


def test_sampling_stays_finite_under_mixed_float16():
    limit = float(np.finfo(np.float16).max)
    references = _sample_at_the_logvar_clip("float32")
    for reference in references:  # would overflow float16
        assert (np.abs(reference) > limit).sum() > 10
    samples = _sample_at_the_logvar_clip("mixed_float16")
    for z, reference in zip(samples, references):
        assert z.dtype == np.float16
        assert np.isfinite(z).all()
        # Same draws, saturated at the float16 range instead of inf.
        np.testing.assert_array_equal(
            z, np.clip(reference, -limit, limit).astype("float16"))


def test_sampling_is_not_clipped_under_mixed_bfloat16():
    # bfloat16 has float32's range: nothing to saturate.
    limit = float(np.finfo(np.float16).max)
    eager, traced = _sample_at_the_logvar_clip("mixed_bfloat16")
    for z in (eager, traced):
        z = z.astype("float32")
        assert np.isfinite(z).all()
        assert (np.abs(z) > limit).sum() > 10


# ---------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta": -1.0}, "`beta` must be >= 0.0, received -1.0"),
        ({"beta": float("nan")}, "`beta` must be finite, received nan"),
        ({"beta": float("inf")}, "`beta` must be finite"),
        ({"beta": "1"}, "`beta` must be a finite real number, received '1'"),
        ({"free_bits": -0.1}, "`free_bits` must be >= 0.0"),
        ({"logvar_clip": (5, -5)}, "`logvar_clip` must satisfy low < high"),
    ],
)
def test_kl_layer_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        KLDivergenceLayer(**kwargs)
    assert "KLDivergenceLayer" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps_clip": 0.0}, "`eps_clip` must be > 0.0, received 0.0"),
        ({"eps_clip": -2}, "`eps_clip` must be > 0.0, received -2.0"),
        ({"logvar_clip": (1.0, 1.0)}, "low=1.0, high=1.0"),
        ({"logvar_clip": 3.0}, r"`logvar_clip` must be a \(low, high\) pair"),
        ({"seed": 1.5}, "`seed` must be an int or None, received 1.5"),
    ],
)
def test_sampling_layer_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        SamplingLayer(**kwargs)
    assert "SamplingLayer" in str(err.value)


@pytest.mark.parametrize("cls", [KLDivergenceLayer, SamplingLayer])
def test_bad_inputs(cls):
    name = cls.__name__
    with pytest.raises(ValueError, match=f"{name}.*single tensor of shape \\(None, 3\\)"):
        cls()(keras.Input((3,)))
    with pytest.raises(ValueError, match=r"mu shape \(None, 3\) and logvar shape \(None, 4\)"):
        cls()([keras.Input((3,)), keras.Input((4,))])
    with pytest.raises(ValueError, match=r"last dimension \(latent_dim\) of `mu` must be known"):
        cls()([keras.Input((None,)), keras.Input((None,))])
    with pytest.raises(ValueError, match="rank >= 2.*shape \\(3,\\) of rank 1"):
        cls()([np.zeros(3, "float32"), np.zeros(3, "float32")])
    with pytest.raises(ValueError, match="expects a list of two tensors"):
        cls()([keras.Input((3,))] * 3)


def test_beta_assigned_between_epochs_changes_the_training_loss():
    """With frozen weights (SGD, lr 0) and z == mu, the loss `fit()` reports
    moves by exactly the change of beta times the KL."""
    vae = dense_vae(beta=0.0)
    find_layer(vae, SamplingLayer).set_deterministic(True)
    kl_layer = find_layer(vae, KLDivergenceLayer)
    vae.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy")
    data = binary_data()
    first = vae.fit(data, data, epochs=1, batch_size=64, verbose=0).history
    kl_layer.beta.assign(2.5)
    second = vae.fit(data, data, epochs=1, batch_size=64, verbose=0).history
    assert second["kl_loss"][0] == pytest.approx(first["kl_loss"][0], rel=1e-5)
    assert second["loss"][0] - first["loss"][0] == pytest.approx(
        2.5 * first["kl_loss"][0], rel=1e-4)
