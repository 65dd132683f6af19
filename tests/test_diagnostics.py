import json
import math
import os
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import dense_vae
from keras_vae_layers import SamplingLayer
from keras_vae_layers import diagnostics as diag
from keras_vae_layers.models.encoder_outputs import split_encoder_outputs
from keras_vae_layers import losses
from keras_vae_layers.models import VAEModel

IN_DIM, LATENT = 5, 3


def linear_encoder(kind="pair", seed=0):
    """x -> (mu, logvar) with fixed weights; mu[:, 2] is constant."""
    rng = np.random.default_rng(seed)
    x = keras.Input((IN_DIM,))
    mu_layer = keras.layers.Dense(LATENT, name="mu")
    lv_layer = keras.layers.Dense(LATENT, name="logvar")
    mu, logvar = mu_layer(x), lv_layer(x)
    w_mu = rng.normal(size=(IN_DIM, LATENT)).astype("float32")
    w_mu[:, 2] = 0.0  # an inactive unit: mu[:, 2] == b_mu[2] for all x
    b_mu = np.array([0.1, -0.2, 0.7], "float32")
    w_lv = 0.3 * rng.normal(size=(IN_DIM, LATENT)).astype("float32")
    b_lv = np.array([-1.0, 0.0, 0.5], "float32")
    mu_layer.set_weights([w_mu, b_mu])
    lv_layer.set_weights([w_lv, b_lv])
    params = (w_mu, b_mu, w_lv, b_lv)
    if kind == "pair":
        return keras.Model(x, [mu, logvar]), params
    z = SamplingLayer(seed=5)([mu, logvar])
    if kind == "dict":
        return keras.Model(x, {"z": z, "mu": mu, "logvar": logvar}), params
    return keras.Model(x, [z, mu, logvar]), params


def manual_forward(x, params):
    w_mu, b_mu, w_lv, b_lv = (p.astype("float64") for p in params)
    x = x.astype("float64")
    return x @ w_mu + b_mu, x @ w_lv + b_lv


def numpy_z(mu, logvar, seed=0, clip=5.0):
    eps = np.clip(np.random.default_rng(seed).standard_normal(mu.shape),
                  -clip, clip)
    return mu + np.exp(0.5 * logvar) * eps


@pytest.fixture
def x():
    return np.random.default_rng(1).normal(size=(37, IN_DIM)).astype("float32")


# ------------------------------------------------------------ encode_dataset


