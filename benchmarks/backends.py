"""`VAEModel` against a plain autoencoder on TensorFlow, JAX and PyTorch.

Keras reads `KERAS_BACKEND` once, at import, so each backend runs in its
own process: for every backend of `--backends` the parent starts a
persistent child (this script with `--child BACKEND`, `KERAS_BACKEND` set
in its environment; see `backends_child.py`) that builds, from the same
conv stack preset (`--shape`, `SHAPES` in `_common.py`), the same fixed
in-memory batch and the same seeds:

* `vae` -- the package's `VAEModel` (builder encoder/decoder with
  `kl_layer=False`, as the examples build it);
* `ae` -- a plain autoencoder of the same conv stack (the `mu` head as its
  latent, no sampling, no KL) compiled with `ReconstructionLoss("bce")`
  and trained by Keras' own `train_step`: the speed floor;

both with the default `jit_compile="auto"` (TensorFlow resolves it to off
on a machine without GPU, JAX to on, torch to off), and on TensorFlow
also with the other setting (`vae_xla` / `ae_xla`: `jit_compile=True`).

Each child warms everything up (traces and compiles) before the first
timing. Then the parent drives `--rounds` interleaved rounds across all
children: each round, every backend and variant in turn runs one untimed
step and then `--steps` timed training steps (the compiled step `fit()`
calls, on the fixed batch) and reports wall-clock and process-CPU ms per
step. A slow drift of the machine therefore hits every contender alike,
and the cross-backend ratios come from one run. Only the child being
timed works; the others wait on their stdin, and the parent imports no
framework until it writes the report. The children run with
`OMP_WAIT_POLICY=PASSIVE` unless it is set (`CHILD_ENV_DEFAULTS`).

Before that, `import keras_vae_layers` is timed per backend: a fresh
interpreter per sample, `--import-repeats` samples per backend,
interleaved across backends; each sample also reports which backend
packages ended up imported (TensorFlow must not be, on JAX and torch).

Reported (JSON and markdown in `--out`, written atomically): per backend
and variant the ms/step of every round, min and median (wall and CPU);
`VAEModel / AE` per backend (of the mins, and the median of the per-round
ratios; target <= 1.05x of the mins); JAX/TensorFlow and torch/TensorFlow
for `vae` and `ae`; TensorFlow's `jit_compile` on/off; import times; the
date, versions, machine and load averages. A backend whose package
cannot be imported is reported as skipped, with the reason.

Usage:

    python benchmarks/backends.py                 # about 5-6 min on 2 CPU cores
    python benchmarks/backends.py --quick         # well under a minute per backend
    python benchmarks/backends.py --backends tensorflow,jax --rounds 5

Exit status: 0; 1 when a backend's child failed (the others are still
reported); 2 on bad arguments. Speed targets never affect it.
"""

import argparse
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from importlib import util as importlib_util

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only benchmarks/ is on it
    sys.path.insert(0, _ROOT)

from benchmarks._common import SHAPES  # noqa: E402
from benchmarks._common import add_output_flags  # noqa: E402
from benchmarks._common import apply_preset  # noqa: E402
from benchmarks._common import host_meta  # noqa: E402
from benchmarks._common import interleaved  # noqa: E402
from benchmarks._common import loadavg  # noqa: E402
from benchmarks._common import log  # noqa: E402
from benchmarks._common import min_median  # noqa: E402
from benchmarks._common import require_positive  # noqa: E402
from benchmarks._common import split_csv  # noqa: E402
from benchmarks._common import write_report  # noqa: E402
from benchmarks.backends_report import evaluate_targets  # noqa: E402
from benchmarks.backends_report import markdown_report  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
"""Every backend, in timing order (TensorFlow first: the reference)."""

DEFAULTS = dict(shape="digits", batch_size=64, rounds=15, steps=20,
                warmup_steps=5, import_repeats=5, child_timeout=600)
QUICK = dict(shape="tiny-digits", batch_size=16, rounds=2, steps=3,
             warmup_steps=2, import_repeats=1, child_timeout=300)

