"""Training speed of the KL variants, timed interleaved.

Every variant is warmed up (traced), then `--rounds` rounds each run
`--steps` training steps of every variant in turn, on a fixed in-memory
batch. Reported per variant: wall-clock and process-CPU ms per step per
round, min, median and the ratios to `ae`, plus the ops of the traced
training step (a noise-free measure of fixed per-step work).
"""

import statistics
import time

import tensorflow as tf
from keras import ops

from benchmarks._common import interleaved
from benchmarks._common import log
from benchmarks._common import min_median

_BOOKKEEPING_OPS = frozenset(("Const", "Identity", "NoOp", "Placeholder"))


def _dataset(variant, x):
    data = variant.data_fn(tf.convert_to_tensor(x))
    return tf.data.Dataset.from_tensors(data).repeat()


def _sync(logs):
    # Fetch one value: the step has finished once its outputs exist.
    for value in logs.values():
        ops.convert_to_numpy(value)
        break


def warm_up(variant, x, steps, timing):
    """Builds, traces and runs a few steps so the timed rounds trace nothing.
    """
    model = variant.model
    ds = _dataset(variant, x)
    model.fit(ds, epochs=1, steps_per_epoch=max(1, steps), verbose=0,
              shuffle=False)
    variant.dataset = ds
    if timing == "train_function":
        variant.iterator = iter(ds)
        for _ in range(max(1, steps)):
            logs = model.train_function(variant.iterator)
        _sync(logs)


def time_steps(variant, steps, timing):
    """Wall and process-CPU ms per training step over `steps` steps."""
    model = variant.model
    if timing == "train_function":
        fn, iterator = model.train_function, variant.iterator
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(steps):
            logs = fn(iterator)
        _sync(logs)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        c0, t0 = time.process_time(), time.perf_counter()
        model.fit(variant.dataset, epochs=1, steps_per_epoch=steps,
                  verbose=0, shuffle=False)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return 1e3 * elapsed / steps, 1e3 * cpu / steps


def _summary(per_round, base=None):
    entry = dict({"ms_per_step": per_round}, **min_median(per_round))
    if base:
        ratios = [a / b for a, b in zip(per_round, base)]
        entry.update({
            "ratios": ratios,
            "ratio_to_ae_min": min(per_round) / min(base),
            "ratio_to_ae_median": statistics.median(per_round)
            / statistics.median(base),
            "median_of_round_ratios": statistics.median(ratios),
        })
    return entry


def count_step_ops(variant, x):
    """Ops in one traced training step (before grappler), a noise-free
    measure of per-step overhead: `{"total": n, "compute": n}` where
    `compute` leaves out Const/Identity/NoOp/Placeholder nodes.

    Traces `model.train_step` once more in a throw-away `tf.function`
    (nothing runs); call it after `warm_up`, when every variable exists.
    """
    data = variant.data_fn(tf.convert_to_tensor(x))
    graph_def = tf.function(variant.model.train_step).get_concrete_function(
        data).graph.as_graph_def()
    ops_ = [n.op for n in graph_def.node]
    for fn in graph_def.library.function:
        ops_.extend(n.op for n in fn.node_def)
    return {
        "total": len(ops_),
        "compute": sum(op not in _BOOKKEEPING_OPS for op in ops_),
    }


def run_speed(variants, x, rounds, steps, warmup_steps, timing,
              shape_name=""):
    """Interleaved timing; returns `{variant: {...}}` for one shape.

    Each entry holds the wall-clock figures (`ms_per_step` per round,
    `min`, `median`, `ratios` to `ae` per round, `ratio_to_ae_min`,
    `ratio_to_ae_median`, `median_of_round_ratios`) and the same for the
    process CPU time under `"cpu"` (all threads; on a machine shared with
    other jobs it is much less disturbed by them than wall time).
    """
    names = list(variants)
    for name in names:
        t0 = time.perf_counter()
        warm_up(variants[name], x, warmup_steps, timing)
        log(f"  [{shape_name}] warmed up {name} "
            f"({time.perf_counter() - t0:.1f} s)")
    graph_ops = {name: count_step_ops(variants[name], x) for name in names}

    def progress(r, results):
        line = "  ".join(f"{n} {results[n][-1][0]:.1f}" for n in names)
        log(f"  [{shape_name}] round {r + 1}/{rounds} ms/step: {line}")

    timed = interleaved(
        {name: (lambda v=variants[name]: time_steps(v, steps, timing))
         for name in names}, rounds, progress)
    wall = {name: [w for w, _ in timed[name]] for name in names}
    cpu = {name: [c for _, c in timed[name]] for name in names}
    out = {}
    for name in names:
        entry = _summary(wall[name], wall.get("ae"))
        entry["cpu"] = _summary(cpu[name], cpu.get("ae"))
        entry["step_graph_ops"] = graph_ops[name]
        entry["trainable_variables"] = len(
            variants[name].model.trainable_weights)
        entry["jit_compile"] = bool(variants[name].model.jit_compile)
        out[name] = entry
    return out
