"""Smoke runs of every example with tiny settings (real files written)."""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_example(name):
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path, min_size=8):
    assert os.path.isfile(path), path
    with Image.open(path) as img:
        assert min(img.size) >= min_size
        assert np.asarray(img).std() > 0  # not blank


def test_image_folder_vae_smoke(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        img = (rng.uniform(size=(40 + i, 36, 3)) * 255).astype("uint8")
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    module = load_example("image_folder_vae")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        written = module.main([
            str(folder), "--runs-dir", str(tmp_path / "runs"), "--size", "16",
            "--filters", "4,8", "--z-dim", "3", "--intermediate-dim", "4",
            "--epochs", "1", "--batch-size", "8",
        ])
    for key in ("samples", "samples_sharpened", "reconstructions",
                "uniform_limit_0.5", "uniform_limit_8"):
        assert_png(written[key])
    assert os.path.getsize(written["decoder_weights"]) > 0
    with open(written["metrics"]) as f:
        metrics = json.load(f)
    assert len(metrics["history"]["neg_elbo"]) == 1


def test_image_folder_vae_missing_folder(tmp_path):
    module = load_example("image_folder_vae")
    with pytest.raises(SystemExit):
        module.main([str(tmp_path / "nope")])


def test_train_vae_demo_writes_everything_and_resumes(tmp_path):
    module = load_example("train_vae")
    common = ["--runs-dir", str(tmp_path), "--name", "tiny", "--n", "200",
              "--size", "16", "--z-dim", "2", "--intermediate-dim", "8",
              "--warmup-epochs", "1", "--batch-size", "50"]
    written = module.main(common + ["--epochs", "2"])
    run = tmp_path / "tiny"
    for key in ("reconstructions", "samples_final", "radius_histogram"):
        assert_png(written[key])
    for epoch in (1, 2):
        assert_png(str(run / "samples" / f"samples_epoch{epoch:04d}.png"))
        assert_png(str(run / "samples" / f"reconstructions_epoch{epoch:04d}.png"))
    with open(written["metrics"]) as f:
        metrics = json.load(f)
    assert metrics["initial_epoch"] == 0
    assert len(metrics["history"]["val_neg_elbo"]) == 2
    assert metrics["history"]["beta"] == [0.0, 1.0]  # one warm-up epoch at 0
    assert "latent_active_units" in metrics["history"]
    assert metrics["latent_statistics"]["mu_radius_mean"] > 0
    ckpts = sorted(os.listdir(run / "checkpoints"))
    assert any(name.startswith("ckpt-epoch0002-")
               and name.endswith(".decoder.weights.h5") for name in ckpts)

    import keras
    reloaded = keras.saving.load_model(written["model"])
    assert reloaded.predict(np.zeros((1, 16, 16, 1), "float32"),
                            verbose=0)["reconstruction"].shape == (1, 16, 16, 1)

    # Same command with more epochs resumes from the latest checkpoint.
    written = module.main(common + ["--epochs", "3"])
    with open(written["metrics"]) as f:
        metrics = json.load(f)
    assert metrics["initial_epoch"] == 2
    assert len(metrics["history"]["loss"]) == 3  # 2 recorded + 1 new epoch
    assert metrics["history"]["beta"] == [0.0, 1.0, 1.0]
    assert os.path.isfile(run / "samples" / "samples_epoch0003.png")
    # The rerun continued the first run's checkpoints and rotation.
    from keras_vae_layers.callbacks import list_checkpoints
    saved = list_checkpoints(run / "checkpoints")
    assert len({m["run"] for m in saved}) == 1
    assert saved[-1]["epoch"] == 3 and len(saved) <= 3  # keep_last=2 + best

    # Rerunning a finished run changes nothing; --fresh starts over.
    before = os.path.getmtime(written["metrics"])
    assert module.main(common + ["--epochs", "3"]) == {}
    assert os.path.getmtime(written["metrics"]) == before
    written = module.main(common + ["--epochs", "1", "--fresh"])
    with open(written["metrics"]) as f:
        assert json.load(f)["initial_epoch"] == 0
    assert not any(name.startswith("ckpt-epoch0003")
                   for name in os.listdir(run / "checkpoints"))


def test_train_vae_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    module = load_example("train_vae")
    with pytest.raises(SystemExit, match="unknown dataset name 'cifar'.*'shapes', 'mnist', 'fashion_mnist'"):
        module.main(["--runs-dir", str(tmp_path), "--dataset", "cifar"])


def test_inference_switch_example(tmp_path):
    module = load_example("inference_switch")
    result = module.main(["--runs-dir", str(tmp_path), "--n", "128",
                          "--epochs", "1", "--size", "16"])
    vae = result["vae_switch"]
    assert vae["stochastic_max_abs_z_minus_mu"] > 0
    assert vae["deterministic_max_abs_z_minus_mu"] == 0.0
    assert vae["restored_max_abs_z_minus_mu"] > 0
    assert vae["same_predict_function"] is True
    pitfall = result["python_attribute_pitfall"]
    assert pitfall["enabled_output"] == 1.0
    # The stale graph is a tf.function / jax.jit matter: torch runs the
    # predict step eagerly and reads the attribute on every call.
    stale = 1.0 if keras.backend.backend() != "torch" else 0.0
    assert pitfall["stale_output"] == stale
    assert pitfall["refreshed_output"] == 0.0
    assert os.path.isfile(tmp_path / "switch" / "inference_switch.json")


def test_examples_run_as_scripts_from_any_directory(tmp_path):
    # `./scripts/demo` runs `python examples/train_vae.py`: the script finds
    # `examples._common` from another folder.
    env = dict(os.environ, PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "train_vae.py"),
         "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr
    assert "--runs-dir" in result.stdout and "--warmup-epochs" in result.stdout
