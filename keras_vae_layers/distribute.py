"""Glue for the engines that scale training out: multi-worker TF, keras-tuner.

Nothing here schedules work. Training across processes is TensorFlow's
`tf.distribute.MultiWorkerMirroredStrategy` (configured by the `TF_CONFIG`
environment variable); a distributed search is keras-tuner's own chief
oracle and workers (configured by `KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`). This module checks
those settings early with clear errors, bounds the waits the engines would
otherwise make forever, tells the chief from the other workers, and launches
a whole cluster on one machine for trying things out.

* `tf_config` / `read_tf_config`: build or check a `TF_CONFIG`.
* `multi_worker_strategy`: the strategy, with bounded start-up and
  collective-op timeouts.
* `is_chief` / `is_multi_worker`: whether this process writes files
  (checkpoints, images), and whether other processes train with it.
* `keras_tuner_settings` / `wait_for_oracle`: keras-tuner's distributed
  settings and a bounded check that the chief oracle answers.
* `free_ports` / `run_local_processes`: a local cluster of subprocesses with
  prefixed output; one failure stops them all.

TensorFlow and gRPC are imported only inside the functions that need them.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from keras_vae_layers._validation import check_finite_number
from keras_vae_layers._validation import check_positive_int

__all__ = [
    "free_ports",
    "is_chief",
    "is_multi_worker",
    "keras_tuner_settings",
    "multi_worker_strategy",
    "read_tf_config",
    "run_local_processes",
    "tf_config",
    "wait_for_oracle",
]

TASK_TYPES = ("chief", "worker")
"""The `TF_CONFIG` task types `MultiWorkerMirroredStrategy` trains with."""

KERAS_TUNER_ENV = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP",
                   "KERASTUNER_ORACLE_PORT")
"""The environment variables of keras-tuner's distributed mode."""

# ----------------------------------------------------------------------------
# TF_CONFIG
# ----------------------------------------------------------------------------


def _check_address(address, where):
    """`host:port` with a port in 1..65535; returns it stripped."""
    if isinstance(address, str):
        host, sep, port = address.strip().rpartition(":")
        if sep and host and port.isdigit() and 0 < int(port) < 65536:
            return address.strip()
    raise ValueError(
        f"{where}: {address!r} is not a `host:port` address (e.g. "
        "'10.0.0.5:12345' or 'localhost:12345', port 1-65535)."
    )


def tf_config(workers, index):
    """Builds the `TF_CONFIG` of one process of a multi-worker cluster.

    Every process gets the same cluster (the same address list, in the same
    order) and its own `index`; worker 0 is the chief (it writes the
    checkpoints). Set the result, JSON-encoded, as the `TF_CONFIG`
    environment variable before creating the strategy.

    Args:
        workers: The workers' `host:port` addresses, as a list or one
            comma-separated string. Each port must be free on its host and
            reachable from every other host.
        index: This process's position in `workers` (0-based).

    Returns:
        The `TF_CONFIG` dict (`{"cluster": {...}, "task": {...}}`).

    Raises:
        ValueError: for an empty list, an address that is not `host:port`,
            duplicate addresses, or an index out of range (the message
            names the argument).

    Example:

    ```python
    os.environ["TF_CONFIG"] = json.dumps(
        tf_config("host-a:12345,host-b:12345", index=0))
    strategy = multi_worker_strategy()
    ```
    """
    owner = "tf_config"
    if isinstance(workers, str):
        workers = [w for w in workers.split(",") if w.strip()]
    if not isinstance(workers, (list, tuple)) or not workers:
        raise ValueError(
            f"{owner}: `workers` must be a non-empty list of 'host:port' "
            f"addresses (or one comma-separated string), received "
            f"{workers!r}."
        )
    workers = [_check_address(w, f"{owner}: `workers`") for w in workers]
    if len(set(workers)) != len(workers):
        raise ValueError(
            f"{owner}: `workers` lists an address twice: {workers}. Each "
            "worker needs its own host:port."
        )
    if isinstance(index, bool) or not isinstance(index, int) or not (
        0 <= index < len(workers)
    ):
        raise ValueError(
            f"{owner}: `index` must be an integer in 0..{len(workers) - 1} "
            f"(one per address in `workers`), received {index!r}."
        )
    config = {"cluster": {"worker": list(workers)},
              "task": {"type": "worker", "index": index}}
    return read_tf_config(json.dumps(config), owner=owner)