def test_encode_dataset_matches_a_manual_numpy_forward(x):
    encoder, params = linear_encoder("pair")
    enc = diag.encode_dataset(encoder, x, batch_size=8, seed=3)
    mu, logvar = manual_forward(x, params)
    assert set(enc) == {"z", "mu", "logvar"}
    assert all(v.dtype == np.float32 and v.shape == (37, LATENT)
               for v in enc.values())
    np.testing.assert_allclose(enc["mu"], mu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(enc["logvar"], logvar, rtol=1e-5, atol=1e-5)
    # [mu, logvar] encoders: z drawn with numpy, eps clamped to 5, seeded.
    np.testing.assert_allclose(enc["z"], numpy_z(mu, logvar, seed=3),
                               rtol=1e-4, atol=1e-4)
    again = diag.encode_dataset(encoder, x, batch_size=8, seed=3)
    np.testing.assert_array_equal(again["z"], enc["z"])


def test_numpy_noise_is_clamped():
    mu = np.zeros((2000, 4), "float32")
    z = diag.encoding._sample_numpy(mu, mu, seed=0, eps_clip=0.5)
    assert np.abs(z).max() <= 0.5 + 1e-6
    assert np.abs(z).max() > 0.49


@pytest.mark.parametrize("kind", ["triple", "dict"])
def test_encoders_with_their_own_z(kind, x):
    encoder, params = linear_encoder(kind)
    enc = diag.encode_dataset(encoder, x, batch_size=10)
    mu, logvar = manual_forward(x, params)
    np.testing.assert_allclose(enc["mu"], mu, rtol=1e-5, atol=1e-5)
    # z comes from the SamplingLayer: random, within the 5-sigma clamp.
    dev = np.abs(enc["z"] - mu) / np.exp(0.5 * logvar)
    assert dev.max() <= 5.0 + 1e-3
    assert dev.std() > 0.1


@pytest.mark.parametrize("batch_size", [1, 6, 37, 1000])
def test_batching_gives_the_same_result_as_one_batch(batch_size, x):
    encoder, _ = linear_encoder("pair")
    one = diag.encode_dataset(encoder, x, batch_size=len(x))
    other = diag.encode_dataset(encoder, x, batch_size=batch_size)
    for key in ("z", "mu", "logvar"):
        np.testing.assert_allclose(other[key], one[key], rtol=1e-6, atol=1e-6)
    s1 = diag.compute_latent_statistics(**one)
    s2 = diag.latent_statistics(encoder, x, batch_size=batch_size)
    assert diag.summary(s1) == pytest.approx(diag.summary(s2), rel=1e-6)
    np.testing.assert_array_equal(s1["z_radius_hist"], s2["z_radius_hist"])


def test_datasets_and_iterables_of_batches(x):
    import tensorflow as tf

    encoder, params = linear_encoder("pair")
    mu, _ = manual_forward(x, params)
    ds = tf.data.Dataset.from_tensor_slices((x, x)).batch(9)
    np.testing.assert_allclose(diag.encode_dataset(encoder, ds)["mu"], mu,
                               rtol=1e-5, atol=1e-5)
    gen = (x[i:i + 4] for i in range(0, len(x), 4))
    np.testing.assert_allclose(diag.encode_dataset(encoder, gen)["mu"], mu,
                               rtol=1e-5, atol=1e-5)

    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return (x[i * 10:(i + 1) * 10],)

    np.testing.assert_allclose(diag.encode_dataset(encoder, Batches())["mu"],
                               mu, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"must be batched"):
        diag.encode_dataset(encoder, tf.data.Dataset.from_tensor_slices(x))


def test_vaes_are_searched_for_their_encoder(x):
    data = np.random.default_rng(0).uniform(size=(12, 16)).astype("float32")
    nested = dense_vae(nested=True)
    flat = dense_vae(nested=False)
    for model in (nested, flat):
        encoder = diag.find_encoder(model)
        z, mu, logvar = encoder.predict_on_batch(data)
        enc = diag.encode_dataset(model, data)
        np.testing.assert_allclose(enc["mu"], mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(enc["logvar"], logvar, rtol=1e-5,
                                   atol=1e-6)
    # A VAE with mu and logvar as extra outputs (KL strategy "b") is not
    # taken for an encoder: its [z, mu, logvar] are read from the graph.
    inp = keras.Input((16,))
    mu = keras.layers.Dense(2)(inp)
    logvar = keras.layers.Dense(2)(inp)
    z = SamplingLayer(seed=1)([mu, logvar])
    extra = keras.Model(inp, [keras.layers.Dense(16)(z), mu, logvar])
    _, mu_ref, _ = extra.predict_on_batch(data)
    np.testing.assert_allclose(diag.encode_dataset(extra, data)["mu"], mu_ref,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"first of three encoder outputs"):
        split_encoder_outputs([data, mu_ref, mu_ref], "t")
    with pytest.raises(ValueError, match=r"iterable of batches"):
        diag.encode_dataset(nested, 3.5)
    assert diag.find_encoder(nested) is nested.get_layer("encoder")
    assert diag.find_decoder(nested) is nested.get_layer("decoder")
    with pytest.raises(ValueError, match=r"decoder="):
        diag.find_decoder(flat)

    encoder, params = linear_encoder("pair")
    dec_in = keras.Input((LATENT,))
    decoder = keras.Model(dec_in, keras.layers.Dense(IN_DIM)(dec_in))
    vae = VAEModel(encoder, decoder)
    assert diag.find_encoder(vae) is encoder
    assert diag.find_decoder(vae) is decoder
    np.testing.assert_allclose(diag.encode_dataset(vae, x)["mu"],
                               manual_forward(x, params)[0], rtol=1e-5,
                               atol=1e-5)


# -------------------------------------------------------------- statistics


def reference_statistics(z, mu, logvar, active_threshold, deviation_threshold,
                         width):
    z, mu, logvar = (a.astype("float64") for a in (z, mu, logvar))
    r_z = np.linalg.norm(z, axis=1)
    r_mu = np.linalg.norm(mu, axis=1)
    top = max(r_z.max(), r_mu.max())
    edges = np.arange(0.0, math.ceil(top / width) * width + width / 2, width)
    kl = 0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)
    return {
        "z_radius": r_z,
        "mu_radius": r_mu,
        "radius_bin_edges": edges,
        "z_radius_hist": np.histogram(r_z, edges)[0],
        "mu_radius_hist": np.histogram(r_mu, edges)[0],
        "z_radius_mean": r_z.mean(),
        "mu_radius_mean": r_mu.mean(),
        "radius_abs_deviation": np.mean(np.abs(r_z - r_mu)),
        "radius_rel_deviation": np.mean(np.abs(r_z - r_mu) / r_mu),
        "logvar_min": logvar.min(),
        "logvar_mean": logvar.mean(),
        "logvar_max": logvar.max(),
        "max_abs_deviation": np.abs(z - mu).max(),
        "n_large_deviations": int(
            (np.abs(z - mu) > deviation_threshold).sum()),
        "mu_variance": mu.var(axis=0),
        "active_units": int((mu.var(axis=0) > active_threshold).sum()),
        "kl_per_dim": kl.mean(axis=0),
        "kl_total": kl.sum(axis=1).mean(),
        "kl_per_dim_mean": kl.mean(),
    }


def test_every_statistic_against_a_numpy_reference(x):
    encoder, params = linear_encoder("pair")
    stats = diag.latent_statistics(encoder, x, batch_size=7,
                                   hist_bin_width=0.25,
                                   deviation_threshold=0.5)
    enc = diag.encode_dataset(encoder, x)
    mu, logvar = manual_forward(x, params)
    # From the encodings, and from the manual forward pass (z re-drawn).
    for z, m, lv in ((enc["z"], enc["mu"], enc["logvar"]),
                     (numpy_z(mu, logvar), mu, logvar)):
        ref = reference_statistics(z, m, lv, 0.01, 0.5, 0.25)
        for key, expected in ref.items():
            got = stats[key]
            if isinstance(expected, np.ndarray) and expected.dtype.kind == "i":
                np.testing.assert_array_equal(got, expected, err_msg=key)
            else:
                np.testing.assert_allclose(got, expected, rtol=1e-4,
                                           atol=1e-5, err_msg=key)
    assert stats["n_samples"] == len(x) and stats["z_dim"] == LATENT
    # Unit 2 has constant mu by construction; the others vary.
    assert stats["active_units"] == 2
    np.testing.assert_array_equal(stats["active_dims"], [0, 1])
    assert stats["z_radius_hist"].sum() == len(x)
    # The KL matches the package's loss functions.
    kl_dims = keras.ops.convert_to_numpy(
        losses.kl_divergence_per_dim(enc["mu"], enc["logvar"]))
    np.testing.assert_allclose(stats["kl_per_dim"], kl_dims.mean(axis=0),
                               rtol=1e-5)
    kl = keras.ops.convert_to_numpy(
        losses.kl_divergence(enc["mu"], enc["logvar"]))
    assert stats["kl_total"] == pytest.approx(float(kl.mean()), rel=1e-5)


def test_hand_made_deviations_and_thresholds():
    mu = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]])
    z = mu + np.array([[0.5, 4.0], [-3.5, 1.0], [0.0, -3.0]])
    logvar = np.array([[-2.0, 0.0], [1.0, 3.0], [0.5, 0.5]])
    stats = diag.compute_latent_statistics(z, mu, logvar,
                                           deviation_threshold=3.0,
                                           active_threshold=0.5)
    assert stats["max_abs_deviation"] == 4.0
    assert stats["n_large_deviations"] == 2  # 4.0 and 3.5; 3.0 is not > 3
    assert (stats["logvar_min"], stats["logvar_max"]) == (-2.0, 3.0)
    # var(mu[:, 0]) = 2/3 > 0.5; var(mu[:, 1]) = 2/3 > 0.5.
    assert stats["active_units"] == 2
    assert diag.compute_latent_statistics(
        z, mu, logvar, active_threshold=0.7)["active_units"] == 0
    # The zero-radius mu sample is left out of the relative deviation.
    r_z, r_mu = np.linalg.norm(z, axis=1), np.linalg.norm(mu, axis=1)
    expected = np.mean(np.abs(r_z - r_mu)[1:] / r_mu[1:])
    assert stats["radius_rel_deviation"] == pytest.approx(expected)


