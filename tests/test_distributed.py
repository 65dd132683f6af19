import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


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
