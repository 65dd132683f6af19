import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import keras
from keras import ops

from keras_vae_layers import losses


def np_kl(mu, logvar):
    return -0.5 * np.sum(1 + logvar - mu**2 - np.exp(logvar), axis=-1)


def test_kl_matches_numpy_closed_form(rng):
    mu = rng.normal(size=(16, 7)).astype("float32")
    logvar = rng.normal(scale=0.5, size=(16, 7)).astype("float32")
    got = ops.convert_to_numpy(losses.kl_divergence(mu, logvar))
    assert got.shape == (16,)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np_kl(mu, logvar), rtol=1e-5, atol=1e-6)


def test_kl_is_zero_at_prior():
    got = ops.convert_to_numpy(
        losses.kl_divergence(np.zeros((3, 5)), np.zeros((3, 5)))
    )
    np.testing.assert_array_equal(got, np.zeros(3, "float32"))


finite = st.floats(-4, 4, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(np.float32, (4, 3), elements=finite),
    hnp.arrays(np.float32, (4, 3), elements=finite),
)
def test_kl_is_non_negative(mu, logvar):
    got = ops.convert_to_numpy(losses.kl_divergence(mu, logvar))
    assert np.all(got >= -1e-5)
    # Equality with the prior only: any non-zero mu makes KL strictly positive.
    if np.any(np.abs(mu) > 1e-2):
        assert np.all(got[np.any(np.abs(mu) > 1e-2, axis=1)] > 0)


def test_kl_monte_carlo_agrees_with_closed_form(rng):
    mu = np.array([[0.5, -1.0, 2.0]], "float32")
    logvar = np.array([[0.3, -0.7, 0.1]], "float32")
    n = 400_000
    std = np.exp(0.5 * logvar)
    z = mu + std * rng.standard_normal((n, 3))
    log_q = -0.5 * (np.log(2 * np.pi) + logvar + (z - mu) ** 2 / np.exp(logvar))
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    mc = np.mean(np.sum(log_q - log_p, axis=1))
    closed = float(ops.convert_to_numpy(losses.kl_divergence(mu, logvar))[0])
    assert abs(mc - closed) < 0.02 * closed


def test_kl_logvar_clip_prevents_overflow():
    got = ops.convert_to_numpy(
        losses.kl_divergence(np.zeros((1, 2)), np.full((1, 2), 500.0))
    )
    assert np.all(np.isfinite(got))
    expected = np_kl(np.zeros((1, 2)), np.full((1, 2), 20.0))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_bce_matches_numpy(rng, reduction):
    x = rng.uniform(size=(4, 5, 5, 2)).astype("float32")
    p = rng.uniform(0.05, 0.95, size=x.shape).astype("float32")
    ref = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(4, -1)
    ref = ref.sum(1) if reduction == "sum" else ref.mean(1)
    got = ops.convert_to_numpy(
        losses.reconstruction_loss(x, p, "bce", reduction)
    )
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_bce_from_logits_equals_probability_form(rng):
    x = rng.uniform(size=(3, 10)).astype("float32")
    logits = rng.normal(size=(3, 10)).astype("float32")
    probs = 1 / (1 + np.exp(-logits))
    a = ops.convert_to_numpy(
        losses.reconstruction_loss(x, logits, "bce", from_logits=True)
    )
    b = ops.convert_to_numpy(losses.reconstruction_loss(x, probs, "bce"))
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_mse_sum_and_mean(rng):
    x = rng.uniform(size=(2, 4, 3)).astype("float32")
    y = rng.uniform(size=(2, 4, 3)).astype("float32")
    s = ops.convert_to_numpy(losses.reconstruction_loss(x, y, "mse", "sum"))
    m = ops.convert_to_numpy(losses.reconstruction_loss(x, y, "mse", "mean"))
    np.testing.assert_allclose(s, ((x - y) ** 2).reshape(2, -1).sum(1), rtol=1e-5)
    np.testing.assert_allclose(m, s / 12, rtol=1e-5)