def test_histogram_binning():
    r = np.array([[0.0, 0.0], [0.3, 0.4], [3.0, 4.0]])  # radii 0, 0.5, 5
    stats = diag.compute_latent_statistics(r, r, r, hist_bin_width=1.0)
    np.testing.assert_allclose(stats["radius_bin_edges"], np.arange(6.0))
    np.testing.assert_array_equal(stats["z_radius_hist"], [2, 0, 0, 0, 1])
    stats = diag.compute_latent_statistics(r, r, r, hist_bin_width=0.4,
                                           hist_range=(0.2, 1.0))
    np.testing.assert_allclose(stats["radius_bin_edges"], [0.2, 0.6, 1.0])
    np.testing.assert_array_equal(stats["mu_radius_hist"], [1, 0])
    zero = np.zeros((4, 2))
    stats = diag.compute_latent_statistics(zero, zero, zero)
    np.testing.assert_allclose(stats["radius_bin_edges"], [0.0, 0.5])
    assert math.isnan(stats["radius_rel_deviation"])


def test_summary_is_scalar_floats_and_json_ready(x):
    encoder, _ = linear_encoder("triple")
    stats = diag.latent_statistics(encoder, x)
    summ = diag.summary(stats)
    assert all(type(v) is float for v in summ.values())
    expected = {"n_samples", "z_dim", "z_radius_mean", "mu_radius_mean",
                "radius_abs_deviation", "radius_rel_deviation",
                "logvar_min", "logvar_mean", "logvar_max",
                "max_abs_deviation", "n_large_deviations", "active_units",
                "kl_total", "kl_per_dim_mean"}
    assert set(summ) == expected
    assert summ["active_units"] == stats["active_units"]
    json.loads(json.dumps(summ))
    with pytest.raises(ValueError, match="summary"):
        diag.summary([1, 2])