# A fresh interpreter times `import keras_vae_layers` (Keras and the
# backend first, as a user's `import` does) and lists the backend
# packages it pulled in.
_IMPORT_CHILD = """
import json, sys, time
t0 = time.perf_counter()
try:
    import keras
except ImportError as err:  # the backend's package cannot be imported
    print(json.dumps({{"skipped": f"{{type(err).__name__}}: {{err}}"}}))
    raise SystemExit(0)
t1 = time.perf_counter()
by_keras = [n for n in {frameworks!r} if n in sys.modules]
sys.path.insert(0, {root!r})
import keras_vae_layers
t2 = time.perf_counter()
print(json.dumps({{"import_s": t2 - t0, "keras_s": t1 - t0,
                   "package_s": t2 - t1,
                   "backend": keras.backend.backend(),
                   "package_file": keras_vae_layers.__file__,
                   "frameworks_by_keras": by_keras,
                   "frameworks_loaded": [n for n in {frameworks!r}
                                         if n in sys.modules]}}))
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="backends.py",
        description="VAEModel against a plain autoencoder of the same conv "
                    "stack on TensorFlow, JAX and PyTorch, timed in "
                    "interleaved rounds across one child process per "
                    "backend; plus import time per backend.",
        epilog="Exit status: 1 when a backend's child failed, 2 on bad "
               "arguments. See benchmarks/README.md.",
    )
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated subset of {list(BACKENDS)} "
                             "(default: all)")
    parser.add_argument("--shape", default=None,
                        help=f"conv stack preset from {sorted(SHAPES)} "
                             f"(default {DEFAULTS['shape']})")
    parser.add_argument("--z-dim", type=int, default=None,
                        help="latent size (default: the preset's)")
    for name in ("batch_size", "rounds", "steps", "warmup_steps",
                 "import_repeats", "child_timeout"):
        parser.add_argument("--" + name.replace("_", "-"), type=int,
                            default=None,
                            help=f"default {DEFAULTS[name]} (--quick: "
                                 f"{QUICK[name]})")
    parser.add_argument("--seed", type=int, default=0,
                        help="weights, data and sampling (default 0)")
    add_output_flags(parser, chart=False)
    parser.add_argument("--quick", action="store_true",
                        help="small settings for a smoke run: "
                             + ", ".join(f"{k}={v}" for k, v in
                                         QUICK.items()))
    parser.add_argument("--child", choices=BACKENDS, default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    apply_preset(args, QUICK if args.quick else DEFAULTS)
    backends = split_csv(args.backends)
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        parser.error(f"--backends: unknown {unknown}; choose from "
                     f"{list(BACKENDS)}")
    args.backends = [b for b in BACKENDS if b in backends]
    if args.shape not in SHAPES:
        parser.error(f"--shape: unknown {args.shape!r}; choose from "
                     f"{sorted(SHAPES)}")
    require_positive(parser, args, ("batch_size", "rounds", "steps",
                                    "warmup_steps", "import_repeats",
                                    "child_timeout"))
    if args.z_dim is not None and args.z_dim < 1:
        parser.error("--z-dim must be >= 1")
    return args


def unavailable(backend):
    """Why `backend`'s package cannot be imported, or `None` when it can
    be found (a child that then fails to import it reports the reason)."""
    if importlib_util.find_spec(backend) is None:
        return f"the {backend!r} package is not installed"
    return None


CHILD_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Set in every child's environment unless already set. OpenMP's default
active waiting (torch's CPU thread pool) loses whole time slices whenever
another process holds a core: at load 3 on 2 cores, torch's steps varied
from 40 to 1,200 ms with it, 80-100 ms with PASSIVE. TensorFlow and JAX
do not use OpenMP. Export `OMP_WAIT_POLICY=ACTIVE` to time torch's default
on a quiet machine."""


def _child_env(backend):
    env = dict(CHILD_ENV_DEFAULTS, **os.environ)
    env["KERAS_BACKEND"] = backend
    env["PYTHONPATH"] = os.pathsep.join(
        [_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                   if p])
    return env


# ----------------------------------------------------------------------------
# Import time
# ----------------------------------------------------------------------------


def import_sample(backend, timeout):
    """One `import keras_vae_layers` in a fresh interpreter on `backend`;
    adds `process_s`, the wall time of the whole interpreter run."""
    code = _IMPORT_CHILD.format(root=_ROOT, frameworks=BACKENDS)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=timeout, env=_child_env(backend))
    process_s = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"import child on {backend} failed (status "
                           f"{out.returncode}): {out.stderr[-2000:]}")
    sample = json.loads(out.stdout.strip().splitlines()[-1])
    if "package_file" in sample and not os.path.abspath(
            sample.pop("package_file")).startswith(_ROOT + os.sep):
        raise RuntimeError("the import child did not import this "
                           "repository's keras_vae_layers")
    sample["process_s"] = process_s
    return sample


