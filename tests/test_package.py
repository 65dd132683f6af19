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


def test_portable_test_list_names_existing_test_files():
    """scripts/test runs tests/portable.txt on JAX and torch: a renamed or
    removed file there would silently drop those backends' coverage."""
    import os

    tests_dir = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(tests_dir)
    with open(os.path.join(tests_dir, "portable.txt")) as f:
        entries = [line.split("#")[0].strip() for line in f]
    entries = [e for e in entries if e]
    assert len(entries) == len(set(entries)) >= 10
    for entry in entries:
        assert entry.startswith("tests/test_") and entry.endswith(".py"), entry
        assert os.path.isfile(os.path.join(root, entry)), entry
    # The parity test starts a process per backend itself: once is enough.
    assert "tests/test_backend_parity.py" not in entries
