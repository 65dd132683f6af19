import copy

import keras
import numpy as np
import pytest

from helpers import STEPS_ARE_TRACED, TraceCounter, binary_data, dense_vae
from helpers import trace_mark
from keras_vae_layers import SamplingLayer
from keras_vae_layers.callbacks.latent_stats import LOGGED_STATISTICS
from keras_vae_layers.callbacks.latent_stats import LatentStatisticsLogger
from keras_vae_layers.diagnostics import encode_dataset
from keras_vae_layers.models import VAEModel

DIM, LATENT = 12, 3
KEYS = [f"latent_{key}" for key, _ in LOGGED_STATISTICS]


def make_vae(kind="pair", counter=None):
    x = keras.Input((DIM,))
    h = keras.layers.Dense(8, activation="tanh")(x)
    if counter is not None:
        h = counter(h)
    mu = keras.layers.Dense(LATENT)(h)
    logvar = keras.layers.Dense(LATENT)(h)
    outputs = [mu, logvar]
    if kind == "triple":
        outputs = [SamplingLayer(seed=2)([mu, logvar]), mu, logvar]
    encoder = keras.Model(x, outputs, name="encoder")
    z = keras.Input((LATENT,))
    decoder = keras.Model(
        z, keras.layers.Dense(DIM, activation="sigmoid")(z), name="decoder")
    vae = VAEModel(encoder, decoder)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


def reference(z, mu, logvar, threshold=0.01):
    z, mu, logvar = (a.astype("float64") for a in (z, mu, logvar))
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)
    return {
        "latent_z_radius": np.linalg.norm(z, axis=1).mean(),
        "latent_mu_radius": np.linalg.norm(mu, axis=1).mean(),
        "latent_logvar_min": logvar.min(),
        "latent_logvar_mean": logvar.mean(),
        "latent_logvar_max": logvar.max(),
        "latent_active_units": float((mu.var(axis=0) > threshold).sum()),
        "latent_kl_per_dim": kl.mean(),
        "latent_kl_total": kl.sum(axis=1).mean(),
    }


@pytest.fixture
def data():
    return binary_data(64, DIM), binary_data(40, DIM, seed=1)


def test_logged_values_match_a_numpy_reference(data):
    x, x_val = data
    vae = make_vae("pair")
    cb = LatentStatisticsLogger(x_val, batch_size=16)
    hist = vae.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    for key in KEYS:
        assert len(hist.history[key]) == 2, key
        assert all(type(v) is float for v in hist.history[key])
    # [mu, logvar] encoder: z is the seeded numpy draw, so the final epoch's
    # values can be recomputed exactly from the trained encoder.
    enc = encode_dataset(vae.encoder, x_val, seed=0)
    ref = reference(enc["z"], enc["mu"], enc["logvar"])
    for key, value in ref.items():
        assert hist.history[key][-1] == pytest.approx(value, rel=1e-5,
                                                      abs=1e-6), key
    assert cb.last_statistics["n_samples"] == 40
    # The logged KL is the model's own (unweighted) KL on that sample.
    assert hist.history["latent_kl_total"][-1] == pytest.approx(
        vae.evaluate(x_val, verbose=0, return_dict=True)["kl_loss"],
        rel=1e-4)


def test_encoder_sampled_z_and_mu_statistics(data):
    x, x_val = data
    vae = make_vae("triple")
    cb = LatentStatisticsLogger(x_val, prefix="lat/")
    hist = vae.fit(x, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    enc = encode_dataset(vae.encoder, x_val)
    ref = reference(enc["z"], enc["mu"], enc["logvar"])
    for key in ("mu_radius", "logvar_min", "logvar_max", "active_units",
                "kl_per_dim", "kl_total"):
        assert hist.history[f"lat/{key}"][0] == pytest.approx(
            ref[f"latent_{key}"], rel=1e-5, abs=1e-6), key
    # z is the SamplingLayer's own draw: random, but of the right scale.
    assert hist.history["lat/z_radius"][0] == pytest.approx(
        ref["latent_z_radius"], rel=0.3)


def test_every_n_epochs_and_max_samples(data):
    x, _ = data
    vae = make_vae()
    big = binary_data(100, DIM, seed=3)
    cb = LatentStatisticsLogger(big, every_n_epochs=2, max_samples=30)
    assert cb.x_val_sample.shape == (30, DIM)
    np.testing.assert_array_equal(cb.x_val_sample, big[:30])
    hist = vae.fit(x, epochs=4, batch_size=16, verbose=0, callbacks=[cb])
    assert len(hist.history["loss"]) == 4
    assert len(hist.history["latent_mu_radius"]) == 2
    assert cb.last_statistics["n_samples"] == 30


def test_no_retrace_per_epoch(data):
    x, x_val = data
    counter = TraceCounter()
    vae = make_vae(counter=counter)
    traces = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: traces.append(
            trace_mark(counter, vae, vae.encoder)))
    # 40 rows in batches of 16: two batch shapes, both traced in epoch 1.
    vae.fit(x, epochs=4, batch_size=16, verbose=0,
            callbacks=[LatentStatisticsLogger(x_val, batch_size=16),
                       recorder])
    if STEPS_ARE_TRACED:
        assert traces[0] > 0
    assert traces == [traces[0]] * 4