def test_negative_elbo_and_terms(rng):
    x = rng.uniform(size=(4, 6)).astype("float32")
    p = rng.uniform(0.1, 0.9, size=(4, 6)).astype("float32")
    mu = rng.normal(size=(4, 2)).astype("float32")
    lv = rng.normal(size=(4, 2)).astype("float32")
    reco = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)
    kl = np_kl(mu, lv)
    nelbo = ops.convert_to_numpy(losses.negative_elbo(x, p, mu, lv))
    np.testing.assert_allclose(nelbo, reco + kl, rtol=1e-5)
    terms = losses.vae_loss_terms(x, p, mu, lv, beta=0.25)
    terms = {k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}
    assert terms["reco_loss"] == pytest.approx(reco.mean(), rel=1e-5)
    assert terms["kl_loss"] == pytest.approx(kl.mean(), rel=1e-5)
    assert terms["total_loss"] == pytest.approx(
        reco.mean() + 0.25 * kl.mean(), rel=1e-5
    )
    assert terms["neg_elbo"] == pytest.approx(reco.mean() + kl.mean(), rel=1e-5)


def test_fact_beta_mapping_gives_same_optimum(rng):
    """mean-reduction loss with fact == sum-reduction loss with beta, / D."""
    x = rng.uniform(size=(4, 28, 28, 1)).astype("float32")
    p = rng.uniform(0.1, 0.9, size=x.shape).astype("float32")
    mu = rng.normal(size=(4, 3)).astype("float32")
    lv = rng.normal(size=(4, 3)).astype("float32")
    fact = 1e-4
    beta = losses.fact_to_beta(fact, (28, 28, 1))
    assert beta == pytest.approx(0.0784)
    assert losses.beta_to_fact(beta, (28, 28, 1)) == pytest.approx(fact)
    mean_total = losses.vae_loss_terms(x, p, mu, lv, fact, element_reduction="mean")
    sum_total = losses.vae_loss_terms(x, p, mu, lv, beta, element_reduction="sum")
    np.testing.assert_allclose(
        float(ops.convert_to_numpy(mean_total["total_loss"])) * 784,
        float(ops.convert_to_numpy(sum_total["total_loss"])),
        rtol=1e-5,
    )


def test_losses_are_float32_for_float16_inputs(rng):
    x = rng.uniform(size=(2, 8)).astype("float16")
    mu = rng.normal(size=(2, 3)).astype("float16")
    dtype = keras.backend.standardize_dtype
    assert dtype(losses.kl_divergence(mu, mu).dtype) == "float32"
    assert dtype(losses.reconstruction_loss(x, x, "mse").dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reconstruction_loss": "l1"},
         "unknown `reconstruction_loss` 'l1'.*'bce', 'mse'"),
        ({"element_reduction": "median"},
         "unknown `element_reduction` 'median'.*'sum', 'mean'"),
    ],
)
def test_reconstruction_bad_names(kwargs, match):
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match=match):
        losses.reconstruction_loss(x, x, **kwargs)


def test_reconstruction_shape_mismatch():
    with pytest.raises(ValueError, match=r"x shape \(2, 3\) and x_hat shape \(2, 4\)"):
        losses.reconstruction_loss(np.zeros((2, 3)), np.zeros((2, 4)))


def test_kl_shape_mismatch():
    with pytest.raises(ValueError, match=r"mu shape \(2, 3\) and logvar shape \(2, 4\)"):
        losses.kl_divergence(np.zeros((2, 3)), np.zeros((2, 4)))


def test_fact_to_beta_bad_input():
    with pytest.raises(ValueError, match="`fact` must be >= 0.0, received -1.0"):
        losses.fact_to_beta(-1.0, (28, 28))
    with pytest.raises(ValueError, match="`data_shape`"):
        losses.fact_to_beta(1e-4, (28, 0))


