"""Behaviour that depends on the Keras backend, tested on the active one.

Every test here runs under KERAS_BACKEND=tensorflow, jax and torch (each in
its own pytest process) and asserts what that backend must do: no
TensorFlow import on JAX/torch, clear errors for TensorFlow-only features,
saved files that load on every backend, the KL metric's logs, loss scaling
under mixed precision and the switches that must not retrace.
"""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from keras import ops

from helpers import BACKEND, TraceCounter, binary_data, dense_vae, find_layer
from helpers import trace_mark
from keras_vae_layers import KLDivergenceLayer
from keras_vae_layers import SamplingLayer
from keras_vae_layers import VAEModel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
BACKENDS = ("tensorflow", "jax", "torch")
OTHER_BACKENDS = tuple(b for b in BACKENDS if b != BACKEND)


def run_python(code, backend):
    """Runs `code` in a fresh interpreter on `backend`; its last stdout
    line, parsed as JSON."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, HERE, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def vae_model(seed=1):
    base = dense_vae(nested=True, kl_layer=False, seed=seed)
    return VAEModel(base.get_layer("encoder"), base.get_layer("decoder"),
                    beta=0.5)


# ----------------------------------------------------------------- imports

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, sys
import keras_vae_layers as kvl
from keras_vae_layers import _backend
from keras_vae_layers.models import backends
for name in ("callbacks", "diagnostics", "evaluation", "tuning"):
    getattr(kvl, name)
# Every module, except the other backends' step modules (the active one
# is what step_module() imports).
steps = tuple(f"keras_vae_layers.models.backends.{b}"
              for b in _backend.TRAINING_BACKENDS)
for module in pkgutil.walk_packages(kvl.__path__, "keras_vae_layers."):
    if module.name not in steps:
        importlib.import_module(module.name)
backends.step_module()
print(json.dumps(sorted(m for m in sys.modules
                        if m.split(".")[0] == "tensorflow")))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_package_never_imports_tensorflow_on_jax_and_torch(backend):
    assert run_python(IMPORT_EVERYTHING, backend) == []


def test_tensorflow_missing_is_reported_by_name():
    # As if TensorFlow were not installed (a None entry makes `import
    # tensorflow` fail); on a backend that does not need it.
    backend = BACKEND if BACKEND != "tensorflow" else "jax"
    result = run_python("""
import json, sys
sys.modules["tensorflow"] = None
from keras_vae_layers import _backend
from keras_vae_layers.callbacks import SampleGridLogger
SampleGridLogger("grids")  # PNG grids need no TensorFlow
try:
    SampleGridLogger("grids", log_dir="logs")
    message = None
except ImportError as err:
    message = str(err)
print(json.dumps({"available": _backend.tensorflow_available(),
                  "message": message}))
""", backend)
    assert result["available"] is False
    message = result["message"]
    assert "SampleGridLogger(log_dir=...)" in message
    assert "needs TensorFlow, which is not installed" in message
    assert f"(Keras backend: '{backend}')" in message
    assert "pip install tensorflow" in message and "omit `log_dir`" in message


def test_numpy_backend_is_refused_by_name():
    result = run_python("""
import json
import numpy as np
from keras_vae_layers.models import backends
try:
    backends.step_module()
    message = None
except ValueError as err:
    message = str(err)
