"""Multi-worker training (MultiWorkerMirroredStrategy) on localhost.

The cluster tests start real worker processes; each has a hard time limit
and every process is killed in a `finally`, whatever happens.
"""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import _multiworker_worker as worker
from keras_vae_layers import distribute
from keras_vae_layers.callbacks import list_checkpoints
from test_examples import load_example

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLE = os.path.join(ROOT, "examples", "multiworker_train.py")
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
ENV.pop("TF_CONFIG", None)
# Tiny settings for the example: 8 steps of 32 images per epoch.
TINY = ["--n", "256", "--size", "16", "--batch-size", "32", "--filters",
        "4,8", "--z-dim", "2", "--collective-timeout", "60",
        "--startup-timeout", "60"]


def start(command, log_path):
    log = open(log_path, "w")
    try:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=ENV, cwd=ROOT)
    finally:
        log.close()  # the child holds its own descriptor


def kill_all(processes):
    for proc in processes:
        if proc.poll() is None:
            proc.kill()  # SIGKILL: a worker in a collective ignores SIGTERM
        proc.wait()


def wait_all(processes, timeout):
    deadline = time.monotonic() + timeout
    for proc in processes:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def last_json_line(text):
    return json.loads(text.strip().splitlines()[-1])


@pytest.mark.tf_only  # tf.distribute MultiWorkerMirroredStrategy
def test_two_workers_match_one_process_and_only_the_chief_writes(tmp_path):
    x = np.random.default_rng(0).uniform(
        size=(worker.BATCH,) + worker.INPUT_SHAPE).astype("float32")
    np.save(tmp_path / "x.npy", x)
    reference = worker.make_vae()
    reference.save_weights(str(tmp_path / "init.weights.h5"))
    init = [w.copy() for w in reference.get_weights()]

    ports = ",".join(str(p) for p in distribute.free_ports(2))
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    processes = [
        start([sys.executable, os.path.join(HERE, "_multiworker_worker.py"),
               str(i), ports, str(tmp_path)], logs[i])
        for i in range(2)
    ]
    try:
        # The reference step runs while the workers start up.
        ref_history = worker.train_one_step(reference, x).history
        wait_all(processes, timeout=150)
    finally:
        kill_all(processes)
    for proc, log in zip(processes, logs):
        assert proc.returncode == 0, read(log)[-4000:]
    reports = [last_json_line(read(log)) for log in logs]

    assert [r["replicas"] for r in reports] == [2, 2]
    assert [r["chief"] for r in reports] == [True, False]
    # Global batch 8 over two workers == batch 8 in one process.
    with np.load(tmp_path / "weights.npz") as saved:
        trained = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    expected = reference.get_weights()
    assert len(trained) == len(expected)
    assert max(float(np.abs(a - b).max())
               for a, b in zip(expected, init)) > 1e-3  # the step moved
    assert max(float(np.abs(a - b).max())
               for a, b in zip(expected, trained)) < 1e-5
    # Logs are scalars averaged over the workers: the global batch means,
    # the same on both workers (keras-team/keras#20585 workaround).
    for report in reports:
        for key in ("loss", "reco_loss", "kl_loss", "val_loss"):
            assert report["history"][key] == pytest.approx(
                ref_history[key], rel=1e-5)
        assert "latent_active_units" in report["history"]
        # Forward passes return one row per input, not one per worker.
        assert report["encoded_rows"] == 3

    # Only the chief wrote: its folders are complete, worker 1's absent.
    chief, other = reports
    assert chief["checkpoint_run"] is not None
    assert other["checkpoint_run"] is None
    assert [m["epoch"] for m in list_checkpoints(tmp_path / "ckpt0")] == [1]
    assert not (tmp_path / "ckpt1").exists()
    assert sorted(chief["grid_paths"]) == ["reconstructions", "samples"]
    for path in chief["grid_paths"].values():
        assert os.path.isfile(path)
    assert other["grid_paths"] == {}
    assert not (tmp_path / "grids1").exists()


