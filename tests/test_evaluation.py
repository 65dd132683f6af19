"""`keras_vae_layers.evaluation` against cases with known answers.

* Likelihood: probabilistic PCA (closed-form `log p(x)`; with the exact,
  diagonal posterior every importance weight equals `p(x)`), and a 1-D
  latent Bernoulli VAE whose `log p(x)` and ELBO come from quadrature.
* Disentanglement: latents equal to the factors, pure noise, mixed factors
  and permuted latents.
"""

import math

import keras
import numpy as np
import pytest
from scipy import stats

from keras_vae_layers import SamplingLayer
from keras_vae_layers import VAEModel
from keras_vae_layers import build_conv_encoder_decoder
from keras_vae_layers import evaluation
from keras_vae_layers.evaluation import likelihood as likelihood_module

# ----------------------------------------------------------------------------
# Models with known likelihoods
# ----------------------------------------------------------------------------


def linear_encoder(dim, latent, mu_kernel, mu_bias, logvar_bias, form="pair"):
    x = keras.Input((dim,))
    mu_layer = keras.layers.Dense(latent, name="mu")
    lv_layer = keras.layers.Dense(latent, name="logvar")
    mu, logvar = mu_layer(x), lv_layer(x)
    mu_layer.set_weights([np.asarray(mu_kernel), np.asarray(mu_bias)])
    lv_layer.set_weights([np.zeros((dim, latent)), np.asarray(logvar_bias)])
    if form == "triple":
        outputs = [SamplingLayer(seed=3)([mu, logvar]), mu, logvar]
    elif form == "dict":
        outputs = {"mu": mu, "logvar": logvar}
    else:
        outputs = [mu, logvar]
    return keras.Model(x, outputs, name="encoder")


def linear_decoder(latent, kernel, bias, activation=None):
    z = keras.Input((latent,))
    dense = keras.layers.Dense(len(bias), name="lin",
                               activation=activation)
    out = dense(z)
    dense.set_weights([np.asarray(kernel), np.asarray(bias)])
    return out, z


def ppca(sigma, logvar_shift=0.0, n=40, seed=0, reconstruction_loss="mse"):
    """A linear-Gaussian VAE with orthogonal columns (diagonal posterior)."""
    rng = np.random.default_rng(seed)
    dim, latent = 6, 2
    u, _ = np.linalg.qr(rng.standard_normal((dim, latent)))
    w = u * np.array([2.0, 0.7])
    b = 0.5 * rng.standard_normal(dim)
    m = w.T @ w + sigma ** 2 * np.eye(latent)
    a = np.linalg.solve(m, w.T)
    post_logvar = np.log(sigma ** 2 / np.diag(m)) + logvar_shift
    encoder = linear_encoder(dim, latent, a.T, -a @ b, post_logvar)
    out, z = linear_decoder(latent, w.T, b)
    vae = VAEModel(encoder, keras.Model(z, out),
                   reconstruction_loss=reconstruction_loss)
    cov = w @ w.T + sigma ** 2 * np.eye(dim)
    x = rng.multivariate_normal(b, cov, size=n).astype("float32")
    exact = stats.multivariate_normal(b, cov).logpdf(x.astype("float64"))
    return vae, x, exact


A = np.array([2.0, -1.5, 1.0, 3.0, -0.5])
C = np.array([0.3, -0.2, 0.0, 0.5, 1.0])
ENC_W, ENC_B, ENC_LV = 0.3 * A, -0.2, -1.0


def one_d_decoder(kind="activation", scale=1.0):
    """Decoder `z -> sigmoid(scale * (A z + C))` built three ways."""
    kernel, bias = scale * A[None, :], scale * C
    if kind == "logits":
        out, z = linear_decoder(1, kernel, bias)
    elif kind == "dense_sigmoid":
        out, z = linear_decoder(1, kernel, bias, activation="sigmoid")
    else:
        out, z = linear_decoder(1, kernel, bias)
        out = keras.layers.Activation("sigmoid")(out)
    return keras.Model(z, out, name="decoder")


def one_d_vae(kind="activation", form="pair", scale=1.0):
    encoder = linear_encoder(len(A), 1, ENC_W[:, None], [ENC_B], [ENC_LV],
                             form)
    vae = VAEModel(encoder, one_d_decoder(kind, scale),
                   from_logits=(kind == "logits"))
    vae.compile()
    return vae