print(json.dumps(message))
""", "numpy")
    assert result == (
        "VAEModel: the Keras backend 'numpy' is not supported; VAEModel "
        "runs on tensorflow, jax, torch. Set KERAS_BACKEND to one of them "
        "before importing keras.")


# -------------------------------------------------------- tf.distribute


def test_tf_distribute_works_on_tensorflow_and_is_refused_elsewhere():
    import tensorflow as tf

    data = binary_data(32)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    if BACKEND == "tensorflow":
        with strategy.scope():
            vae = vae_model()
            vae.compile(optimizer="sgd")
        assert vae.distribute_strategy is strategy
        vae.fit(data, epochs=1, batch_size=16, verbose=0)
        return
    instead = {"jax": "keras.distribution.DataParallel",
               "torch": "DistributedDataParallel"}[BACKEND]
    with strategy.scope():
        with pytest.raises(ValueError, match=(
                rf"^VAEModel: a tf.distribute strategy scope "
                rf"\(OneDeviceStrategy\) is active, but the Keras backend is "
                rf"'{BACKEND}'.*{instead}")):
            vae_model()
    vae = vae_model()
    vae.compile(optimizer="sgd")
    with strategy.scope():
        with pytest.raises(ValueError, match=r"^VAEModel.fit: a "
                                             r"tf.distribute strategy"):
            vae.fit(data, epochs=1, batch_size=16, verbose=0)
    batches = tf.data.Dataset.from_tensor_slices(data).batch(8)
    distributed = strategy.experimental_distribute_dataset(batches)
    steps = []
    for call, owner, argument in (
            (lambda: vae.fit(distributed, verbose=0), "fit", "x"),
            (lambda: vae.fit(data, validation_data=distributed, verbose=0),
             "fit", "validation_data"),
            (lambda: vae.evaluate(distributed, verbose=0), "evaluate", "x"),
            (lambda: vae.predict(distributed, verbose=0), "predict", "x")):
        with pytest.raises(ValueError, match=(
                rf"^VAEModel.{owner}: `{argument}` is a tf.distribute "
                rf"distributed dataset .* backend is '{BACKEND}'.*Pass the "
                rf"tf.data.Dataset itself")):
            call()
        steps.append(owner)
    assert steps == ["fit", "fit", "evaluate", "predict"]
    # What works stays allowed: a plain tf.data.Dataset (Keras converts
    # its batches on JAX and torch).
    history = vae.fit(batches, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])
    assert vae.predict(batches, verbose=0)["z"].shape == (32, 2)


# ------------------------------------------------------------ saved files


def test_files_written_before_the_running_kl_statistics_still_load():
    """`.keras` and `.weights.h5` written by the previous release (a KL
    layer whose only variable was `beta`; TensorFlow backend) load on
    every backend and predict what they predicted then."""
    expected = np.load(os.path.join(DATA, "functional_vae_v0_expected.npz"))
    loaded = keras.saving.load_model(
        os.path.join(DATA, "functional_vae_v0.keras"))  # safe_mode=True
    np.testing.assert_allclose(loaded.predict(expected["x"], verbose=0),
                               expected["reconstruction"], rtol=1e-5,
                               atol=1e-6)
    kl = find_layer(loaded, KLDivergenceLayer)
    assert float(ops.convert_to_numpy(kl.beta)) == 0.25
    assert find_layer(loaded, SamplingLayer).deterministic

    fresh = dense_vae(nested=True)
    fresh.load_weights(os.path.join(DATA, "functional_vae_v0.weights.h5"))
    find_layer(fresh, SamplingLayer).set_deterministic(True)
    np.testing.assert_allclose(fresh.predict(expected["x"], verbose=0),
                               expected["reconstruction"], rtol=1e-5,
                               atol=1e-6)
    assert float(ops.convert_to_numpy(
        find_layer(fresh, KLDivergenceLayer).beta)) == 0.25


def test_kl_layer_saves_beta_only(tmp_path):
    import h5py

    vae = dense_vae(nested=True)
    kl = find_layer(vae, KLDivergenceLayer)
    vae(binary_data(4))
    # The running KL sum/count are non-trainable weights (as BN's moving
    # statistics), carried by every trainer, but not saved.
    assert [w.name for w in kl.weights] == ["beta", "kl_total", "kl_count"]
    assert float(ops.convert_to_numpy(kl.kl_count)) == 1.0
    kl.beta.assign(0.25)
    path = tmp_path / "vae.weights.h5"
    vae.save_weights(path)
    stored = []
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: stored.append(name)
                     if isinstance(obj, h5py.Dataset) and "kl_div" in name
                     else None)
    assert [name.rsplit("/", 2)[-2:] for name in stored] == [["vars", "0"]]
    fresh = dense_vae(nested=True)
    fresh.load_weights(path)
    fresh_kl = find_layer(fresh, KLDivergenceLayer)
    assert float(ops.convert_to_numpy(fresh_kl.beta)) == 0.25
    assert float(ops.convert_to_numpy(fresh_kl.kl_count)) == 0.0
    with pytest.raises(ValueError, match="holds 3 variables for this layer, "
                                         r"expected 1 \(`beta`\)"):
        kl.load_own_variables({"0": 1.0, "1": 2.0, "2": 3.0})


CROSS_LOAD = """
import json
import keras, numpy as np
import keras_vae_layers  # registers the classes
x = np.load({x!r})
out = {{}}
for kind, path in {paths!r}.items():
    if path.endswith(".keras"):
        model = keras.saving.load_model(path)
    else:
        model = keras.saving.load_model(path.replace(".weights.h5", ".keras"))
        model.load_weights(path)
    pred = model.predict(x, verbose=0)
    if isinstance(pred, dict):
        pred = pred["reconstruction"]
    out[kind] = np.asarray(pred).tolist()
