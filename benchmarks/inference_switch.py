"""Cost of switching sampling on/off at inference time, three ways.

docs/design.md, "Inference-time switches live in variables": a Python attribute read in `call()` is frozen into the
traced `predict()` graph. Three ways to switch sampling off (`z = mu`) after
a first `predict()` are measured on the same conv VAE:

* `eps_factor_assign` -- the package's way: `SamplingLayer.eps_factor` is a
  non-trainable variable; `eps_factor.assign(0.0)` (what
  `set_deterministic()` does) takes effect in the very next `predict()`.
* `make_predict_function` -- a layer with a Python attribute switch; after
  flipping it, `model.make_predict_function(force=True)` drops the cached
  predict function, so the next `predict()` retraces.
* `recompile` -- the same Python-attribute layer; `model.compile(...)` also
  drops the cached functions (and rebuilds optimizer/loss state).

For each: the time of the switch call alone, the time of switch + the
first `predict()` after it (compare with `predict_ms`, a `predict()` with no
switch), the number of retraces per switch, and whether the `predict()`
after the switch honoured it (`z == mu` exactly when sampling is off, and
`z != mu` when it is back on). Retraces are counted by an identity layer
whose `call()` increments a Python counter: Python code in `call()` runs
only while a graph is traced, never when the traced graph executes.

`python_attribute_without_refresh_honoured` shows the pitfall itself: the
Python-attribute switch with no refresh (expected `false`).

Run on its own:

    python benchmarks/inference_switch.py [--shape digits] [--repeats 5]

`benchmarks/kl_strategies.py` runs it for each of its shapes and puts the
result in its report under `"switch"`.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only benchmarks/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks._common import SHAPES  # noqa: E402
from benchmarks._common import build_kwargs  # noqa: E402
from benchmarks._common import interleaved  # noqa: E402
from benchmarks._common import ms_since  # noqa: E402
from benchmarks._common import stats  # noqa: E402
from keras_vae_layers import SamplingLayer  # noqa: E402
from keras_vae_layers import build_conv_encoder_decoder  # noqa: E402

METHODS = ("eps_factor_assign", "make_predict_function", "recompile")


class TraceCounter(keras.layers.Layer):
    """Identity layer that counts how often its `call()` is traced."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.traces = 0

    def call(self, x):
        self.traces += 1  # Python: runs only while a graph is traced.
        return x

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype=x.dtype)