@pytest.mark.tf_only  # tf.distribute MultiWorkerMirroredStrategy
def test_killed_worker_fails_the_run_then_it_resumes(tmp_path):
    out = tmp_path / "run"
    ckpt_dir = out / "checkpoints"
    workers = ",".join(f"localhost:{p}" for p in distribute.free_ports(2))
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    processes = [
        start([sys.executable, EXAMPLE, "--workers", workers, "--index",
               str(i), "--epochs", "500", "--out", str(out), *TINY], logs[i])
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 120
        while not list_checkpoints(ckpt_dir):
            assert time.monotonic() < deadline, read(logs[0])[-3000:]
            assert processes[0].poll() is None, read(logs[0])[-3000:]
            time.sleep(0.2)
        processes[1].kill()
        killed = time.monotonic()
        # The survivor fails loudly, within TensorFlow's heartbeat timeout
        # (about 10 s here) and surely within --collective-timeout (60 s).
        processes[0].wait(timeout=90)
        failed_after = time.monotonic() - killed
    finally:
        kill_all(processes)
    chief_log = read(logs[0])
    assert processes[0].returncode not in (0, None), chief_log[-3000:]
    assert failed_after < 60
    assert "UnavailableError" in chief_log or (
        "DeadlineExceededError" in chief_log), chief_log[-3000:]

    # Rerunning resumes every worker from the chief's latest checkpoint.
    done = max(m["epoch"] for m in list_checkpoints(ckpt_dir))
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--local-workers", "2", "--epochs",
         str(done + 1), "--out", str(out), *TINY],
        capture_output=True, text=True, timeout=150, env=ENV, cwd=ROOT,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    for i in range(2):
        assert (f"[worker {i}] worker {i}: resuming from the checkpoint of "
                f"epoch {done}") in result.stdout
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["workers"] == 2
    assert summary["initial_epoch"] == done
    assert summary["epochs_trained"] == 1
    assert [m["epoch"] for m in list_checkpoints(ckpt_dir)][-1] == done + 1
    assert os.path.isfile(out / "samples" / f"samples_epoch{done + 1:04d}.png")
    # Worker 1 shares --out here (one machine) but wrote nothing: one run
    # id per start of the chief, no second writer.
    runs = {m["run"] for m in list_checkpoints(ckpt_dir)}
    assert len(runs) == 1  # restore_latest continues the chief's run


def test_cluster_that_never_completes_ends_within_startup_timeout(tmp_path):
    workers = ",".join(f"localhost:{p}" for p in distribute.free_ports(2))
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, EXAMPLE, "--workers", workers, "--index", "0",
         "--out", str(tmp_path), *TINY, "--startup-timeout", "3"],
        capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT,
    )
    assert result.returncode == -14  # SIGALRM: bounded, not a hang
    assert time.monotonic() - started < 60
    assert "waiting for the cluster" in result.stderr
    assert workers.split(",")[1] in result.stderr
    assert not os.listdir(tmp_path)


# ----------------------------------------------------------------------------
# Settings (no cluster started)
# ----------------------------------------------------------------------------


def test_tf_config_builds_one_cluster_per_process():
    config = distribute.tf_config("host-a:1234, host-b:1234", 1)
    assert config == {"cluster": {"worker": ["host-a:1234", "host-b:1234"]},
                      "task": {"type": "worker", "index": 1}}
    assert distribute.read_tf_config(json.dumps(config)) == config


@pytest.mark.parametrize("workers, index, message", [
    ("a:1,b:2", 2, "`index` must be an integer in 0..1"),
    ("a:1,b:2", -1, "`index` must be an integer in 0..1"),
    ("a:1,b", 0, "'b' is not a `host:port` address"),
    ("a:1,a:1", 0, "lists an address twice"),
    ("", 0, "`workers` must be a non-empty list"),
    ("a:70000", 0, "port 1-65535"),
])
def test_tf_config_rejects_bad_arguments(workers, index, message):
    with pytest.raises(ValueError, match="tf_config: .*" + re.escape(message)):
        distribute.tf_config(workers, index)


