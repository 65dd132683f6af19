"""Smoke runs of every example with tiny settings (real files written)."""

import importlib.util
import json
import os

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
