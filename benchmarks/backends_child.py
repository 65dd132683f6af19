"""The child process of `backends.py`: one Keras backend, timed on request.

`python benchmarks/backends.py --child BACKEND ...` (with `KERAS_BACKEND`
set by the parent) lands in `serve`: it imports Keras, builds the models
of one backend, warms them up, answers `ready` and then times training
steps whenever the parent asks, until `quit` or the end of its stdin.

Protocol: one JSON object per line. The child's first line is
`{"ok": true, "variants": ..., "meta": ...}` once everything is traced,
or `{"ok": false, "skipped": true, "error": ...}` when the backend's
package cannot be imported, or `{"ok": false, "error": traceback}`. Then
each `{"cmd": "time", "variant": name, "steps": n}` is answered with
`{"ok": true, "wall_ms": ..., "cpu_ms": ..., "loss": ...}` (per step),
and `{"cmd": "quit"}` ends the child. The protocol has the process's
real stdout to itself: everything else printed to stdout (libraries'
messages) goes to stderr, which the child shares with the parent.

The models, per backend, all from the same `SHAPES` preset and seed:

* `vae` -- `VAEModel` on the builder's encoder/decoder with
  `kl_layer=False` (as the examples build it), `compile(Adam(1e-3))`.
* `ae` -- plain autoencoder: the same encoder up to the `mu` head (no
  `logvar` head, no sampling, no KL), the same decoder, compiled with
  `ReconstructionLoss("bce")` (the same reconstruction term and
  reductions as `VAEModel`'s) and trained by Keras' own `train_step`.
  It does strictly less work than the VAE: the speed floor.

both with Keras' default `jit_compile="auto"` (TensorFlow: off on a
machine without GPU, on with one; JAX: on; torch: off). On TensorFlow
also `vae_xla` / `ae_xla` with `jit_compile=True` (or `vae_noxla` /
`ae_noxla` with `jit_compile=False` where "auto" resolved to on).

What is timed is the compiled step function that `fit()` calls once per
step (`model.train_function`, built by `fit()` during the warm-up), called
directly in a loop on one fixed batch that is already a backend tensor:
no input pipeline and none of `fit()`'s per-call set-up (epoch iterator,
callbacks), which costs tens of milliseconds per call and would blur small
models. Per backend that is: TensorFlow `train_function(iterator)` over a
repeated one-batch `tf.data` dataset (as `kl_speed.py`, but without
tf.data's background work); JAX
`logs, state = train_function(state, iterator)` carrying the state as
`fit()` does (the model's variables are purged meanwhile, as in `fit()`);
torch `train_function([batch])` in training mode.
"""

import itertools
import json
import os
import sys
import time
import traceback

from benchmarks._common import SHAPES
from benchmarks._common import build_kwargs
from benchmarks._common import log
from benchmarks._common import run_meta

FRAMEWORKS = ("tensorflow", "jax", "torch")
"""The backend packages; `frameworks_loaded` lists those in `sys.modules`.
"""


def _protocol_stream():
    """The real stdout for the protocol; fd 1 then points at stderr, so that
    stray prints of the libraries cannot corrupt the protocol."""
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    return stream


def frameworks_loaded():
    """The backend packages imported so far in this process."""
    return [name for name in FRAMEWORKS if name in sys.modules]


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


def _conv_stack(kwargs, seed):
    # The builder's seed seeds every initializer. (Not
    # keras.utils.set_random_seed: it imports TensorFlow, where installed,
    # on every backend.)
    from keras_vae_layers import build_conv_encoder_decoder

    return build_conv_encoder_decoder(**kwargs, kl_layer=False, seed=seed)


def build_vae(kwargs, seed, jit_compile):
    """`VAEModel` on the preset's conv stack, compiled with `Adam(1e-3)`."""
    import keras

    from keras_vae_layers import VAEModel

    encoder, decoder = _conv_stack(kwargs, seed)
    model = VAEModel(encoder, decoder, beta=1.0, seed=seed, name="vae")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  jit_compile=jit_compile)
    return model


def build_ae(kwargs, seed, jit_compile):
    """The plain autoencoder of the same conv stack (the `mu` head as its
    latent), compiled with `Adam(1e-3)` and `ReconstructionLoss("bce")`."""
    import keras

    from keras_vae_layers import ReconstructionLoss

    encoder, decoder = _conv_stack(kwargs, seed)
    inner = keras.Model(encoder.input, encoder.get_layer("mu").output,
                        name="ae_encoder")
    x = keras.Input(tuple(kwargs["input_shape"]))
    model = keras.Model(x, decoder(inner(x)), name="ae")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=ReconstructionLoss("bce"), jit_compile=jit_compile)
    return model


# ----------------------------------------------------------------------------
# The step loop of each backend
# ----------------------------------------------------------------------------


class _TensorFlowSteps:
    """`train_function(iterator)` over a repeated one-batch dataset.

    Without tf.data's autotuning and injected prefetching: nothing runs in
    the background between steps (or while the other children are timed),
    and the iterator is released at once (with them, destroying one took
    5-8 s, and a child's exit over 30 s).
    """

    def __init__(self, model, data):
        import tensorflow as tf

        self.fn = model.train_function
        options = tf.data.Options()
        options.autotune.enabled = False
        options.experimental_optimization.inject_prefetch = False
        dataset = tf.data.Dataset.from_tensors(data).repeat()
        self.iterator = iter(dataset.with_options(options))

    def __call__(self, steps):
        for _ in range(steps):
            logs = self.fn(self.iterator)
        return logs