def one_d_data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    p = 1.0 / (1.0 + np.exp(-(z[:, None] * A + C)))
    return (rng.uniform(size=p.shape) < p).astype("float32")


def log_bernoulli(x, logits):
    return (x * logits - np.logaddexp(0.0, logits)).sum(-1)


def one_d_exact_log_px(x):
    grid = np.linspace(-12.0, 12.0, 24001)
    logits = grid[:, None] * A + C
    out = []
    for row in x.astype("float64"):
        lp = (log_bernoulli(row, logits) - 0.5 * grid ** 2
              - 0.5 * math.log(2 * math.pi))
        top = lp.max()
        out.append(top + math.log(np.trapezoid(np.exp(lp - top), grid)))
    return np.array(out)


def one_d_exact_elbo(x):
    """E_q[log p(x|z)] - KL(q || p) by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / math.sqrt(2 * math.pi)
    x = x.astype("float64")
    mu = x @ ENC_W + ENC_B
    std = math.exp(0.5 * ENC_LV)
    z = mu[:, None] + std * nodes[None, :]
    logits = z[..., None] * A + C
    expected = (log_bernoulli(x[:, None, :], logits) * weights).sum(1)
    kl = 0.5 * (mu ** 2 + math.exp(ENC_LV) - 1.0 - ENC_LV)
    return expected - kl


# ----------------------------------------------------------------------------
# log_likelihood
# ----------------------------------------------------------------------------


def test_ppca_exact_posterior_gives_the_closed_form_for_any_k():
    vae, x, exact = ppca(sigma=0.3)
    for k in (1, 7):
        est = evaluation.log_likelihood(vae, x, num_samples=k, seed=0,
                                        sigma=0.3)
        assert est.dtype == np.float64 and est.shape == (len(x),)
        np.testing.assert_allclose(est, exact, atol=2e-4)


def test_ppca_default_sigma_follows_the_mse_loss():
    # sigma^2 = 1/2 is what reconstruction_loss="mse" implies.
    vae, x, exact = ppca(sigma=math.sqrt(0.5))
    est = evaluation.log_likelihood(vae, x, num_samples=1, seed=0)
    np.testing.assert_allclose(est, exact, atol=2e-4)


def test_ppca_approximate_posterior_converges_from_below():
    vae, x, exact = ppca(sigma=0.3, logvar_shift=1.0)
    errors = []
    for k in (1, 20, 2000):
        est = evaluation.log_likelihood(vae, x, num_samples=k, seed=1,
                                        sigma=0.3)
        errors.append(float(np.mean(est - exact)))
    assert errors[0] < -0.3          # the ELBO's gap for a too-wide q
    assert errors[0] < errors[1] < errors[2] <= 0.01
    assert abs(errors[2]) < 0.02


def test_one_d_latent_converges_to_quadrature():
    vae = one_d_vae()
    x = one_d_data()
    exact = one_d_exact_log_px(x)
    errors = {k: evaluation.log_likelihood(vae, x, num_samples=k, seed=2)
              - exact for k in (1, 10, 100, 3000)}
    mean_abs = {k: float(np.mean(np.abs(e))) for k, e in errors.items()}
    assert mean_abs[1] > mean_abs[10] > mean_abs[100] > mean_abs[3000]
    assert abs(float(np.mean(errors[3000]))) < 0.01
    assert mean_abs[3000] < 0.03
    # A lower bound on average for small K.
    assert float(np.mean(errors[1])) < -0.1


def test_single_sample_estimate_averages_to_the_models_elbo():
    vae = one_d_vae()
    x = np.tile(one_d_data(), (60, 1))           # 2,400 rows
    elbo = float(np.mean(one_d_exact_elbo(x)))
    single = evaluation.log_likelihood(vae, x, num_samples=1, seed=3)
    standard_error = single.std() / math.sqrt(len(single))
    assert abs(single.mean() - elbo) < 4 * standard_error
    neg_elbo = vae.evaluate(x, batch_size=len(x), verbose=0,
                            return_dict=True)["neg_elbo"]
    assert abs(-neg_elbo - elbo) < 4 * standard_error


@pytest.mark.parametrize("form", ["triple", "dict"])
def test_every_encoder_output_form_gives_the_same_estimate(form):
    x = one_d_data(12)
    ref = evaluation.log_likelihood(one_d_vae(), x, 50, seed=4)
    est = evaluation.log_likelihood(one_d_vae(form=form), x, 50, seed=4)
    np.testing.assert_allclose(est, ref, rtol=1e-6)


def test_logits_are_used_where_the_decoder_ends_in_a_sigmoid():
    # Large logits saturate float32 probabilities: the logits paths agree,
    # the probability path (clipped to [1e-7, 1 - 1e-7]) does not.
    x = one_d_data(12)
    est = {kind: evaluation.log_likelihood(one_d_vae(kind, scale=15.0), x,
                                           50, seed=5)
           for kind in ("logits", "activation", "dense_sigmoid")}
    np.testing.assert_allclose(est["activation"], est["logits"], rtol=1e-5)
    assert np.abs(est["dense_sigmoid"] - est["logits"]).max() > 0.1
    assert likelihood_module._Likelihood(
        one_d_vae("activation")).outputs_logits
    assert not likelihood_module._Likelihood(
        one_d_vae("dense_sigmoid")).outputs_logits
    sequential = keras.Sequential([keras.Input((1,)), keras.layers.Dense(5),
                                   keras.layers.Activation("sigmoid")])
    assert likelihood_module._sigmoid_logits_model(sequential) is not None
    # At moderate logits the three agree.
    mild = [evaluation.log_likelihood(one_d_vae(kind), x, 50, seed=5)
            for kind in ("logits", "activation", "dense_sigmoid")]
    np.testing.assert_allclose(mild[1], mild[0], rtol=1e-5)
    np.testing.assert_allclose(mild[2], mild[0], rtol=1e-4)


def test_deterministic_and_independent_of_batch_size(monkeypatch):
    vae = one_d_vae()
    x = one_d_data(30)
    rows = []
    original = likelihood_module.forward_batch

    def recording(model, batch):
        rows.append(len(batch))
        return original(model, batch)

    monkeypatch.setattr(likelihood_module, "forward_batch", recording)
    a = evaluation.log_likelihood(vae, x, 40, seed=6)
    rows.clear()
    b = evaluation.log_likelihood(vae, x, 40, seed=6, batch_size=7)
    # Bounded memory: never more rows than batch_size per decoder call,
    # and every (data point, sample) pair exactly once.
    assert max(rows) <= 7 and sum(rows) == 30 * 40
    # The same draws; only float32 rounding in the decoder differs.
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_array_equal(
        a, evaluation.log_likelihood(vae, x, 40, seed=6))
    assert not np.allclose(a, evaluation.log_likelihood(vae, x, 40, seed=7))


def test_progress_goes_to_stderr_only_when_asked(monkeypatch, capsys):
    monkeypatch.setattr(likelihood_module, "_PROGRESS_INTERVAL", 0.0)
    vae, x = one_d_vae(), one_d_data(8)
    evaluation.log_likelihood(vae, x, 20, seed=0, batch_size=40)
    err = capsys.readouterr().err
    assert "log_likelihood: 40/160 decoder rows (25.0%)" in err
    assert "160/160" in err
    evaluation.log_likelihood(vae, x, 20, seed=0, batch_size=40, verbose=0)
    assert "decoder rows" not in capsys.readouterr().err


def test_conv_image_vae_from_the_builder():
    encoder, decoder = build_conv_encoder_decoder(
        (8, 8, 1), z_dim=2, encoder_filters=(4,), encoder_kernel_sizes=3,
        encoder_strides=2, decoder_filters=(1,), decoder_kernel_sizes=3,
        decoder_strides=2, seed=0, kl_layer=False)
    vae = VAEModel(encoder, decoder)
    vae.compile()
    x = (np.random.default_rng(0).uniform(size=(6, 8, 8, 1)) > 0.5).astype(
        "float32")
    assert likelihood_module._Likelihood(vae).outputs_logits
    ll = evaluation.log_likelihood(vae, x, num_samples=30, seed=0)
    assert ll.shape == (6,) and np.isfinite(ll).all()
    # Random binary 8x8 images under an untrained decoder: about 64 log 2
    # nats, and never above 0 (a probability of binary data).
    assert np.all(ll < 0) and np.all(ll > -64 * math.log(2) - 20)


def test_bits_per_dim():
    vae = one_d_vae()
    x = one_d_data(10)
    ll = evaluation.log_likelihood(vae, x, 30, seed=0)
    bpd = evaluation.bits_per_dim(vae, x, 30, seed=0)
    np.testing.assert_allclose(bpd, -ll / (len(A) * math.log(2)))
    gvae, gx, _ = ppca(sigma=0.3)
    gll = evaluation.log_likelihood(gvae, gx, 5, seed=0, sigma=0.3)
    gbpd = evaluation.bits_per_dim(gvae, gx, 5, seed=0, sigma=0.3,
                                   bin_width=1 / 256)
    dims = gx.shape[1]
    np.testing.assert_allclose(
        gbpd, -(gll + dims * math.log(1 / 256)) / (dims * math.log(2)))
    with pytest.raises(ValueError, match="`bin_width` applies to the "
                       "Gaussian"):
        evaluation.bits_per_dim(vae, x, 5, bin_width=1 / 256)


def test_likelihood_bad_input():
    vae = one_d_vae()
    x = one_d_data(4)
    ll = evaluation.log_likelihood
    with pytest.raises(ValueError, match="`num_samples` must be an integer "
                       ">= 1, received 0"):
        ll(vae, x, num_samples=0)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="`x` contains NaN"):
        ll(vae, bad, 5)
    with pytest.raises(ValueError, match=r"needs `x` in \[0, 1\]"):
        ll(vae, x * 255, 5)
    with pytest.raises(ValueError, match="`sigma` only applies"):
        ll(vae, x, 5, sigma=0.5)
    with pytest.raises(ValueError, match="unknown `likelihood` 'poisson'"):
        ll(vae, x, 5, likelihood="poisson")
    with pytest.raises(ValueError, match="`sigma` must be > 0.0"):
        ll(vae, x, 5, likelihood="gaussian", sigma=0.0)
    with pytest.raises(ValueError, match="`seed` must be a non-negative"):
        ll(vae, x, 5, seed=-1)
    with pytest.raises(ValueError, match="`vae` must be a VAEModel"):
        ll(vae.decoder, x, 5)
    with pytest.raises(ValueError, match="non-empty array"):
        ll(vae, x[:0], 5)
    # A linear decoder is not a Bernoulli model without from_logits=True.
    out, z = linear_decoder(1, A[None, :], C)
    linear = VAEModel(vae.encoder, keras.Model(z, out))
    with pytest.raises(ValueError, match=r"decoder outputs in \[0, 1\].*"
                       "from_logits=True"):
        ll(linear, x, 5)


# ----------------------------------------------------------------------------
# Disentanglement metrics
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(0)
    n = 2000
    return np.stack([rng.integers(0, 5, n), rng.integers(0, 8, n),
                     rng.integers(0, 4, n)], axis=1)


def representations(v):
    rng = np.random.default_rng(1)
    standard = (v - v.mean(0)) / v.std(0)
    mixing = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.5], [0.0, 0.5, 1.0]])
    return {
        "equal": v.astype("float64") + 0.02 * rng.standard_normal(v.shape),
        "noise": rng.standard_normal(v.shape),
        "mixed": standard @ mixing,
    }


def test_mig_known_cases(factors):
    reps = representations(factors)
    scores = {k: evaluation.mutual_information_gap(z, factors)
              for k, z in reps.items()}
    assert scores["equal"] > 0.95
    assert scores["noise"] < 0.03
    assert 0.1 < scores["mixed"] < 0.8
    perm = reps["mixed"][:, [2, 0, 1]] * np.array([1.0, -2.0, 0.5]) + 3.0
    assert evaluation.mutual_information_gap(perm, factors) == pytest.approx(
        scores["mixed"], abs=1e-12)


def test_mig_closed_form_with_one_extra_latent():
    # z0 = v (all of H(v)), z1 = v // 2 (I = log 2 of H(v) = log 4): the gap
    # is (log 4 - log 2) / log 4 = 0.5 exactly for a uniform 4-valued v.
    v = np.tile(np.arange(4), 500)
    z = np.stack([v, v // 2], axis=1).astype("float64")
    assert evaluation.mutual_information_gap(z, v, num_bins=4) == (
        pytest.approx(0.5, abs=1e-12))


def test_dci_known_cases(factors):
    reps = representations(factors)
    res = {k: evaluation.dci(z, factors) for k, z in reps.items()}
    assert res["equal"]["disentanglement"] > 0.95
    assert res["equal"]["completeness"] > 0.95
    assert res["equal"]["informativeness"] > 0.95
    assert res["noise"]["disentanglement"] < 0.1
    assert res["noise"]["completeness"] < 0.1
    assert res["noise"]["informativeness"] < 0.4      # chance: 0.2-0.33
    assert 0.05 < res["mixed"]["disentanglement"] < 0.8
    assert res["mixed"]["informativeness"] > 0.9      # all info is there
    assert np.shape(res["equal"]["importance"]) == (3, 3)
    perm = evaluation.dci(reps["mixed"][:, [2, 0, 1]], factors)
    for key in ("disentanglement", "completeness", "informativeness"):
        assert perm[key] == pytest.approx(res["mixed"][key], abs=0.03)


def test_sap_known_cases(factors):
    reps = representations(factors)
    scores = {k: evaluation.sap_score(z, factors) for k, z in reps.items()}
    # A perfect code scores 1 - (best other latent's accuracy) ~ 1 - chance.
    assert 0.6 < scores["equal"] < 0.9
    assert scores["noise"] < 0.03
    assert scores["noise"] < scores["mixed"] < scores["equal"]
    perm = evaluation.sap_score(reps["mixed"][:, [1, 2, 0]], factors)
    assert perm == pytest.approx(scores["mixed"], abs=1e-12)


def test_factor_dicts_and_continuous_factors():
    rng = np.random.default_rng(2)
    n = 3000
    factors = {"shape": rng.integers(0, 3, n),
               "scale": rng.uniform(0.5, 1.0, n).astype("float32"),
               "x": rng.uniform(0.0, 1.0, n).astype("float32")}
    codes, names = evaluation.discretize_factors(factors)
    assert names == ["shape", "scale", "x"]
    assert codes.dtype == np.int64 and codes.shape == (n, 3)
    assert [len(np.unique(codes[:, j])) for j in range(3)] == [3, 10, 10]
    z = np.stack([factors[k] for k in names], axis=1).astype("float64")
    # 20 latent bins nest the 10 factor bins: each factor is fully known.
    assert evaluation.mutual_information_gap(z, factors) > 0.95
    # Whole-number floats are classes, not bins.
    codes, _ = evaluation.discretize_factors(np.array([[0.0], [2.0], [5.0]]))
    assert codes[:, 0].tolist() == [0, 1, 2]


def test_metric_bad_input(factors):
    z = representations(factors)["equal"]
    for metric in (evaluation.mutual_information_gap, evaluation.dci,
                   evaluation.sap_score):
        name = metric.__name__
        with pytest.raises(ValueError, match=f"{name}: `latents` and "
                           "`factors` must have the same number"):
            metric(z[:-1], factors)
        bad = z.copy()
        bad[3, 1] = np.nan
        with pytest.raises(ValueError, match=r"`latents` contains NaN or "
                           r"inf \(first at row 3, column 1\)"):
            metric(bad, factors)
        single = factors.copy()
        single[:, 1] = 7
        with pytest.raises(ValueError, match="factor 'factor_1' in "
                           "`factors` takes a single value"):
            metric(z, single)
        with pytest.raises(ValueError, match="2-D array"):
            metric(z[:, 0], factors)
    with pytest.raises(ValueError, match="contains NaN"):
        evaluation.mutual_information_gap(z[:3], {"a": [0.5, np.nan, 1.0]})
    with pytest.raises(ValueError, match="`num_bins` must be an integer >= "
                       "2"):
        evaluation.mutual_information_gap(z, factors, num_bins=1)
    with pytest.raises(ValueError, match=r"`test_fraction` must be in "
                       r"\(0, 1\)"):
        evaluation.dci(z, factors, test_fraction=1.0)
    with pytest.raises(ValueError, match="differ in length"):
        evaluation.discretize_factors({"a": [1, 2], "b": [1, 2, 3]})


# ----------------------------------------------------------------------------
# beta-VAE and FactorVAE scores
# ----------------------------------------------------------------------------

NAMES = ("a", "b", "c", "d")


def toy_sampler(n, factor, value, seed=None):
    """'Images' are the factor vectors themselves: identity = perfect."""
    rng = np.random.default_rng(seed)
    f = {k: rng.integers(0, 6, n) for k in NAMES}
    if factor is not None:
        f[factor] = (np.full(n, rng.integers(0, 6)) if value is None
                     else np.broadcast_to(value, (n,)).copy())
    return np.stack([f[k] for k in NAMES], axis=1).astype("float32"), f


def noise(images):
    return np.random.default_rng(len(images)).standard_normal(
        (len(images), 4))


@pytest.mark.parametrize("score", [evaluation.beta_vae_score,
                                   evaluation.factor_vae_score])
def test_intervention_scores_known_cases(score):
    kwargs = dict(num_train=200, num_eval=100, batch_size=32, seed=0)
    perfect = score(lambda x: x, toy_sampler, **kwargs)
    assert perfect["eval_accuracy"] >= 0.97
    # Permuted latents plus two dead units: still perfect.
    padded = score(lambda x: np.concatenate([x[:, ::-1], 0 * x[:, :2]], 1),
                   toy_sampler, **kwargs)
    assert padded["eval_accuracy"] >= 0.97
    chance = score(noise, toy_sampler, **kwargs)
    assert chance["eval_accuracy"] < 0.45            # chance is 0.25
    again = score(noise, toy_sampler, **kwargs)
    assert again == chance                            # deterministic


def test_intervention_scores_on_the_shapes_sampler():
    import functools

    from keras_vae_layers import datasets

    encoder, _ = build_conv_encoder_decoder(
        (16, 16, 1), z_dim=3, encoder_filters=(4,), encoder_kernel_sizes=3,
        encoder_strides=2, decoder_filters=(1,), decoder_kernel_sizes=3,
        decoder_strides=2, seed=0)
    sampler = functools.partial(datasets.sample_shapes_with_fixed_factor,
                                size=16, dtype="float32")
    beta = evaluation.beta_vae_score(encoder, sampler, num_train=40,
                                     num_eval=20, batch_size=8)
    factor = evaluation.factor_vae_score(encoder, sampler, num_train=40,
                                         num_eval=20, batch_size=8,
                                         num_variance_estimate=200,
                                         prune_threshold=0.0)
    for res in (beta, factor):
        assert 0.0 <= res["eval_accuracy"] <= 1.0
    assert factor["num_active"] == 3.0


def test_intervention_scores_bad_input():
    for score in (evaluation.beta_vae_score, evaluation.factor_vae_score):
        name = score.__name__
        with pytest.raises(ValueError, match=f"{name}: `sampler` must be "
                           "callable"):
            score(lambda x: x, "shapes")
        with pytest.raises(ValueError, match="`representation` must be a "
                           "Keras encoder"):
            score(42, toy_sampler)
        with pytest.raises(ValueError, match=r"must return \(images, "
                           "factors_dict\\)"):
            score(lambda x: x, lambda n, f, v, seed=None: np.zeros((n, 4)))
        with pytest.raises(ValueError, match="need at least two factors"):
            score(lambda x: x, toy_sampler, factor_names=["a"])
        with pytest.raises(ValueError, match=r"representation\(images\)` "
                           "contains NaN"):
            score(lambda x: x * np.nan, toy_sampler, num_train=2,
                  num_eval=2, batch_size=2)
    with pytest.raises(ValueError, match="factor 'e' is not among"):
        evaluation.beta_vae_score(lambda x: x, toy_sampler,
                                  factor_names=["a", "e"], num_train=4,
                                  num_eval=4, batch_size=2)


def test_reachable_from_the_package():
    import sys

    import keras_vae_layers as kvl

    assert "evaluation" in kvl.__all__ and "evaluation" in dir(kvl)
    assert kvl.evaluation is sys.modules["keras_vae_layers.evaluation"]
    assert kvl.evaluation.log_likelihood is evaluation.log_likelihood
    assert kvl.datasets.sample_shapes_with_fixed_factor.__module__ == (
        "keras_vae_layers.datasets.shapes")