def read_tf_config(value=None, owner="read_tf_config"):
    """Parses and checks a `TF_CONFIG` for multi-worker training.

    TensorFlow's own errors for a bad `TF_CONFIG` come late (or never: a
    process whose cluster differs from the others waits for it forever);
    this checks it before TensorFlow reads it.

    Args:
        value: The JSON text; default: the `TF_CONFIG` environment
            variable.
        owner: Name used at the start of error messages.

    Returns:
        The parsed dict.

    Raises:
        ValueError: naming `TF_CONFIG` and the field, when it is unset,
            not valid JSON, has no `cluster`/`task`, a task type other than
            `"worker"`/`"chief"` (or one the cluster does not list), an
            index out of range, or an address that is not `host:port`.
    """
    if value is None:
        value = os.environ.get("TF_CONFIG")
    if not value:
        raise ValueError(
            f"{owner}: TF_CONFIG is not set. Multi-worker training needs it "
            "in every process, e.g. TF_CONFIG='{\"cluster\": {\"worker\": "
            "[\"host-a:12345\", \"host-b:12345\"]}, \"task\": {\"type\": "
            "\"worker\", \"index\": 0}}' (see keras_vae_layers.distribute."
            "tf_config)."
        )
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{owner}: TF_CONFIG is not valid JSON ({error.msg} at character "
            f"{error.pos}): {value!r}."
        ) from None
    if not isinstance(config, dict):
        raise ValueError(
            f"{owner}: TF_CONFIG must be a JSON object with 'cluster' and "
            f"'task', received {value!r}."
        )
    cluster = config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            f"{owner}: TF_CONFIG needs a 'cluster' object mapping 'worker' "
            "(and optionally 'chief') to lists of 'host:port' addresses, "
            f"received cluster={cluster!r}."
        )
    for job, addresses in cluster.items():
        if job not in TASK_TYPES + ("evaluator",):
            raise ValueError(
                f"{owner}: TF_CONFIG has a cluster job {job!r}; "
                "MultiWorkerMirroredStrategy trains with 'worker' and "
                "'chief' jobs only (a 'ps' job belongs to "
                "ParameterServerStrategy)."
            )
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(
                f"{owner}: TF_CONFIG cluster[{job!r}] must be a non-empty list "
                f"of 'host:port' addresses, received {addresses!r}."
            )
        for address in addresses:
            _check_address(address, f"{owner}: TF_CONFIG cluster[{job!r}]")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(
            f"{owner}: TF_CONFIG cluster['chief'] lists "
            f"{len(cluster['chief'])} addresses; a cluster has one chief."
        )
    task = config.get("task")
    if not isinstance(task, dict):
        raise ValueError(
            f"{owner}: TF_CONFIG needs a 'task' object such as "
            f"{{\"type\": \"worker\", \"index\": 0}}, received task={task!r}."
        )
    task_type, index = task.get("type"), task.get("index")
    if task_type not in TASK_TYPES:
        raise ValueError(
            f"{owner}: TF_CONFIG has task type {task_type!r}; expected "
            "'worker' or 'chief' (an 'evaluator' does not train with the "
            "others)."
        )
    if task_type not in cluster:
        raise ValueError(
            f"{owner}: TF_CONFIG has task type {task_type!r}, but the "
            f"cluster lists only {sorted(cluster)}."
        )
    count = len(cluster[task_type])
    if isinstance(index, bool) or not isinstance(index, int) or not (
        0 <= index < count
    ):
        raise ValueError(
            f"{owner}: TF_CONFIG has task index {index!r}, out of range: the "
            f"cluster lists {count} {task_type!r} address(es), so the index "
            f"must be an integer in 0..{count - 1}."
        )
    return config


# ----------------------------------------------------------------------------
# The strategy and the chief
# ----------------------------------------------------------------------------