def test_bad_input(x):
    encoder, _ = linear_encoder("pair")
    with pytest.raises(ValueError, match=r"`x` is empty"):
        diag.encode_dataset(encoder, x[:0])
    with pytest.raises(ValueError, match=r"yielded no samples"):
        diag.encode_dataset(encoder, iter([]))
    with pytest.raises(ValueError, match=r"shape \(5,\) does not match"):
        diag.encode_dataset(encoder, x[0])
    with pytest.raises(ValueError, match=r"\(37, 5, 1\) does not match"):
        diag.encode_dataset(encoder, x[..., None])
    with pytest.raises(ValueError, match=r"batch_size"):
        diag.encode_dataset(encoder, x, batch_size=0)
    with pytest.raises(ValueError, match=r"hist_bin_width.*received 0"):
        diag.latent_statistics(encoder, x, hist_bin_width=0)
    with pytest.raises(ValueError, match=r"hist_bin_width.*received -1"):
        diag.latent_statistics(encoder, x, hist_bin_width=-1.0)
    with pytest.raises(ValueError, match=r"hist_range.*low < high"):
        diag.latent_statistics(encoder, x, hist_range=(2.0, 2.0))
    with pytest.raises(ValueError, match=r"active_threshold"):
        diag.latent_statistics(encoder, x, active_threshold=-0.1)
    a = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"same shape"):
        diag.compute_latent_statistics(a, a, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\(n, latent_dim\)"):
        diag.compute_latent_statistics(a[0], a[0], a[0])
    with pytest.raises(ValueError, match=r"`z` is empty"):
        diag.compute_latent_statistics(a[:0], a[:0], a[:0])
    inp = keras.Input((IN_DIM,))
    single = keras.Model(inp, keras.layers.Dense(2)(inp))
    with pytest.raises(ValueError, match=r"\[z, mu, logvar\].*1 output"):
        diag.encode_dataset(single, x)
    with pytest.raises(ValueError, match=r"expected a Keras encoder"):
        diag.encode_dataset("encoder", x)


# ------------------------------------------------------------------- plots


def test_pca_matches_numpy_svd():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(50, 4)) * [5.0, 2.0, 0.5, 0.1]
    proj, ratio = diag.pca_2d(pts)
    centred = pts - pts.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(centred.T, bias=True))
    order = np.argsort(eigval)[::-1]
    ref = centred @ eigvec[:, order[:2]]
    np.testing.assert_allclose(np.abs(proj), np.abs(ref), atol=1e-8)
    np.testing.assert_allclose(ratio, eigval[order[:2]] / eigval.sum())
    assert ratio[0] > 0.8