@pytest.mark.parametrize("nested", [True, False])
def test_functional_vaes(nested):
    vae = dense_vae(nested=nested)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    x = binary_data(32)
    hist = vae.fit(x, x, epochs=2, batch_size=16, verbose=0,
                   callbacks=[LatentStatisticsLogger(x[:20])])
    for key in KEYS:
        assert len(hist.history[key]) == 2
        assert np.all(np.isfinite(hist.history[key]))
    assert hist.history["latent_active_units"][-1] <= 2


def test_explicit_encoder(data):
    x, x_val = data
    vae = dense_vae(nested=False, input_dim=DIM)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    other = make_vae("pair")
    cb = LatentStatisticsLogger(x_val, encoder=other.encoder)
    hist = vae.fit(x, x, epochs=1, verbose=0, callbacks=[cb])
    enc = encode_dataset(other.encoder, x_val)
    assert hist.history["latent_mu_radius"][0] == pytest.approx(
        np.linalg.norm(enc["mu"], axis=1).mean(), rel=1e-5)


def test_deepcopy_before_and_after_training(data):
    x, x_val = data
    vae = make_vae()
    cb = LatentStatisticsLogger(x_val)
    before = copy.deepcopy(cb)
    assert before.model is None
    vae.fit(x, epochs=1, verbose=0, callbacks=[cb])
    after = copy.deepcopy(cb)
    assert after.model is None and after._encoder is None
    np.testing.assert_array_equal(after.x_val_sample, cb.x_val_sample)
    shared = LatentStatisticsLogger(x_val, encoder=vae.encoder)
    assert copy.deepcopy(shared).encoder is vae.encoder
    hist = make_vae().fit(x, epochs=1, verbose=0, callbacks=[after, before])
    assert "latent_kl_total" in hist.history


def test_config_round_trip(data):
    _, x_val = data
    cb = LatentStatisticsLogger(x_val[:5], batch_size=8, prefix="p_",
                                every_n_epochs=2, active_threshold=0.1,
                                max_samples=100, seed=4)
    config = cb.get_config()
    clone = LatentStatisticsLogger.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_allclose(clone.x_val_sample, x_val[:5])


def test_errors(data):
    x, x_val = data
    owner = r"LatentStatisticsLogger: "
    with pytest.raises(ValueError, match=owner + r".*non-empty"):
        LatentStatisticsLogger(x_val[:0])
    with pytest.raises(ValueError, match=owner + r".*non-empty"):
        LatentStatisticsLogger(x_val[0])
    with pytest.raises(ValueError, match=owner + r"`batch_size`"):
        LatentStatisticsLogger(x_val, batch_size=0)
    with pytest.raises(ValueError, match=owner + r"`every_n_epochs`"):
        LatentStatisticsLogger(x_val, every_n_epochs=0)
    with pytest.raises(ValueError, match=owner + r"`max_samples`"):
        LatentStatisticsLogger(x_val, max_samples=0)
    with pytest.raises(ValueError, match=owner + r"`active_threshold`"):
        LatentStatisticsLogger(x_val, active_threshold=-1.0)
    with pytest.raises(ValueError, match=owner + r"`encoder` must be"):
        LatentStatisticsLogger(x_val, encoder="enc")
    vae = make_vae()
    with pytest.raises(ValueError, match=owner + r"`x_val_sample` of shape "
                                                 r"\(40, 5\) does not match"):
        vae.fit(x, epochs=1, verbose=0,
                callbacks=[LatentStatisticsLogger(x_val[:, :5])])