@pytest.mark.parametrize("value, message", [
    ('{"cluster": {"worker": ["a:1"]}, "task": ', "is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"task": {"type": "worker", "index": 0}}', "needs a 'cluster' object"),
    ('{"cluster": {"worker": ["a:1"]}}', "needs a 'task' object"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     "task type 'ps'; expected 'worker' or 'chief'"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", '
     '"index": 0}}', "task type 'chief', but the cluster lists only"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", '
     '"index": 2}}', "task index 2, out of range"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'ps'"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", '
     '"index": 0}}', "'a' is not a `host:port` address"),
])
def test_read_tf_config_names_the_problem(value, message):
    with pytest.raises(ValueError, match="TF_CONFIG.*" + re.escape(message)):
        distribute.read_tf_config(value)


def test_read_tf_config_unset(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG is not set"):
        distribute.read_tf_config()


def test_multi_worker_strategy_checks_before_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError,
                       match="multi_worker_strategy: TF_CONFIG is not valid"):
        distribute.multi_worker_strategy()
    monkeypatch.setenv("TF_CONFIG", json.dumps(distribute.tf_config(
        "a:1,b:2", 0)))
    with pytest.raises(ValueError, match="`collective_timeout` must be > 0"):
        distribute.multi_worker_strategy(collective_timeout=0)


def test_is_chief_without_a_multi_worker_strategy():
    import tensorflow as tf

    import keras_vae_layers as kvl

    assert kvl.distribute.is_chief is distribute.is_chief
    assert "distribute" in kvl.__all__
    assert distribute.is_chief() and not distribute.is_multi_worker()
    assert distribute.is_chief(object())
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        assert distribute.is_chief() and not distribute.is_multi_worker()


@pytest.mark.parametrize("argv, env, message", [
    (["--workers", "localhost:1,localhost:2", "--index", "2"], None,
     "--index must be an integer in 0..1"),
    (["--workers", "localhost:1,localhost"], None, "--workers needs --index"),
    (["--workers", "localhost:1,localhost", "--index", "0"], None,
     "'localhost' is not a `host:port` address"),
    ([], "{bad json", "TF_CONFIG is not valid JSON"),
    ([], '{"cluster": {"worker": ["a:1"]}, "task": {"type": "evaluator", '
         '"index": 0}}', "task type 'evaluator'"),
    ([], '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
         '"index": 1}}', "task index 1, out of range"),
    ([], None, "TF_CONFIG is not set"),
    (["--local-workers", "2", "--index", "0"], None,
     "--index belongs to --workers"),
])
def test_example_names_the_bad_setting(argv, env, message, monkeypatch,
                                       capsys):
    if env is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", env)
    module = load_example("multiworker_train")
    with pytest.raises(SystemExit) as info:
        module.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------
# The local launcher
# ----------------------------------------------------------------------------


def test_run_local_processes_prefixes_output_and_succeeds(tmp_path):
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        status = distribute.run_local_processes(
            [[sys.executable, "-c", "print('hello'); print('world')"],
             [sys.executable, "-c", "import os; print(os.environ['X']); "
              "print(os.environ['PYTHONPATH'].split(os.pathsep)[0])"]],
            names=["a", "b"], envs=[None, {"X": "from-env"}], out=out)
    assert status == 0
    lines = read(log).splitlines()
    # The children import the same package as this process.
    assert sorted(lines) == sorted(["[a] hello", "[a] world", "[b] from-env",
                                    f"[b] {ROOT}"])


def test_run_local_processes_stops_the_others_when_one_fails(tmp_path):
    pid_file = tmp_path / "pid"
    sleeper = ("import os, time; open(%r, 'w').write(str(os.getpid())); "
               "time.sleep(120)" % str(pid_file))
    log = tmp_path / "out.txt"
    started = time.monotonic()
    with open(log, "w") as out:
        status = distribute.run_local_processes(
            [[sys.executable, "-c", sleeper],
             [sys.executable, "-c",
              "import os, sys, time\n"
              f"while not os.path.exists({str(pid_file)!r}): time.sleep(0.05)\n"
              "sys.exit(3)"]],
            names=["sleeper", "failer"], out=out, timeout=60)
    assert status == 3
    assert time.monotonic() - started < 30
    assert "[launcher] failer exited with status 3; stopping the others." in (
        read(log))
    with pytest.raises(ProcessLookupError):
        os.kill(int(read(pid_file)), 0)  # killed and reaped


def test_run_local_processes_timeout_kills_everything(tmp_path):
    with open(tmp_path / "out.txt", "w") as out:
        status = distribute.run_local_processes(
            [[sys.executable, "-c", "import time; time.sleep(120)"]],
            timeout=1, out=out)
    assert status == 124
    assert "timed out after 1 s" in read(tmp_path / "out.txt")


def test_run_local_processes_rejects_mismatched_lists():
    with pytest.raises(ValueError, match="2 commands but 1 names"):
        distribute.run_local_processes([["true"], ["true"]], names=["a"])


def test_free_ports_are_distinct():
    ports = distribute.free_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    with pytest.raises(ValueError, match="free_ports: `count`"):
        distribute.free_ports(0)
