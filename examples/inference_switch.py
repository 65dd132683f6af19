"""Deterministic vs stochastic encoding at inference time, without recompiling.

Shows, on a small VAE trained on the built-in shapes:

1. `vae.set_deterministic(True)` after a first `predict()`: the next
   `predict()` returns `z == mu` at once. The switch is a variable
   (`SamplingLayer.eps_factor`), so the traced predict function is reused:
   no retrace, no recompile.
2. The pitfall it avoids: a layer whose `call()` reads a plain Python
   attribute. Keras traces `predict()` once; changing the attribute later is
   silently ignored until the predict function is rebuilt
   (`refresh_predict_cache(model)` or the `PredictCacheRefresh` callback).

Writes `runs/<name>/inference_switch.json` with the measured figures.

Run:  python examples/inference_switch.py [--name switch]
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only examples/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from examples._common import build_vae  # noqa: E402
from examples._common import run_dir  # noqa: E402
from examples._common import run_parser  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.callbacks import refresh_predict_cache  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402


class PythonSwitchNoise(keras.layers.Layer):
    """The anti-pattern: a Python attribute read inside `call()`."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.enabled = True  # frozen into the graph at the first trace
        self.traces = 0

    def call(self, x):
        self.traces += 1  # Python runs only while tracing
        if self.enabled:
            return x + 1.0
        return x


def main(argv=None):
    parser = run_parser(__doc__, "switch")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=28)
    args = parser.parse_args(argv)
    out_dir = run_dir(args)
    keras.utils.set_random_seed(0)

    x = load_shapes(args.n, size=args.size, dtype="float32")[0]
    vae = build_vae(x.shape[1:], 4, (16, 32), 3)
    vae.fit(x, epochs=args.epochs, batch_size=64, verbose=2)
    probe = x[:256]

    print("\n1) VAE sampling switch (a variable):")
    first = vae.predict(probe, verbose=0)
    stochastic_gap = float(np.abs(first["z"] - first["mu"]).max())
    fn_before = vae.predict_function
    t0 = time.perf_counter()
    vae.set_deterministic(True)
    switch_ms = (time.perf_counter() - t0) * 1e3
    det = vae.predict(probe, verbose=0)
    det_gap = float(np.abs(det["z"] - det["mu"]).max())
    same_function = vae.predict_function is fn_before
    vae.set_deterministic(False)
    again = vae.predict(probe, verbose=0)
    again_gap = float(np.abs(again["z"] - again["mu"]).max())
    print(f"   stochastic predict:       max|z - mu| = {stochastic_gap:.4f}")
    print(f"   set_deterministic(True):  {switch_ms:.3f} ms, "
          f"max|z - mu| = {det_gap:.4f}, same predict function: "
          f"{same_function}")
    print(f"   set_deterministic(False): max|z - mu| = {again_gap:.4f}")

    print("\n2) The pitfall: a Python attribute read in call():")
    inp = keras.Input((4,))
    noisy = PythonSwitchNoise()
    model = keras.Model(inp, noisy(inp))
    ones = np.zeros((2, 4), "float32")
    on = float(model.predict(ones, verbose=0).mean())
    noisy.enabled = False
    stale = float(model.predict(ones, verbose=0).mean())
    refresh_predict_cache(model)
    fixed = float(model.predict(ones, verbose=0).mean())
    print(f"   enabled=True:                    output {on:.1f}")
    print(f"   enabled=False (cached function):  output {stale:.1f}  <- stale")
    print(f"   after refresh_predict_cache():    output {fixed:.1f} "
          f"(traces: {noisy.traces})")

    result = {
        "vae_switch": {
            "switch_ms": switch_ms,
            "stochastic_max_abs_z_minus_mu": stochastic_gap,
            "deterministic_max_abs_z_minus_mu": det_gap,
            "restored_max_abs_z_minus_mu": again_gap,
            "same_predict_function": same_function,
        },
        "python_attribute_pitfall": {
            "enabled_output": on, "stale_output": stale,
            "refreshed_output": fixed, "traces": noisy.traces,
        },
    }
    path = os.path.join(out_dir, "inference_switch.json")
    write_json_atomic(path, result)
    print(f"\nwrote {path}")
    return result


if __name__ == "__main__":
    main()