def multi_worker_strategy(collective_timeout=300.0, startup_timeout=300.0):
    """Creates a `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`.

    `TF_CONFIG` is checked first (see `read_tf_config`). Two waits that
    TensorFlow would otherwise make forever are bounded:

    * Start-up: creating the strategy blocks until every process of the
      cluster has started, inside native code that ignores Python signal
      handlers and SIGTERM. If the cluster is not complete after
      `startup_timeout` seconds (a worker did not start, or the processes'
      `TF_CONFIG`s differ), the process is ended by `SIGALRM` (exit status
      142 from a shell, -14 from `subprocess`); the line printed before the
      wait names the addresses it waits for. Needs the main thread of a
      POSIX process; elsewhere the start-up wait is not bounded.
    * Training: a collective operation (the gradient all-reduce) that
      waits more than `collective_timeout` seconds for the other workers
      fails with `DeadlineExceededError`. TensorFlow's coordination service
      usually reports a dead worker sooner (about 10 s) as
      `UnavailableError`; the timeout covers a worker that hangs. It must
      exceed the longest pause of one worker between steps (the chief
      writing a checkpoint, a validation pass).

    Args:
        collective_timeout: Seconds (> 0) one collective op may wait, or
            `None` for no limit.
        startup_timeout: Seconds (> 0) to wait for the cluster, or `None`.

    Returns:
        The strategy. Create the model, compile it and restore checkpoints
        inside `strategy.scope()`.

    Raises:
        ValueError: for a bad `TF_CONFIG` or timeouts.
    """
    owner = "multi_worker_strategy"
    for name, value in (("collective_timeout", collective_timeout),
                        ("startup_timeout", startup_timeout)):
        if value is not None:
            check_finite_number(value, name, owner, minimum=0.0,
                                strict_minimum=True)
    config = read_tf_config(owner=owner)
    import tensorflow as tf

    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=collective_timeout)
    task = config["task"]
    alarm = (startup_timeout is not None and hasattr(signal, "SIGALRM")
             and threading.current_thread() is threading.main_thread())
    print(
        f"{owner}: {task['type']} {task['index']} waiting for the cluster "
        f"{json.dumps(config['cluster'])}"
        + (f" (the process ends if it is not complete within "
           f"{startup_timeout:g} s)" if alarm else ""),
        file=sys.stderr, flush=True,
    )
    if not alarm:
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options)
    # A Python handler would never run (the wait holds the interpreter), so
    # the default action of SIGALRM, ending the process, is the bound.
    previous = signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.setitimer(signal.ITIMER_REAL, startup_timeout)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _strategy_of(model):
    """The `tf.distribute` strategy running `model` (else the current one),
    or `None` when TensorFlow is not the backend or was never imported."""
    import keras

    if keras.backend.backend() != "tensorflow" or (
        "tensorflow" not in sys.modules
    ):
        return None
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = tf.distribute.get_strategy()
    return strategy


def is_multi_worker(model=None):
    """Whether a multi-worker `tf.distribute` strategy runs `model`.

    Backend-safe: `False` on JAX and torch, and when TensorFlow was never
    imported.

    Args:
        model: The model being trained; default: the current scope's
            strategy decides.

    Returns:
        bool.
    """
    strategy = _strategy_of(model)
    # The test Keras' own TF trainer uses for its multi-worker code.
    return strategy is not None and strategy.extended._in_multi_worker_mode()


def is_chief(model=None):
    """Whether this process is the one that writes files.

    `True` unless a multi-worker `tf.distribute` strategy runs `model` (or,
    without a model, the current scope) and this process is not its chief
    (the `"chief"` task, else worker 0): callbacks use it to write
    checkpoints, images and logs once, not once per worker. Backend-safe:
    `True` on JAX and torch, and when TensorFlow was never imported.

    Args:
        model: The model being trained (its `distribute_strategy` decides);
            default: the strategy of the current scope.

    Returns:
        bool.
    """
    strategy = _strategy_of(model)
    if strategy is None:
        return True
    try:
        return bool(strategy.extended.should_checkpoint)
    except NotImplementedError:
        # Strategies without a notion of workers (tf.distribute's default
        # and one-device strategies in some TF versions) do not implement
        # `should_checkpoint`: one process, so it is the chief.
        return True


# ----------------------------------------------------------------------------
# keras-tuner's distributed mode
# ----------------------------------------------------------------------------


def keras_tuner_settings(environ=None):
    """Reads and checks keras-tuner's distributed-mode environment.

    Args:
        environ: Mapping to read; default `os.environ`.

    Returns:
        `None` when `KERASTUNER_ORACLE_IP` is unset (not distributed), else
        a dict with `tuner_id`, `ip`, `port` (int) and `chief` (bool: this
        process runs the oracle; keras-tuner's test is `"chief"` in the id).

    Raises:
        ValueError: naming the variable, when the IP is set but the port or
            the tuner id is missing, or the port is not in 1..65535.
    """
    environ = os.environ if environ is None else environ
    owner = "keras_tuner_settings"
    if not environ.get("KERASTUNER_ORACLE_IP"):
        return None
    for name in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        if not environ.get(name):
            raise ValueError(
                f"{owner}: KERASTUNER_ORACLE_IP is set but {name} is not; "
                "distributed keras-tuner needs KERASTUNER_TUNER_ID ('chief' "
                "on the oracle process, a unique name such as 'tuner0' on "
                "each worker), KERASTUNER_ORACLE_IP and "
                "KERASTUNER_ORACLE_PORT in every process."
            )
    port = environ["KERASTUNER_ORACLE_PORT"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{owner}: KERASTUNER_ORACLE_PORT must be a port number in "
            f"1..65535, received {port!r}."
        )
    tuner_id = environ["KERASTUNER_TUNER_ID"]
    return {"tuner_id": tuner_id, "ip": environ["KERASTUNER_ORACLE_IP"],
            "port": int(port), "chief": "chief" in tuner_id}