class _JaxSteps:
    """`logs, state = train_function(state, iterator)`, as `fit()` loops."""

    def __init__(self, model, data):
        self.fn = model.train_function
        self.iterator = itertools.repeat(data)
        self.state = model._get_jax_state(
            trainable_variables=True, non_trainable_variables=True,
            optimizer_variables=True, metrics_variables=True,
            purge_model_variables=True)

    def __call__(self, steps):
        import jax

        state = self.state
        for _ in range(steps):
            logs, state = self.fn(state, self.iterator)
        # Asynchronous dispatch: the steps have run once their outputs
        # exist.
        self.state = jax.block_until_ready(state)
        return logs


class _TorchSteps:
    """`train_function([batch])` in training mode, as `fit()` calls it."""

    def __init__(self, model, data):
        model.train()
        self.fn = model.train_function
        self.data = [data]

    def __call__(self, steps):
        for _ in range(steps):
            logs = self.fn(self.data)
        return logs


_STEPS = {"tensorflow": _TensorFlowSteps, "jax": _JaxSteps,
          "torch": _TorchSteps}


# ----------------------------------------------------------------------------
# The bench of one backend
# ----------------------------------------------------------------------------


def _framework_versions(backend):
    if backend == "jax":
        import jax
        import jaxlib

        return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}
    if backend == "torch":
        import torch

        return {"torch": torch.__version__}
    return {}  # run_meta records TensorFlow's on the TensorFlow backend


def _devices(backend, meta):
    if backend == "jax":
        import jax

        return [f"{d.platform.upper()}:{d.id}" for d in jax.devices()]
    if backend == "torch":
        import torch

        return ["CUDA:0" if torch.cuda.is_available() else "CPU"]
    return meta["devices"]


class Bench:
    """The models of one backend, warmed up, and their timed steps.

    Args:
        args: The child's command line (`backends.parse_args`).
    """

    def __init__(self, args):
        import keras
        import numpy as np
        from keras import ops

        self.backend = keras.backend.backend()
        if self.backend != args.child:
            raise ValueError(f"--child {args.child}: Keras runs on "
                             f"{self.backend!r} (KERAS_BACKEND="
                             f"{os.environ.get('KERAS_BACKEND')!r})")
        spec = SHAPES[args.shape]
        kwargs = build_kwargs(spec, args.z_dim or spec["z_dim"])
        x = np.random.default_rng(args.seed).uniform(
            size=(args.batch_size,) + tuple(spec["input_shape"]))
        x = x.astype("float32")
        batch = ops.convert_to_tensor(x)
        models = {"ae": build_ae(kwargs, args.seed, "auto"),
                  "vae": build_vae(kwargs, args.seed, "auto")}
        if self.backend == "tensorflow":
            # The other setting of jit_compile than "auto" resolved to.
            xla = not models["vae"].jit_compile
            suffix = "_xla" if xla else "_noxla"
            models["ae" + suffix] = build_ae(kwargs, args.seed, xla)
            models["vae" + suffix] = build_vae(kwargs, args.seed, xla)
        self.runs = {}
        self.variants = {}
        for name, model in models.items():
            t0 = time.perf_counter()
            is_vae = name.startswith("vae")
            fit_args = (x,) if is_vae else (x, x)
            # fit() builds the optimizer and the metrics and makes the
            # train_function; the direct calls then trace it for the
            # fixed batch.
            model.fit(*fit_args, batch_size=args.batch_size, epochs=1,
                      verbose=0, shuffle=False)
            data = keras.utils.pack_x_y_sample_weight(
                batch, None if is_vae else batch)
            params = int(model.count_params())
            run = _STEPS[self.backend](model, data)
            logs = run(args.warmup_steps)
            self.runs[name] = run
            self.variants[name] = {
                "model": type(model).__name__,
                "jit_compile": bool(model.jit_compile),
                "params": params,
                "warmup_loss": float(ops.convert_to_numpy(logs["loss"])),
                "warmup_s": time.perf_counter() - t0,
            }
            log(f"  [{self.backend} child] warmed up {name} "
                f"({self.variants[name]['warmup_s']:.1f} s, jit_compile "
                f"{self.variants[name]['jit_compile']})")
        meta = run_meta(None, _framework_versions(self.backend), flags={})
        meta["devices"] = _devices(self.backend, meta)
        self.info = {"backend": self.backend, "variants": self.variants,
                     "meta": meta, "frameworks_loaded": frameworks_loaded()}

    def time_steps(self, name, steps):
        """Wall-clock and process-CPU ms per step over `steps` steps of
        `name`, after one untimed step (it wakes the backend's thread pools
        after the other children ran), and the last logged loss."""
        from keras import ops

        run = self.runs[name]
        run(1)
        c0, t0 = time.process_time(), time.perf_counter()
        logs = run(steps)
        loss = float(ops.convert_to_numpy(logs["loss"]))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"wall_ms": 1e3 * wall / steps, "cpu_ms": 1e3 * cpu / steps,
                "loss": loss}


def serve(args):
    """The child's main loop (see the module docstring); returns the exit
    status."""
    stream = _protocol_stream()

    def send(**message):
        stream.write(json.dumps(message) + "\n")

    try:
        import keras  # noqa: F401  (reads KERAS_BACKEND)
    except ImportError as err:
        send(ok=False, skipped=True, error=f"{type(err).__name__}: {err}")
        return 0
    try:
        bench = Bench(args)
    except Exception:  # reported to the parent, which names the backend
        send(ok=False, error=traceback.format_exc())
        return 1
    send(ok=True, **bench.info)
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        try:
            send(ok=True, **bench.time_steps(command["variant"],
                                             int(command["steps"])))
        except Exception:
            send(ok=False, error=traceback.format_exc())
            return 1
    return 0