def test_bce_uses_cached_logits_of_sigmoid_outputs():
    """A sigmoid output that saturates to exactly 1.0 in float32 still gets
    the exact loss: the logits Keras caches on it are used."""
    logits = np.array([[30.0, -30.0, 0.5]], "float32")
    x = np.array([[0.0, 1.0, 1.0]], "float32")
    probs = keras.activations.sigmoid(logits)  # carries `_keras_logits`
    assert float(ops.convert_to_numpy(probs)[0, 0]) == 1.0
    got = float(ops.convert_to_numpy(losses.reconstruction_loss(x, probs))[0])
    exact = float(np.sum(np.maximum(logits, 0) - logits * x
                         + np.log1p(np.exp(-np.abs(logits)))))
    plain = ops.convert_to_numpy(probs)  # numpy: no cached logits, clipped
    clipped = float(ops.convert_to_numpy(losses.reconstruction_loss(x, plain))[0])
    assert clipped < exact - 20
    assert got == pytest.approx(exact, rel=1e-5)  # ~60.97, not the clip's ~32
    if keras.backend.backend() == "jax":
        # Inside jax.jit (JAX's compiled steps) arrays are tracers, which
        # carry no attributes: the clipped form, as Keras' own
        # binary_crossentropy there.
        import jax

        traced = jax.jit(lambda lg: losses.reconstruction_loss(
            x, keras.activations.sigmoid(lg)))(logits)
        assert float(traced[0]) == pytest.approx(clipped, rel=1e-5)


def test_free_bits_kl_floors_each_dimension_of_the_batch_mean():
    # Batch means per dimension: [0.05, 1.0]; floor 0.2 -> 0.2 + 1.0.
    kl = np.array([[0.0, 0.5], [0.1, 1.5]], "float32")
    got = keras.ops.convert_to_numpy(losses.free_bits_kl(kl, 0.2))
    assert got == pytest.approx(1.2)
    assert keras.ops.convert_to_numpy(
        losses.free_bits_kl(kl, 0.0)) == pytest.approx(1.05)
    # Weighted: only the second sample counts.
    got = keras.ops.convert_to_numpy(
        losses.free_bits_kl(kl, 0.2, sample_weight=np.array([0.0, 1.0])))
    assert got == pytest.approx(0.2 + 1.5)


def test_vae_loss_terms_match_the_model_conventions():
    rng = np.random.default_rng(3)
    x = (rng.uniform(size=(6, 5)) > 0.5).astype("float32")
    p = rng.uniform(0.05, 0.95, size=(6, 5)).astype("float32")
    mu = rng.normal(size=(6, 2)).astype("float32")
    lv = rng.normal(size=(6, 2)).astype("float32")
    w = np.array([1, 0, 2, 1, 1, 0], "float32")
    terms = {k: float(keras.ops.convert_to_numpy(v)) for k, v in
             losses.vae_loss_terms(x, p, mu, lv, beta=0.5, free_bits=0.4,
                                   sample_weight=w).items()}
    reco = -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)
    kl_dims = 0.5 * (mu ** 2 + np.exp(lv) - 1 - lv)
    wm = lambda v: (v * w).sum() / w.sum()  # noqa: E731
    trained = np.maximum((kl_dims * w[:, None]).sum(0) / w.sum(), 0.4).sum()
    assert terms["reco_loss"] == pytest.approx(wm(reco), rel=1e-5)
    assert terms["kl_loss"] == pytest.approx(wm(kl_dims.sum(1)), rel=1e-5)
    assert terms["neg_elbo"] == pytest.approx(wm(reco) + wm(kl_dims.sum(1)),
                                              rel=1e-5)
    assert terms["total_loss"] == pytest.approx(wm(reco) + 0.5 * trained,
                                                rel=1e-5)


def test_reparameterize_clips_noise_and_logvar():
    mu = np.array([[1.0, -1.0]], "float32")
    logvar = np.array([[0.0, 100.0]], "float32")
    eps = np.array([[10.0, -0.5]], "float32")
    z = keras.ops.convert_to_numpy(
        losses.reparameterize(mu, logvar, eps, eps_clip=2.0,
                              logvar_clip=(-30.0, 2.0)))
    np.testing.assert_allclose(z, [[1.0 + 2.0, -1.0 - 0.5 * np.e]],
                               rtol=1e-6)
    z0 = keras.ops.convert_to_numpy(
        losses.reparameterize(mu, logvar, eps, eps_factor=0.0))
    np.testing.assert_array_equal(z0, mu)