print(json.dumps(out))
"""


def test_files_saved_here_load_on_the_other_backends(tmp_path):
    data = binary_data(32)
    x = binary_data(8, seed=5)
    functional = dense_vae(nested=True)
    functional.compile(optimizer="adam", loss="binary_crossentropy")
    functional.fit(data, data, epochs=1, batch_size=16, verbose=0)
    find_layer(functional, KLDivergenceLayer).beta.assign(0.3)
    vae = vae_model()
    vae.compile(optimizer="adam")
    vae.fit(data, epochs=1, batch_size=16, verbose=0)
    expected = {}
    paths = {}
    find_layer(functional, SamplingLayer).set_deterministic(True)
    vae.set_deterministic(True)
    for kind, model in (("functional", functional), ("vae", vae)):
        pred = model.predict(x, verbose=0)
        expected[kind] = pred["reconstruction"] if kind == "vae" else pred
        model.save(tmp_path / f"{kind}.keras")
        model.save_weights(tmp_path / f"{kind}.weights.h5")
        paths[kind] = str(tmp_path / f"{kind}.keras")
        paths[f"{kind}_weights"] = str(tmp_path / f"{kind}.weights.h5")
    np.save(tmp_path / "x.npy", x)
    code = CROSS_LOAD.format(x=str(tmp_path / "x.npy"), paths=paths)
    for backend in OTHER_BACKENDS:
        got = run_python(code, backend)
        for kind in ("functional", "vae"):
            for key in (kind, f"{kind}_weights"):
                np.testing.assert_allclose(
                    np.asarray(got[key], "float32"), expected[kind],
                    rtol=1e-5, atol=1e-6, err_msg=f"{backend}: {key}")


# -------------------------------------------------------------- the KL log


def test_kl_metric_of_functional_vaes_per_backend():
    """Epoch logs hold the exact mean KL on every backend; per-batch logs
    too, except on JAX, where Keras computes them inside its compiled step
    without the layer's variables (nan there, documented)."""
    vae = dense_vae(nested=True)
    find_layer(vae, SamplingLayer).set_deterministic(True)
    vae.compile(optimizer=keras.optimizers.SGD(0.0),
                loss="binary_crossentropy")  # frozen weights
    data = binary_data(64)
    batches = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(
            float(logs["kl_loss"])))
    history = vae.fit(data, data, epochs=1, batch_size=16, verbose=0,
                      shuffle=False, callbacks=[recorder])
    epoch_kl = history.history["kl_loss"][0]
    reference = vae.evaluate(data, data, batch_size=16, verbose=0,
                             return_dict=True)["kl_loss"]
    assert epoch_kl > 0
    assert epoch_kl == pytest.approx(reference, rel=1e-5)
    assert len(batches) == 4
    if BACKEND == "jax":
        assert all(math.isnan(v) for v in batches)
    else:
        assert batches[-1] == pytest.approx(epoch_kl, rel=1e-5)
    # The metric reads the layer's running state, and resets it.
    kl = find_layer(vae, KLDivergenceLayer)
    assert float(ops.convert_to_numpy(kl.kl_count)) == 4.0
    kl.kl_tracker.reset_state()
    assert float(ops.convert_to_numpy(kl.kl_tracker.result())) == 0.0