def measure_imports(backends, repeats, timeout, skipped):
    """`import keras_vae_layers` per backend, interleaved across backends.

    A backend whose first sample cannot import Keras (its package is
    missing or broken) goes into `skipped` with the reason and is not
    sampled again.

    Returns:
        `{backend: {"import_s", "keras_s", "package_s", "process_s":
        {"samples", "min", "median"}, "frameworks_by_keras",
        "frameworks_loaded", "tensorflow_imported", "backend"}}`.
    """
    def progress(r, results):
        log(f"import sample {r + 1}/{repeats}: " + ", ".join(
            f"{b} {runs[-1]['import_s']:.2f} s"
            for b, runs in results.items()))

    samples = {}
    for backend in backends:
        sample = import_sample(backend, timeout)
        if "skipped" in sample:
            skipped[backend] = sample["skipped"]
            log(f"[{backend}] skipped: {sample['skipped']}")
        else:
            samples[backend] = [sample]
    if samples:
        progress(0, samples)
    more = interleaved(
        {b: (lambda b=b: import_sample(b, timeout)) for b in samples},
        repeats - 1, lambda r, results: progress(r + 1, {
            b: samples[b] + results[b] for b in results}))
    out = {}
    for backend, first in samples.items():
        runs = first + more[backend]
        entry = {}
        for key in ("import_s", "keras_s", "package_s", "process_s"):
            values = [s[key] for s in runs]
            entry[key] = dict({"samples": values}, **min_median(values))
        for key in ("frameworks_by_keras", "frameworks_loaded"):
            entry[key] = sorted({n for s in runs for n in s[key]})
        entry["tensorflow_imported"] = "tensorflow" in entry[
            "frameworks_loaded"]
        entry["backend"] = runs[0]["backend"]
        out[backend] = entry
    return out


# ----------------------------------------------------------------------------
# The children
# ----------------------------------------------------------------------------


CLOSE_TIMEOUT = 30.0
"""Seconds the children get to exit after `quit` (TensorFlow's teardown
takes several) before they are terminated."""


class ChildError(RuntimeError):
    """A child answered with an error (`message`: its answer), died, or did
    not answer in time (`message` empty)."""

    def __init__(self, text, message=None):
        super().__init__(text)
        self.message = message or {}


