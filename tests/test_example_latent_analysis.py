"""Runs of `examples/latent_analysis.py`: a tiny smoke run and a short
run that checks the expected behaviour (tiny-beta VAE ~ AE)."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("ae", "vae_tiny_beta", "vae")
STAT_KEYS = {
    "z_radius_mean", "mu_radius_mean", "logvar_min", "logvar_mean",
    "logvar_max", "posterior_std_mean", "mean_abs_z_minus_mu", "mu_spread",
    "rel_abs_z_minus_mu", "active_units", "kl", "reconstruction_bce",
    "sample_nn_distance", "sample_nn_ratio",
}
# Undefined for a plain autoencoder (no posterior variance).
AE_NULL = {"logvar_min", "logvar_mean", "logvar_max", "posterior_std_mean",
           "kl"}


def load_example():
    path = os.path.join(ROOT, "examples", "latent_analysis.py")
    spec = importlib.util.spec_from_file_location("example_latent_analysis",
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(tmp_path, *args):
    written = load_example().main(
        ["--runs-dir", str(tmp_path / "runs"), "--name", "t", *args])
    with open(written["comparison"]) as f:
        return written, json.load(f)


def assert_png(path):
    assert os.path.isfile(path), path
    with Image.open(path) as img:
        assert min(img.size) >= 8
        assert np.asarray(img).std() > 0


def test_latent_analysis_smoke(tmp_path, capsys):
    written, report = run(
        tmp_path, "--n", "200", "--size", "16", "--filters", "4,8",
        "--epochs", "1", "--z-dim", "3", "--batch-size", "32",
        "--n-samples", "8", "--tiny-beta", "1e-4", "--beta", "0.5",
    )
    out_dir = tmp_path / "runs" / "t"
    for name in ("samples_ae", "samples_vae_tiny_beta", "samples_vae",
                 "reconstructions"):
        assert written[name] == str(out_dir / f"{name}.png")
        assert_png(written[name])
    pytest.importorskip("matplotlib")
    assert_png(written["radius_histograms"])

    assert report["args"]["z_dim"] == 3
    assert report["betas"] == {"ae": None, "vae_tiny_beta": 1e-4,
                               "vae": 0.5}
    assert set(report["models"]) == set(MODELS)
    assert report["real_nn_distance"] > 0
    for name, stats in report["models"].items():
        assert set(stats) == STAT_KEYS, name
        for key, value in stats.items():
            if name == "ae" and key in AE_NULL:
                assert value is None, (name, key)
            else:
                assert value is not None and math.isfinite(value), (name, key)
        assert 0 <= stats["active_units"] <= 3
        assert stats["reconstruction_bce"] > 0
        assert stats["sample_nn_distance"] > 0
    ae = report["models"]["ae"]
    assert ae["mean_abs_z_minus_mu"] == 0.0  # the AE's z is its code
    assert ae["z_radius_mean"] == ae["mu_radius_mean"]
    for name in ("vae_tiny_beta", "vae"):
        stats = report["models"][name]
        assert stats["logvar_min"] <= stats["logvar_mean"] <= stats[
            "logvar_max"]
        assert stats["kl"] >= 0
        assert stats["mean_abs_z_minus_mu"] > 0  # z is sampled
    assert isinstance(report["expected_behaviour"], bool)
    assert len(report["verdict"]) == 4

    out = capsys.readouterr().out
    assert "logvar mean" in out and "vae_tiny_beta" in out
    assert "expected behaviour" in out


def test_latent_analysis_rejects_bad_arguments(tmp_path):
    module = load_example()
    for bad in (["--size", "20"], ["--epochs", "0"], ["--beta", "nan"],
                ["--tiny-beta", "-1"], ["--n", "5"]):
        with pytest.raises(SystemExit):
            module.main(["--runs-dir", str(tmp_path), *bad])
    assert not os.listdir(tmp_path)


def test_tiny_beta_vae_behaves_like_an_autoencoder(tmp_path):
    # About 15 s on 2 CPU cores. Over seeds 0-9 these settings gave a
    # logvar gap of 3.2-4.4 and |z - mu| of 1-3 % of the spread of mu for
    # the tiny-beta VAE (vs. 56-70 % for the normal one).
    _, report = run(
        tmp_path, "--n", "2000", "--size", "16", "--filters", "16,32",
        "--epochs", "6", "--z-dim", "8", "--batch-size", "32",
        "--n-samples", "16",
    )
    m = report["models"]
    tiny, vae, ae = m["vae_tiny_beta"], m["vae"], m["ae"]
    assert tiny["logvar_mean"] < vae["logvar_mean"] - 2.0, report["verdict"]
    assert tiny["rel_abs_z_minus_mu"] < 0.05, report["verdict"]  # z ~ mu
    assert vae["rel_abs_z_minus_mu"] > 0.2, report["verdict"]
    # The normal VAE's z radius sits near sqrt(z_dim); the codes of the
    # tiny-beta VAE and the AE are not held to the prior.
    assert abs(vae["z_radius_mean"] - math.sqrt(8)) < 1.0
    # Random N(0, I) points decode to data-like images only for the normal
    # VAE.
    assert vae["sample_nn_ratio"] < min(tiny["sample_nn_ratio"],
                                        ae["sample_nn_ratio"])
    assert report["expected_behaviour"] is True