def _png(path):
    assert os.path.getsize(path) > 0
    with Image.open(path) as img:
        img.load()
        return img.size, np.asarray(img.convert("L"))


def test_radius_histogram_plot(tmp_path, x):
    encoder, _ = linear_encoder("pair")
    stats = diag.latent_statistics(encoder, x)
    path = tmp_path / "plots" / "radii.png"
    out = diag.plot_radius_histograms(
        {"model a": stats, "model b": stats["z_radius"] * 2.0}, path,
        which="mu", title="radii")
    assert out == str(path)
    size, pixels = _png(path)
    assert size == (600, 400)
    assert pixels.std() > 0
    diag.plot_radius_histograms({"a": stats}, tmp_path / "small.png",
                                figsize=(4, 3), dpi=50, hist_range=(0, 10))
    assert _png(tmp_path / "small.png")[0] == (200, 150)
    assert sorted(os.listdir(tmp_path / "plots")) == ["radii.png"]
    with pytest.raises(ValueError, match=r"which"):
        diag.plot_radius_histograms({"a": stats}, path, which="sigma")
    with pytest.raises(ValueError, match=r"non-empty dict"):
        diag.plot_radius_histograms({}, path)
    with pytest.raises(ValueError, match=r"hist_bin_width"):
        diag.plot_radius_histograms({"a": stats}, path, bin_width=0)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_latent_scatter_plot(tmp_path, dim):
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(60, dim))
    for i, labels in enumerate([None, np.arange(60) % 3,
                                rng.uniform(size=60),
                                np.array(["a", "b"] * 30)]):
        path = tmp_path / f"scatter{i}.png"
        diag.plot_latent_scatter(mu, labels, path, dpi=40)
        size, pixels = _png(path)
        assert size == (240, 240)
        assert pixels.std() > 0
    with pytest.raises(ValueError, match=r"one entry per point \(60\)"):
        diag.plot_latent_scatter(mu, np.arange(5), tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(n, latent_dim\)"):
        diag.plot_latent_scatter(mu[0], None, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError,
                       match=r"pip install keras_vae_layers\[plot\]"):
        diag.plot_latent_scatter(np.zeros((3, 2)), None, tmp_path / "a.png")
