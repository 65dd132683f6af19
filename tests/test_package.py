"""The package namespace: lazy sub-packages reached as attributes."""

import subprocess
import sys

import pytest

import keras_vae_layers as kvl


def _run(code):
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_subpackages_reachable_as_attributes():
    out = _run(
        "import sys\n"
        "import keras_vae_layers as kvl\n"
        "print('keras_tuner' in sys.modules)\n"
        "print(kvl.callbacks.VAECheckpoint.__name__)\n"
        "print(kvl.diagnostics.latent_statistics.__name__)\n"
        "print(kvl.tuning.VAEHyperModel.__name__)\n"
        "print('keras_tuner' in sys.modules)\n"
    )
    assert out.split() == ["False", "VAECheckpoint", "latent_statistics",
                           "VAEHyperModel", "True"]


def test_lazy_names_listed_and_unknown_names_raise():
    for name in ("callbacks", "diagnostics", "tuning"):
        assert name in dir(kvl)
        assert name in kvl.__all__
    assert kvl.callbacks is sys.modules["keras_vae_layers.callbacks"]
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        kvl.nonexistent  # noqa: B018
