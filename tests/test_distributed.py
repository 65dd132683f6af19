import json
import os
import subprocess
import sys

import keras
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.tf_only  # tf.distribute
def test_mirrored_step_equals_single_device_step():
    """Loss scaling under tf.distribute: gradients are not multiplied by the
    replica count, so one step matches the single-device step."""
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_distributed_step.py")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["max_update"] > 1e-3  # the step really moved the weights
    assert result["max_diff"] < 1e-5


@pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="runs in the KERAS_BACKEND=jax session (it starts a JAX process "
           "of its own)")
def test_jax_data_parallel_step_equals_single_device_step():
    """keras.distribution.DataParallel over two XLA CPU devices: the
    batch is split, the gradients averaged, so one step matches the
    single-device step."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    # This checkout's package, whatever the interpreter has installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(HERE), os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_jax_distributed_step.py")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == result["jax_devices"] == 2
    assert result["weight_devices"] == 2  # the weights are replicated
    assert result["max_update"] > 1e-3
    assert result["max_diff"] < 1e-5
