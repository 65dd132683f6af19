"""Cross-backend parity: one training step agrees on TensorFlow, JAX and
PyTorch.

Weights saved on the active backend are loaded on every backend (the
other two each in their own process); one deterministic `train_on_batch`
with plain SGD must give the same updated weights within 1e-5 (relative)
and `evaluate()` the same metrics. A step that differs by backend (a
missing loss term, a dropped BatchNormalization update, a wrong loss
scale, a gradient through a different sample) fails here.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from _parity_step import KINDS, make_vae, run
from helpers import BACKEND

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("tensorflow", "jax", "torch")


def run_elsewhere(backend, kind, weights_path, x_path):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, HERE, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_parity_step.py"), kind,
         weights_path, x_path],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, f"{backend}: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", KINDS)
def test_one_sgd_step_agrees_on_every_backend(kind, tmp_path):
    initial = make_vae(kind)
    weights_path = str(tmp_path / "initial.weights.h5")
    initial.save_weights(weights_path)
    shape = (12, 16) if kind == "dense" else (12, 8, 8, 1)
    x = np.random.default_rng(3).uniform(size=shape).astype("float32")
    if kind == "dense":
        x = (x > 0.5).astype("float32")
    x_path = str(tmp_path / "x.npy")
    np.save(x_path, x)

    here = run(kind, weights_path, x)
    assert here["backend"] == BACKEND
    results = [here] + [run_elsewhere(b, kind, weights_path, x_path)
                        for b in BACKENDS if b != BACKEND]
    assert sorted(r["backend"] for r in results) == sorted(BACKENDS)

    before = [np.asarray(w, "float64") for w in initial.get_weights()]
    after = [np.asarray(w) for w in here["weights"]]
    moved = max(float(np.abs(a - b).max()) for a, b in zip(after, before))
    assert moved > 1e-3, "the step must move the weights for this to test"
    assert set(here["train"]) == {"loss", "total_loss", "reco_loss",
                                  "kl_loss", "neg_elbo", "beta"}
    for other in results[1:]:
        name = f"{here['backend']} vs {other['backend']} ({kind})"
        assert len(other["weights"]) == len(here["weights"]), name
        for i, (a, b) in enumerate(zip(here["weights"], other["weights"])):
            np.testing.assert_allclose(
                np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6,
                err_msg=f"{name}: weight {i}")
        for phase in ("train", "evaluate"):
            assert set(other[phase]) == set(here[phase]), name
            for key, value in here[phase].items():
                assert other[phase][key] == pytest.approx(
                    value, rel=1e-5, abs=1e-6), f"{name}: {phase} {key}"