class Child:
    """One persistent child process (`--child BACKEND`) and its protocol
    (see `backends_child.py`)."""

    def __init__(self, backend, args):
        self.backend = backend
        argv = [sys.executable, os.path.abspath(__file__), "--child",
                backend, "--shape", args.shape, "--batch-size",
                str(args.batch_size), "--warmup-steps",
                str(args.warmup_steps), "--seed", str(args.seed)]
        if args.z_dim is not None:
            argv += ["--z-dim", str(args.z_dim)]
        # stderr is shared: the child's progress lines and any traceback
        # show up in the parent's output.
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=_child_env(backend))
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def receive(self, timeout):
        """The child's next message; `ChildError` on an error message, an
        exit, or no answer within `timeout` seconds."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(f"the {self.backend} child did not answer "
                             f"within {timeout} s") from None
        if line is None:
            raise ChildError(f"the {self.backend} child exited (status "
                             f"{self.proc.wait()}) without answering")
        message = json.loads(line)
        if not message.get("ok"):
            raise ChildError(f"the {self.backend} child failed: "
                             f"{message.get('error')}", message)
        return message

    def request(self, timeout, **command):
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except OSError as err:
            raise ChildError(f"the {self.backend} child is gone: "
                             f"{err}") from None
        return self.receive(timeout)

    def quit(self):
        """Asks the child to quit (it then exits on its own)."""
        if self.proc.poll() is None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
            except OSError:
                pass

    def close(self, deadline):
        """Waits for the child to exit until `deadline` (a
        `time.monotonic()` value), then terminates (then kills) it; returns
        its exit status."""
        self.quit()
        try:
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"[{self.backend}] terminating the child")
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def close_children(children, timeout=CLOSE_TIMEOUT):
    """Asks every child to quit at once (their exits overlap), waits up to
    `timeout` seconds in all, terminates what is left; returns `{backend:
    exit status}`. After an error or Ctrl-C, `timeout=0`: a child still
    warming up reads nothing before it is ready."""
    for child in children.values():
        child.quit()
    deadline = time.monotonic() + timeout
    return {backend: child.close(deadline)
            for backend, child in children.items()}


def start_children(args, skipped, failed):
    """Starts a child per available backend (all at once: the warm-ups
    overlap) and waits until each is ready; records the backends that
    cannot run in `skipped` (package missing) or `failed` (any other
    error). Returns `({backend: Child}, {backend: ready message})`."""
    children, ready = {}, {}
    try:
        for backend in args.backends:
            if backend not in skipped:
                children[backend] = Child(backend, args)
        log(f"started children for {list(children)}; building and warming "
            "up (tracing, compiling)")
        for backend, child in list(children.items()):
            try:
                ready[backend] = child.receive(args.child_timeout)
            except ChildError as err:
                if err.message.get("skipped"):
                    skipped[backend] = err.message["error"]
                    log(f"[{backend}] skipped: {skipped[backend]}")
                else:
                    failed[backend] = str(err)
                    log(f"[{backend}] FAILED: {err}")
                close_children({backend: child})
                del children[backend]
                continue
            variants = ready[backend]["variants"]
            log(f"[{backend}] ready: " + ", ".join(
                f"{n} (jit_compile {v['jit_compile']})"
                for n, v in variants.items()))
    except BaseException:
        close_children(children, timeout=0)
        raise
    return children, ready


def time_rounds(args, children, ready):
    """The interleaved rounds; returns `{(backend, variant): [{"wall_ms",
    "cpu_ms", "loss"}, ...]}`."""
    jobs = {}
    for backend, child in children.items():
        for variant in ready[backend]["variants"]:
            jobs[(backend, variant)] = (
                lambda c=child, v=variant: c.request(
                    args.child_timeout, cmd="time", variant=v,
                    steps=args.steps))

    def progress(r, results):
        parts = []
        for backend in children:
            parts.append(f"{backend}: " + " ".join(
                f"{v} {results[(b, v)][-1]['wall_ms']:.1f}"
                for b, v in results if b == backend))
        log(f"round {r + 1}/{args.rounds} ms/step: " + " | ".join(parts))

    log(f"timing: {args.rounds} interleaved rounds x {args.steps} steps of "
        f"{len(jobs)} contenders")
    return interleaved(jobs, args.rounds, progress)


# ----------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------


def ratio(a, b):
    """`a` over `b`, two per-round lists: `{"min"` (of the mins),
    `"median"` (of the medians), `"median_of_round_ratios"`, `"per_round"}`.
    """
    per_round = [x / y for x, y in zip(a, b)]
    return {"min": min(a) / min(b),
            "median": statistics.median(a) / statistics.median(b),
            "median_of_round_ratios": statistics.median(per_round),
            "per_round": per_round}


def _split(name):
    """`"vae_xla"` -> `("vae", "_xla")`, `"ae"` -> `("ae", "")`."""
    model, sep, setting = name.partition("_")
    return model, sep + setting


def _both_clocks(a, b):
    """`ratio` of wall clock, with the CPU one under `"cpu"`."""
    out = ratio(a["wall_ms"], b["wall_ms"])
    out["cpu"] = ratio(a["cpu_ms"], b["cpu_ms"])
    return out


def summarize(timed, ready):
    """The report's `speed` block from the rounds and the ready messages.
    """
    speed = {}
    for (backend, variant), rounds in timed.items():
        entry = dict(ready[backend]["variants"][variant])
        for clock in ("wall_ms", "cpu_ms"):
            values = [r[clock] for r in rounds]
            entry[clock] = dict({"per_round": values}, **min_median(values))
        entry["last_loss"] = rounds[-1]["loss"]
        speed.setdefault(backend, {})[variant] = entry

    def series(backend, variant):
        v = speed[backend][variant]
        return {c: v[c]["per_round"] for c in ("wall_ms", "cpu_ms")}

    vae_over_ae = {}
    for backend, variants in speed.items():
        for name in variants:
            model, suffix = _split(name)
            if model == "vae":
                vae_over_ae[backend + suffix] = _both_clocks(
                    series(backend, name), series(backend, "ae" + suffix))
    cross, tf_jit = {}, {}
    tf_variants = speed.get("tensorflow", {})
    tf_suffixes = [_split(n)[1] for n in tf_variants if _split(n)[0] == "vae"]
    for other in ("jax", "torch"):
        if other in speed:
            for suffix in tf_suffixes:
                cross[f"{other}/tensorflow{suffix}"] = {
                    m: _both_clocks(series(other, m),
                                    series("tensorflow", m + suffix))
                    for m in ("vae", "ae")}
    if len(tf_suffixes) == 2:
        for model in ("vae", "ae"):
            names = [model + s for s in tf_suffixes]
            on, off = sorted(names,
                             key=lambda n: not tf_variants[n]["jit_compile"])
            tf_jit[model] = dict(_both_clocks(series("tensorflow", on),
                                              series("tensorflow", off)),
                                 on=on, off=off)
    return {"per_backend": speed, "vae_over_ae": vae_over_ae,
            "cross_backend": cross, "tensorflow_jit_on_over_off": tf_jit}


def merged_meta(meta, ready):
    """`meta` (the parent's `host_meta`) plus the versions and devices the
    children reported (each knows its own framework)."""
    meta = dict(meta)
    versions = {"python": platform.python_version()}
    devices = {}
    for backend, message in ready.items():
        child = message["meta"]
        versions.update({k: v for k, v in child["versions"].items()
                         if k != "backend"})
        devices[backend] = child["devices"]
    meta["versions"] = versions
    meta["devices"] = devices
    return meta


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------


def run_parent(args):
    """Runs the benchmark; returns the exit status."""
    os.makedirs(args.out, exist_ok=True)
    meta_start = host_meta(args)
    log(f"backends: {args.backends}, shape {args.shape}, batch "
        f"{args.batch_size}, rounds {args.rounds}, steps {args.steps}, "
        f"import repeats {args.import_repeats}")
    skipped = {b: why for b in args.backends
               if (why := unavailable(b)) is not None}
    for backend, why in skipped.items():
        log(f"[{backend}] skipped: {why}")
    failed = {}
    imports = {}
    importable = [b for b in args.backends if b not in skipped]
    if importable:
        log(f"timing `import keras_vae_layers`: {args.import_repeats} "
            "fresh interpreter(s) per backend, interleaved")
        try:
            imports = measure_imports(importable, args.import_repeats,
                                      args.child_timeout, skipped)
        except RuntimeError as err:
            log(f"import timing failed: {err}")
            failed["imports"] = str(err)
    children, ready = start_children(args, skipped, failed)
    try:
        timed = time_rounds(args, children, ready) if children else {}
    except BaseException:
        close_children(children, timeout=0)
        raise
    for backend, status in close_children(children).items():
        if status != 0:
            failed.setdefault(backend, f"child exit status {status}")
    meta = merged_meta(meta_start, ready)
    meta["loadavg_end"] = loadavg()
    meta["child_env"] = {k: os.environ.get(k, v)
                         for k, v in CHILD_ENV_DEFAULTS.items()}
    report = {"meta": meta,
              "config": {"shape": args.shape,
                         "preset": {k: (list(v) if isinstance(v, tuple)
                                        else v)
                                    for k, v in SHAPES[args.shape].items()},
                         "z_dim": args.z_dim or SHAPES[args.shape]["z_dim"],
                         "batch_size": args.batch_size,
                         "rounds": args.rounds, "steps": args.steps,
                         "warmup_steps": args.warmup_steps},
              "backends": args.backends,
              "skipped": skipped, "failed": failed,
              "imports": imports,
              "frameworks_after_training": {
                  b: message["frameworks_loaded"]
                  for b, message in ready.items()},
              "speed": summarize(timed, ready)}
    report["targets"] = evaluate_targets(report)
    write_report(args.out, "backends", report, markdown_report(report))
    for name, t in report["targets"].items():
        log(f"  target {'met   ' if t['met'] else 'MISSED'} {name}: "
            f"{t['detail']}")
    return 1 if failed else 0


def main(argv=None):
    """The command line: the parent, or with `--child` one backend's
    child."""
    args = parse_args(argv)
    if args.child is not None:
        from benchmarks import backends_child

        return backends_child.serve(args)
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())