def test_deprecated_argument_spellings_warn_and_still_work():
    x = np.full((2, 3), 0.5, "float32")
    with pytest.warns(DeprecationWarning, match="`kind` is deprecated"):
        old = losses.reconstruction_loss(x, x, kind="mse", reduction="mean")
    new = losses.reconstruction_loss(x, x, "mse", "mean")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(old),
                                  keras.ops.convert_to_numpy(new))
    with pytest.warns(DeprecationWarning):
        loss = losses.ReconstructionLoss(kind="mse",
                                         reduction_over_elements="mean")
    assert (loss.reconstruction_loss, loss.element_reduction) == ("mse",
                                                                  "mean")
    config = loss.get_config()
    assert "kind" not in config and config["element_reduction"] == "mean"
    with pytest.raises(TypeError, match="unexpected keyword"):
        losses.reconstruction_loss(x, x, kinds="mse")


def test_the_kl_formula_is_written_once():
    # One owner: every KL in the package comes from kl_divergence_per_dim.
    import pathlib
    import re

    import keras_vae_layers
    root = pathlib.Path(keras_vae_layers.__file__).parent
    pattern = re.compile(r"exp\(\s*(lv|logvar)\s*\)\s*-\s*1")
    owners = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if pattern.search(p.read_text(encoding="utf-8"))]
    assert owners == ["losses.py"]


# ---------------------------------------------------------------------------
# Log-densities with normalising constants (used by evaluation.log_likelihood)
# ---------------------------------------------------------------------------


def test_gaussian_log_density_matches_scipy_and_keeps_float64(rng):
    from scipy import stats

    x = rng.normal(size=(5, 3))
    mean = rng.normal(size=(5, 3))
    logvar = rng.normal(scale=0.5, size=(5, 3))
    got = ops.convert_to_numpy(losses.gaussian_log_density(x, mean, logvar))
    # float64 where the backend has it (JAX only with jax_enable_x64).
    has_float64 = keras.backend.standardize_dtype(
        ops.convert_to_tensor(x).dtype) == "float64"
    assert got.dtype == (np.float64 if has_float64 else np.float32)
    ref = stats.norm(mean, np.exp(0.5 * logvar)).logpdf(x)
    np.testing.assert_allclose(got, ref, rtol=1e-12 if has_float64 else 1e-5)
    got32 = losses.gaussian_log_density(x.astype("float32"), mean, logvar)
    assert keras.backend.standardize_dtype(got32.dtype) == "float32"


def test_gaussian_log_likelihood_and_the_mse_loss(rng):
    x = rng.uniform(size=(4, 3, 2)).astype("float32")
    mean = rng.uniform(size=(4, 3, 2)).astype("float32")
    sigma = 0.3
    got = ops.convert_to_numpy(losses.gaussian_log_likelihood(x, mean, sigma))
    ref = -((x - mean) ** 2).sum(axis=(1, 2)) / (2 * sigma ** 2) - 6 * (
        np.log(sigma) + 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    # The "mse" loss is the Gaussian NLL with sigma^2 = 1/2, up to a constant.
    mse = ops.convert_to_numpy(losses.reconstruction_loss(x, mean, "mse"))
    half = ops.convert_to_numpy(
        losses.gaussian_log_likelihood(x, mean, np.sqrt(0.5)))
    np.testing.assert_allclose(mse, -half - 0.5 * 6 * np.log(np.pi),
                               rtol=1e-5)
    with pytest.raises(ValueError, match="gaussian_log_likelihood: `sigma` "
                       "must be > 0.0"):
        losses.gaussian_log_likelihood(x, mean, -1.0)


def test_bernoulli_log_likelihood_is_the_log_probability_of_binary_data():
    x = np.array([[1.0, 0.0, 1.0]], "float32")
    p = np.array([[0.9, 0.2, 0.6]], "float32")
    got = float(ops.convert_to_numpy(losses.bernoulli_log_likelihood(x, p))[0])
    assert got == pytest.approx(np.log(0.9 * 0.8 * 0.6), rel=1e-6)
    logits = np.log(p / (1 - p))
    got_logits = losses.bernoulli_log_likelihood(x, logits, from_logits=True)
    assert float(ops.convert_to_numpy(got_logits)[0]) == pytest.approx(
        got, rel=1e-6)