class PythonFlagSampling(keras.layers.Layer):
    """The anti-pattern: sampling switched by a plain Python attribute."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.sample = True  # read in call(): frozen at the first trace

    def call(self, inputs):
        mu, logvar = inputs
        if not self.sample:
            return mu
        eps = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
        return mu + ops.exp(0.5 * logvar) * eps

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)


def _build_models(build_kwargs, seed):
    """Two identical VAEs: one with our SamplingLayer, one with a Python flag.

    Both map `x` to `[x_hat, z, mu]` and share initial weights.
    """
    encoder, decoder = build_conv_encoder_decoder(**build_kwargs, seed=seed)
    x = keras.Input(encoder.input.shape[1:])
    z, mu, _ = encoder(x)
    counter = TraceCounter(name="trace_counter")
    ours = keras.Model(x, [decoder(counter(z)), z, mu], name="switch_ours")

    encoder2, decoder2 = build_conv_encoder_decoder(**build_kwargs, seed=seed)
    encoder2.set_weights(encoder.get_weights())
    decoder2.set_weights(decoder.get_weights())
    heads = keras.Model(
        encoder2.input,
        [encoder2.get_layer("mu").output, encoder2.get_layer("logvar").output],
    )
    x2 = keras.Input(encoder.input.shape[1:])
    mu2, logvar2 = heads(x2)
    flag = PythonFlagSampling(seed=seed, name="python_flag_sampling")
    z2 = flag([mu2, logvar2])
    counter2 = TraceCounter(name="trace_counter")
    flagged = keras.Model(x2, [decoder2(counter2(z2)), z2, mu2],
                          name="switch_python_flag")
    sampler = encoder.get_layer("z")
    assert isinstance(sampler, SamplingLayer)
    return ours, counter, sampler, flagged, counter2, flag


def _deterministic(outputs):
    """True when `z == mu` exactly in a predict() result."""
    _, z, mu = outputs
    return bool(np.array_equal(z, mu))


def run_switch_benchmark(build_kwargs, batch_size, repeats=5,
                         assign_repeats=200, seed=0, log=None):
    """Measures the three ways of switching sampling off and on again.

    Args:
        build_kwargs: Keyword arguments of `build_conv_encoder_decoder`
            (without `seed`).
        batch_size: Number of images per `predict()` (one batch).
        repeats: Switches (off and on alternately) timed per method,
            each followed by a `predict()`.
        assign_repeats: Extra bare `eps_factor.assign` calls timed to get a
            stable per-switch figure.
        seed: Seed of weights, data and sampling.
        log: Optional `print`-like progress callback.

    Returns:
        Dict with `predict_ms` (no switch) and one entry per method in
        `methods`: `switch_ms`, `switch_plus_predict_ms` (min/median/max),
        `retraces_per_switch`, `retraces_total`, `switches`, `honoured`.
    """
    log = log or (lambda *a, **k: None)
    keras.utils.set_random_seed(seed)
    ours, counter, sampler, flagged, counter2, flag = _build_models(
        build_kwargs, seed
    )
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(batch_size,) + tuple(build_kwargs["input_shape"]))
    x = x.astype("float32")

    def predict(model):
        return model.predict(x, batch_size=batch_size, verbose=0)

    def timed_predict(model):
        t0 = time.perf_counter()
        predict(model)
        return ms_since(t0)

    # First predict() traces; then a baseline of predict() with no switch.
    for model in (ours, flagged):
        predict(model)
        predict(model)
    baseline = interleaved({"ours": lambda: timed_predict(ours),
                            "flagged": lambda: timed_predict(flagged)},
                           max(repeats, 3))
    result = {
        "batch_size": int(batch_size),
        "predict_ms": stats(baseline["ours"] + baseline["flagged"]),
        "methods": {},
    }

    # (a) the package's way: assign the eps_factor variable.
    log("  switch: eps_factor.assign")
    assign_ms = []
    for i in range(assign_repeats):
        value = float(i % 2 == 0)  # 1, 0, 1, 0, ...: alternate on/off
        t0 = time.perf_counter()
        sampler.eps_factor.assign(value)
        assign_ms.append(ms_since(t0))
    sampler.eps_factor.assign(1.0)
    result["methods"]["eps_factor_assign"] = _time_switches(
        lambda off: sampler.eps_factor.assign(0.0 if off else 1.0),
        lambda: predict(ours), counter, repeats, assign_ms)
    sampler.eps_factor.assign(1.0)

    # The pitfall: flip the Python flag, no refresh -> ignored.
    flag.sample = False
    stale = predict(flagged)
    result["python_attribute_without_refresh_honoured"] = _deterministic(stale)
    flag.sample = True
    flagged.make_predict_function(force=True)
    predict(flagged)

    # (b) and (c): Python flag + make_predict_function(force=True) / compile.
    def refresh_predict():
        flagged.make_predict_function(force=True)

    def recompile():
        flagged.compile(optimizer=keras.optimizers.Adam(1e-3))

    for name, refresh in (("make_predict_function", refresh_predict),
                          ("recompile", recompile)):
        log(f"  switch: {name}")

        def switch(off, refresh=refresh):
            flag.sample = not off
            refresh()

        result["methods"][name] = _time_switches(
            switch, lambda: predict(flagged), counter2, repeats)
        flag.sample = True
        refresh()
    return result


def _time_switches(switch, predict, counter, repeats, extra_switch_ms=()):
    """Switches sampling off and on `repeats` times, each followed by a
    `predict()`; returns the method's entry of the report.

    `switch(off)` turns sampling off (`True`) or on; `extra_switch_ms` are
    further timings of the bare switch, pooled into `switch_ms`.
    """
    before = counter.traces
    switch_ms, total_ms, honoured = [], [], []
    deterministic = False
    for _ in range(repeats):
        deterministic = not deterministic
        t0 = time.perf_counter()
        switch(deterministic)
        switch_ms.append(ms_since(t0))
        out = predict()
        total_ms.append(ms_since(t0))
        honoured.append(_deterministic(out) == deterministic)
    retraces = counter.traces - before
    return {
        "switch_ms": stats(list(extra_switch_ms) + switch_ms),
        "switch_plus_predict_ms": stats(total_ms),
        "retraces_total": int(retraces),
        "switches": int(repeats),
        "retraces_per_switch": retraces / repeats,
        "honoured": bool(all(honoured)),
    }


def markdown_table(results):
    """`{shape: run_switch_benchmark(...)}` as a markdown table."""
    lines = [
        "| shape | method | switch ms (median / min) | "
        "switch + first predict ms (median) | predict ms, no switch "
        "(median) | retraces / switch | honoured |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for shape, res in results.items():
        for name in METHODS:
            m = res["methods"][name]
            lines.append(
                f"| {shape} | `{name}` | {m['switch_ms']['median']:.3f} / "
                f"{m['switch_ms']['min']:.3f} | "
                f"{m['switch_plus_predict_ms']['median']:.1f} | "
                f"{res['predict_ms']['median']:.1f} | "
                f"{m['retraces_per_switch']:g} | "
                f"{'yes' if m['honoured'] else 'NO'} |"
            )
    stale = {s: r["python_attribute_without_refresh_honoured"]
             for s, r in results.items()}
    lines.append("")
    lines.append(
        "Python-attribute switch with no refresh honoured by `predict()`: "
        + ", ".join(f"{s}: {'yes' if v else 'no'}" for s, v in stale.items())
        + " (the stale-graph pitfall, see docs/design.md)."
    )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Time switching VAE sampling on/off at inference time "
                    "(see docs/design.md)."
    )
    parser.add_argument("--shape", default="digits",
                        choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--z-dim", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec = SHAPES[args.shape]
    kwargs = build_kwargs(spec, args.z_dim or spec["z_dim"])
    res = run_switch_benchmark(kwargs, args.batch_size, args.repeats,
                               seed=args.seed,
                               log=lambda *a: print(*a, flush=True))
    print(markdown_table({args.shape: res}))
    ok = all(m["honoured"] for m in res["methods"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