def test_vae_model_logs_kl_every_batch_on_every_backend():
    vae = vae_model()
    vae.compile(optimizer="adam")
    batches = []
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(dict(logs)))
    vae.fit(binary_data(32), epochs=1, batch_size=16, verbose=0,
            callbacks=[recorder])
    assert len(batches) == 2
    for logs in batches:
        assert set(logs) == {"loss", "total_loss", "reco_loss", "kl_loss",
                             "neg_elbo", "beta"}
        assert all(math.isfinite(float(v)) for v in logs.values())
        assert float(logs["neg_elbo"]) == pytest.approx(
            float(logs["reco_loss"]) + float(logs["kl_loss"]), rel=1e-5)


# -------------------------------------------------------- mixed precision


def test_mixed_float16_step_is_scaled_and_unscaled():
    """One SGD step under mixed_float16 (loss scaled by 2**15, gradients
    unscaled by the LossScaleOptimizer) moves the weights as the float32
    step does, up to float16 rounding."""
    data = binary_data(32)
    updates = {}
    for policy in ("float32", "mixed_float16"):
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(3)
        vae = vae_model()
        vae.set_deterministic(True)
        vae(data[:2])
        if policy == "float32":
            init = vae.get_weights()
        else:
            vae.set_weights(init)
        vae.compile(optimizer=keras.optimizers.SGD(0.01))
        logs = vae.train_on_batch(data, return_dict=True)
        assert all(math.isfinite(float(v)) for v in logs.values())
        updates[policy] = [w - i for w, i in zip(vae.get_weights(), init)]
        if policy == "mixed_float16":
            optimizer = vae.optimizer
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            # No overflow: the dynamic scale kept its initial value.
            assert float(ops.convert_to_numpy(
                optimizer.dynamic_scale)) == 2.0 ** 15
    largest = max(float(np.abs(u).max()) for u in updates["float32"])
    assert largest > 1e-3
    worst = max(float(np.abs(a - b).max())
                for a, b in zip(updates["float32"], updates["mixed_float16"]))
    assert worst < 0.05 * largest


# ----------------------------------------------------------- no retrace


def test_sampling_switch_takes_effect_without_retrace():
    counter = TraceCounter()
    x = keras.Input((16,))
    h = counter(keras.layers.Dense(8, activation="relu")(x))
    mu, logvar = keras.layers.Dense(2)(h), keras.layers.Dense(2)(h)
    encoder = keras.Model(x, [mu, logvar])
    z = keras.Input((2,))
    decoder = keras.Model(z, keras.layers.Dense(16, activation="sigmoid")(z))
    vae = VAEModel(encoder, decoder)
    data = binary_data(32)
    first = vae.predict(data, verbose=0)
    assert not np.allclose(first["z"], first["mu"])
    mark = trace_mark(counter, vae)
    vae.set_deterministic(True)
    out = vae.predict(data, verbose=0)
    np.testing.assert_array_equal(out["z"], out["mu"])
    vae.set_deterministic(False)
    out = vae.predict(data, verbose=0)
    assert not np.allclose(out["z"], out["mu"])
    assert trace_mark(counter, vae) == mark


def test_sub_layer_add_loss_values_reach_every_step():
    """Activity regularizers add their loss in `call()`; JAX's stateless
    step collects them through its scope, the others read them directly."""
    x = keras.Input((16,))
    h = keras.layers.Dense(8, activation="tanh",
                           activity_regularizer=keras.regularizers.L2(0.5))(x)
    encoder = keras.Model(x, [keras.layers.Dense(2)(h),
                              keras.layers.Dense(2)(h)])
    z = keras.Input((2,))
    decoder = keras.Model(z, keras.layers.Dense(16, activation="sigmoid")(z))
    vae = VAEModel(encoder, decoder)
    vae.set_deterministic(True)
    vae.compile(optimizer=keras.optimizers.SGD(0.0))  # frozen weights
    data = binary_data(32)
    hidden = keras.Model(x, h)(data)
    activity = 0.5 * float(np.sum(ops.convert_to_numpy(hidden) ** 2)) / 32
    assert activity > 0.1
    for logs in (vae.evaluate(data, batch_size=32, verbose=0,
                              return_dict=True),
                 vae.train_on_batch(data, return_dict=True)):
        assert logs["total_loss"] == pytest.approx(
            logs["reco_loss"] + logs["kl_loss"] + activity, rel=1e-5)