def wait_for_oracle(timeout=60.0, environ=None):
    """Waits until keras-tuner's chief oracle accepts connections.

    keras-tuner's workers send every request with gRPC's `wait_for_ready`
    and a one-hour deadline, so a worker pointed at a wrong address, or
    started long before its chief, waits an hour before failing. Call this
    on a worker before `tuner.search()` for a clear error within `timeout`.

    Args:
        timeout: Seconds (> 0) to wait.
        environ: Mapping to read the settings from; default `os.environ`.

    Raises:
        ValueError: if the environment is not a distributed keras-tuner
            worker's (see `keras_tuner_settings`).
        ConnectionError: if the oracle at `KERASTUNER_ORACLE_IP`:
            `KERASTUNER_ORACLE_PORT` does not answer within `timeout`.
    """
    owner = "wait_for_oracle"
    timeout = check_finite_number(timeout, "timeout", owner, minimum=0.0,
                                  strict_minimum=True)
    settings = keras_tuner_settings(environ)
    if settings is None:
        raise ValueError(
            f"{owner}: KERASTUNER_ORACLE_IP is not set; this process is not "
            "a distributed keras-tuner worker."
        )
    import grpc

    address = f"{settings['ip']}:{settings['port']}"
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ConnectionError(
            f"{owner}: no keras-tuner oracle answered at {address} "
            "(KERASTUNER_ORACLE_IP:KERASTUNER_ORACLE_PORT) within "
            f"{timeout:g} s. Start the chief (KERASTUNER_TUNER_ID=chief) "
            "first, check the address and port, and that a firewall lets "
            "this machine reach it."
        ) from None
    finally:
        channel.close()


# ----------------------------------------------------------------------------
# A local cluster of subprocesses
# ----------------------------------------------------------------------------


def free_ports(count, host="localhost"):
    """`count` distinct TCP ports that are free on `host` right now.

    The ports are found by binding to port 0 and released again, so
    another program could take one before the cluster binds it (rare; the
    start then fails loudly and can be retried).

    Args:
        count: Number of ports (int >= 1).
        host: Interface to probe.

    Returns:
        List of ints.
    """
    count = check_positive_int(count, "count", "free_ports")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def run_local_processes(commands, names=None, envs=None, timeout=None,
                        out=None):
    """Runs processes side by side; stops them all when one fails.

    Each process's output (stdout and stderr) is streamed line by line to
    `out` with a `[name]` prefix. The folder this `keras_vae_layers` was
    imported from goes first on the processes' `PYTHONPATH`, so a Python
    child imports the same package. When a process exits with a non-zero
    status, the others are killed (SIGKILL: a TensorFlow worker blocked in
    a collective operation ignores SIGTERM) and its status is returned.
    Processes are always killed on the way out, also on
    `KeyboardInterrupt` or `timeout`.

    Args:
        commands: List of argument lists.
        names: Prefix of each process's output; default `proc0`, `proc1`...
        envs: Per-process environment dicts (added to `os.environ`), or
            `None`.
        timeout: Seconds for the whole run, or `None`.
        out: Text stream for the output; default `sys.stdout`.

    Returns:
        0 when every process succeeded; otherwise the first failure's exit
        status (negative: ended by that signal), or 124 on `timeout`.
    """
    owner = "run_local_processes"
    commands = [list(c) for c in commands]
    if not commands:
        raise ValueError(f"{owner}: `commands` is empty.")
    names = list(names or [f"proc{i}" for i in range(len(commands))])
    envs = list(envs or [None] * len(commands))
    if len(names) != len(commands) or len(envs) != len(commands):
        raise ValueError(
            f"{owner}: {len(commands)} commands but {len(names)} names and "
            f"{len(envs)} environments."
        )
    out = sys.stdout if out is None else out
    lock = threading.Lock()

    def say(name, line):
        with lock:
            out.write(f"[{name}] {line}")
            if not line.endswith("\n"):
                out.write("\n")
            out.flush()

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python_path = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)
    processes, readers = [], []
    deadline = None if timeout is None else time.monotonic() + timeout
    status = 0
    try:
        for command, name, env in zip(commands, names, envs):
            full_env = dict(os.environ, PYTHONPATH=python_path,
                            **(env or {}))
            proc = subprocess.Popen(
                command, env=full_env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, errors="replace", bufsize=1,
            )
            processes.append(proc)
            reader = threading.Thread(
                target=lambda p=proc, n=name: [say(n, line)
                                               for line in p.stdout],
                daemon=True,
            )
            reader.start()
            readers.append(reader)
        while True:
            codes = [p.poll() for p in processes]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                index, status = failed[0]
                say("launcher", f"{names[index]} exited with status {status}; "
                    "stopping the others.")
                break
            if all(c == 0 for c in codes):
                break
            if deadline is not None and time.monotonic() > deadline:
                status = 124
                say("launcher", f"timed out after {timeout:g} s; stopping "
                    "every process.")
                break
            time.sleep(0.1)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
        for proc in processes:
            proc.wait()
        for reader in readers:
            reader.join(timeout=5)
    return status