# ---------------------------------------------------------------------------
# Opt-in per-epoch log-likelihood and MIG
# ---------------------------------------------------------------------------


def test_opt_in_log_likelihood_and_mig_match_offline_values(data):
    from keras_vae_layers import evaluation

    x, x_val = data
    factors = np.random.default_rng(5).integers(0, 3, size=(len(x_val), 2))
    vae = make_vae("pair")
    cb = LatentStatisticsLogger(x_val, log_likelihood_samples=8,
                                factors=factors, seed=3)
    plain = LatentStatisticsLogger(x_val, prefix="plain_")
    hist = vae.fit(x, epochs=2, batch_size=16, verbose=0,
                   callbacks=[cb, plain])
    assert len(hist.history["latent_log_likelihood"]) == 2
    assert len(hist.history["latent_mig"]) == 2
    assert not any(k.startswith("plain_") and k.endswith(("likelihood",
                                                          "mig"))
                   for k in hist.history)
    ll = evaluation.log_likelihood(vae, x_val, num_samples=8, seed=3)
    assert hist.history["latent_log_likelihood"][-1] == pytest.approx(
        ll.mean(), rel=1e-6)
    mu = encode_dataset(vae.encoder, x_val)["mu"]
    assert hist.history["latent_mig"][-1] == pytest.approx(
        evaluation.mutual_information_gap(mu, factors), abs=1e-12)


@pytest.mark.skipif(
    not STEPS_ARE_TRACED,
    reason="torch runs predict steps eagerly: there is no trace to repeat")
def test_log_likelihood_does_not_retrace_the_decoder_per_epoch(data):
    x, x_val = data
    vae = make_vae("pair")
    counter = TraceCounter()
    z = keras.Input((LATENT,))
    h = counter(keras.layers.Dense(DIM)(z))
    vae = VAEModel(vae.encoder,
                   keras.Model(z, keras.layers.Activation("sigmoid")(h)))
    vae.compile(optimizer="adam")
    traces = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: traces.append(counter.traces))
    vae.fit(x, epochs=4, batch_size=16, verbose=0, callbacks=[
        LatentStatisticsLogger(x_val, log_likelihood_samples=4), recorder])
    assert traces[1:] == [traces[0]] * 3


def test_opt_in_metrics_config_and_errors(data):
    x, x_val = data
    factors = {"a": np.arange(len(x_val)) % 3,
               "b": np.linspace(0.0, 1.0, len(x_val))}
    cb = LatentStatisticsLogger(x_val, log_likelihood_samples=5,
                                factors=factors, max_samples=30)
    assert cb.factors.shape == (30, 2) and cb.factors.dtype == np.int64
    config = cb.get_config()
    clone = LatentStatisticsLogger.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(clone.factors, cb.factors)
    owner = r"LatentStatisticsLogger: "
    with pytest.raises(ValueError, match=owner + r"`factors` must have one "
                       r"row per row of `x_val_sample` \(40\), received 39"):
        LatentStatisticsLogger(x_val, factors=factors["a"][:-1])
    with pytest.raises(ValueError, match=owner + "factor 'factor_0' in "
                       "`factors` takes a single value"):
        LatentStatisticsLogger(x_val, factors=np.zeros(len(x_val)))
    with pytest.raises(ValueError, match=owner + "`log_likelihood_samples` "
                       "must be an integer >= 0"):
        LatentStatisticsLogger(x_val, log_likelihood_samples=-1)
    # A Functional VAE has no decoder to score.
    functional = dense_vae(input_dim=DIM, nested=True)
    functional.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=owner + "`vae` must be a VAEModel"
                       ".*needed by `log_likelihood_samples`"):
        functional.fit(x, x, epochs=1, verbose=0, callbacks=[
            LatentStatisticsLogger(x_val, log_likelihood_samples=2)])
    with pytest.raises(ValueError, match=owner + r"likelihood='bernoulli' "
                       r"needs `x` in \[0, 1\]"):
        make_vae().fit(x, epochs=1, verbose=0, callbacks=[
            LatentStatisticsLogger(x_val * 2, log_likelihood_samples=2)])
