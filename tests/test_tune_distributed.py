"""Distributed keras-tuner search (chief oracle + workers over gRPC)."""

import json
import os
import subprocess
import sys
import time

import keras
import pytest

from keras_vae_layers import VAEModel
from keras_vae_layers import distribute
from keras_vae_layers.callbacks import list_checkpoints
from test_examples import load_example

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "tune_distributed.py")


def test_two_workers_share_four_trials(tmp_path):
    out = tmp_path / "tune"
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    for name in distribute.KERAS_TUNER_ENV:
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--local-workers", "2", "--trials", "4",
         "--epochs", "1", "--n", "64", "--size", "16", "--batch-size", "16",
         "--filters", "4,8", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with open(out / "summary.json") as f:
        summary = json.load(f)
    trials = summary["trials"]
    assert len(trials) == 4
    assert [t["status"] for t in trials] == ["COMPLETED"] * 4
    # keras-tuner's oracle handed trials to both workers.
    assert {t["tuner_id"] for t in trials} == {"tuner0", "tuner1"}
    # Each trial checkpointed into its own folder, inside its trial folder.
    folders = [t["checkpoint_dir"] for t in trials]
    assert len(set(folders)) == 4
    runs = set()
    for trial in trials:
        assert trial["checkpoint_dir"] == str(
            out / "kt" / "vae_distributed" / f"trial_{trial['trial_id']}"
            / "checkpoints")
        manifests = list_checkpoints(trial["checkpoint_dir"])
        assert [m["epoch"] for m in manifests] == [1]
        runs.update(m["run"] for m in manifests)
    assert len(runs) == 4
    # The best model (reloaded by the chief from a worker's checkpoint)
    # loads and decodes.
    best = min(trials, key=lambda t: t["score"])
    assert summary["best"]["trial_id"] == best["trial_id"]
    model = keras.saving.load_model(summary["best"]["model"], safe_mode=True)
    assert isinstance(model, VAEModel)
    assert model.latent_dim() == best["hyperparameters"]["z_dim"]
    assert model.sample(2, seed=0).shape == (2, 16, 16, 1)


def test_wait_for_oracle_fails_within_the_timeout():
    port = distribute.free_ports(1)[0]  # nothing listens there
    environ = {"KERASTUNER_TUNER_ID": "tuner0",
               "KERASTUNER_ORACLE_IP": "127.0.0.1",
               "KERASTUNER_ORACLE_PORT": str(port)}
    started = time.monotonic()
    with pytest.raises(ConnectionError,
                       match=f"no keras-tuner oracle answered at "
                             f"127.0.0.1:{port} \\(KERASTUNER_ORACLE_IP:"
                             "KERASTUNER_ORACLE_PORT\\) within 1 s"):
        distribute.wait_for_oracle(1.0, environ=environ)
    assert time.monotonic() - started < 10


def test_wait_for_oracle_returns_once_the_oracle_listens():
    import grpc
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        distribute.wait_for_oracle(10.0, environ={
            "KERASTUNER_TUNER_ID": "tuner0",
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": str(port)})
    finally:
        server.stop(None)


def test_example_worker_reports_an_unreachable_oracle(monkeypatch, capsys):
    port = distribute.free_ports(1)[0]
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    started = time.monotonic()
    status = load_example("tune_distributed").main(["--oracle-timeout", "1"])
    assert status == 1
    assert time.monotonic() - started < 10
    assert f"no keras-tuner oracle answered at 127.0.0.1:{port}" in (
        capsys.readouterr().err)


@pytest.mark.parametrize("environ, message", [
    ({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_TUNER_ID": "tuner0"},
     "KERASTUNER_ORACLE_IP is set but KERASTUNER_ORACLE_PORT is not"),
    ({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "1"},
     "KERASTUNER_ORACLE_IP is set but KERASTUNER_TUNER_ID is not"),
    ({"KERASTUNER_ORACLE_IP": "h", "KERASTUNER_ORACLE_PORT": "http",
      "KERASTUNER_TUNER_ID": "tuner0"},
     "KERASTUNER_ORACLE_PORT must be a port number in 1..65535, received "
     "'http'"),
])
def test_keras_tuner_settings_name_the_variable(environ, message):
    with pytest.raises(ValueError, match=message):
        distribute.keras_tuner_settings(environ)


def test_keras_tuner_settings_roles():
    assert distribute.keras_tuner_settings({}) is None
    chief = distribute.keras_tuner_settings({
        "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
        "KERASTUNER_TUNER_ID": "chief"})
    assert chief == {"tuner_id": "chief", "ip": "10.0.0.1", "port": 8000,
                     "chief": True}
    assert not distribute.keras_tuner_settings({
        "KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
        "KERASTUNER_TUNER_ID": "tuner3"})["chief"]
    with pytest.raises(ValueError, match="is not a distributed keras-tuner"):
        distribute.wait_for_oracle(1.0, environ={})


def test_example_without_settings_explains_how_to_launch(monkeypatch,
                                                         capsys):
    for name in distribute.KERAS_TUNER_ENV:
        monkeypatch.delenv(name, raising=False)
    assert load_example("tune_distributed").main([]) == 2
    assert "pass --local-workers N" in capsys.readouterr().err
