"""VAECheckpoint: files, rotation, manifests, atomicity, resume, restore."""

import copy
import json
import os

import keras
import numpy as np
import pytest

import keras_vae_layers
from keras_vae_layers import _io
from keras_vae_layers import VAEModel
from keras_vae_layers.callbacks import VAECheckpoint
from keras_vae_layers.callbacks import find_encoder_decoder
from keras_vae_layers.callbacks import list_checkpoints
from keras_vae_layers.callbacks import load_decoder_weights
from keras_vae_layers.callbacks import load_encoder_weights
from keras_vae_layers.callbacks import restore_best
from keras_vae_layers.callbacks import restore_latest

from helpers import binary_data
from helpers import dense_vae

X = binary_data(32)


# Checkpointing does not interact with tracing, and eager fits of these
# tiny models cost a third of a traced one; the resume and Functional tests
# run traced.


def vae_model(run_eagerly=True):
    base = dense_vae(nested=True)
    vae = VAEModel(base.get_layer("encoder"), base.get_layer("decoder"))
    vae.compile(optimizer="adam", run_eagerly=run_eagerly)
    return vae


def functional_vae(nested=True, run_eagerly=False):
    model = dense_vae(nested=nested)
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  run_eagerly=run_eagerly)
    return model


def fit(model, epochs, callbacks, initial_epoch=0):
    y = None if isinstance(model, VAEModel) else X
    return model.fit(X, y, epochs=epochs, initial_epoch=initial_epoch,
                     batch_size=16, verbose=0, shuffle=False,
                     callbacks=callbacks)


class InjectLogs(keras.callbacks.Callback):
    """Puts a controlled `score` into the epoch logs (placed first)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.scores[epoch]


class WeightsAtEpochEnd(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch + 1] = [np.array(w) for w in
                                   self.model.get_weights()]


def ckpt_files(epoch, parts=True):
    stem = f"ckpt-epoch{epoch:04d}"
    names = {f"{stem}.weights.h5", f"{stem}.json"}
    if parts:
        names |= {f"{stem}.encoder.weights.h5", f"{stem}.decoder.weights.h5"}
    return names


def listing(directory):
    return set(os.listdir(directory))


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


# ----------------------------------------------------------------------------
# Files, rotation, manifests
# ----------------------------------------------------------------------------


def test_rotation_keeps_last_checkpoints(tmp_path):
    vae = vae_model()
    fit(vae, 5, [VAECheckpoint(tmp_path, monitor=None, keep_last=2)])
    assert listing(tmp_path) == (
        ckpt_files(4) | ckpt_files(5) | {"checkpoints.json"}
    )
    index = read_json(tmp_path / "checkpoints.json")
    assert [c["epoch"] for c in index["checkpoints"]] == [4, 5]
    assert index["latest"]["epoch"] == 5
    assert index["best"] is None and index["best_epoch"] is None


def test_best_is_kept_even_when_older_than_keep_last(tmp_path):
    vae = vae_model()
    scores = [3.0, 1.0, 2.0, 4.0, 5.0]
    fit(vae, 5, [InjectLogs(scores),
                 VAECheckpoint(tmp_path, monitor="score", keep_last=2)])
    assert listing(tmp_path) == (
        ckpt_files(2) | ckpt_files(4) | ckpt_files(5) | {"checkpoints.json"}
    )
    index = read_json(tmp_path / "checkpoints.json")
    assert index["best_epoch"] == 2
    assert index["best"]["monitor_value"] == 1.0
    assert [c["epoch"] for c in index["checkpoints"]] == [2, 4, 5]
    assert index["mode"] == "min"
    other = vae_model()
    assert restore_best(other, tmp_path) == 2
    assert restore_latest(other, tmp_path) == 5


def test_mode_max_and_save_best_only(tmp_path):
    vae = vae_model()
    scores = [0.1, 0.3, 0.2, 0.5, 0.4]
    fit(vae, 5, [InjectLogs(scores),
                 VAECheckpoint(tmp_path, monitor="score", mode="max",
                               save_best_only=True, keep_last=None)])
    assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [1, 2, 4]
    assert read_json(tmp_path / "checkpoints.json")["best_epoch"] == 4


def test_save_freq_plus_improvements(tmp_path):
    vae = vae_model()
    scores = [5.0, 4.0, 6.0, 7.0, 3.0, 8.0]
    fit(vae, 6, [InjectLogs(scores),
                 VAECheckpoint(tmp_path, monitor="score", save_freq=3,
                               keep_last=None)])
    # Improvements at 1, 2, 5; periodic at 3 and 6.
    assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [1, 2, 3, 5, 6]


def test_save_freq_none_saves_only_improvements(tmp_path):
    vae = vae_model()
    fit(vae, 3, [InjectLogs([2.0, 3.0, 1.0]),
                 VAECheckpoint(tmp_path, monitor="score", save_freq=None)])
    assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [1, 3]


def test_manifest_content(tmp_path):
    vae = vae_model()
    fit(vae, 1, [InjectLogs([0.5]), VAECheckpoint(tmp_path, monitor="score")])
    manifest = read_json(tmp_path / "ckpt-epoch0001.json")
    assert manifest["format"] == "keras_vae_layers.checkpoint/1"
    assert manifest["epoch"] == 1
    assert manifest["sequence"] == 1
    assert manifest["monitor"] == "score"
    assert manifest["mode"] == "min"
    assert manifest["monitor_value"] == 0.5
    assert manifest["files"] == {
        "model": "ckpt-epoch0001.weights.h5",
        "encoder": "ckpt-epoch0001.encoder.weights.h5",
        "decoder": "ckpt-epoch0001.decoder.weights.h5",
    }
    assert manifest["sub_models"] == {"encoder": "encoder",
                                      "decoder": "decoder"}
    assert manifest["keras_vae_layers_version"] == keras_vae_layers.__version__
    assert manifest["keras_version"] == keras.__version__
    assert manifest["model_class"] == "VAEModel"
    assert manifest["timestamp"].endswith("+00:00")
    logs = manifest["logs"]
    assert set(logs) >= {"loss", "total_loss", "reco_loss", "kl_loss",
                         "neg_elbo", "beta", "score"}
    assert all(isinstance(v, float) for v in logs.values())
    assert logs["beta"] == 1.0
    assert "note" not in manifest


def test_val_loss_is_the_default_monitor(tmp_path):
    vae = vae_model()
    vae.fit(X, epochs=2, batch_size=16, verbose=0,
            validation_data=(X[:8],), callbacks=[VAECheckpoint(tmp_path)])
    manifests = list_checkpoints(tmp_path)
    assert manifests[-1]["monitor"] == "val_loss"
    assert manifests[-1]["monitor_value"] == pytest.approx(
        manifests[-1]["logs"]["val_loss"]
    )


# ----------------------------------------------------------------------------
# Atomicity
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("failing_call", [4, 5, 6])
def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch,
                                                       failing_call):
    """Calls 1-3 write checkpoint 1; call 4/5/6 (model/encoder/decoder of
    checkpoint 2) writes half a file and dies."""
    original = keras.Model.save_weights
    calls = []

    def flaky_save_weights(self, filepath, *args, **kwargs):
        calls.append(os.fspath(filepath))
        original(self, filepath, *args, **kwargs)
        if len(calls) == failing_call:
            size = os.path.getsize(filepath)
            with open(filepath, "r+b") as f:
                f.truncate(size // 2)
            raise OSError("disk full (injected)")

    monkeypatch.setattr(keras.Model, "save_weights", flaky_save_weights)
    vae = vae_model()
    recorder = WeightsAtEpochEnd()
    with pytest.raises(OSError, match="disk full"):
        fit(vae, 3, [VAECheckpoint(tmp_path, monitor=None), recorder])
    monkeypatch.undo()

    # Writes went to temp files, never to the final names.
    assert all(os.path.basename(c).startswith(".") for c in calls)
    names = listing(tmp_path)
    assert not [n for n in names if n.startswith(".")]  # no temp files
    assert not [n for n in names if "epoch0002" in n]   # nothing of ckpt 2
    assert names == ckpt_files(1) | {"checkpoints.json"}
    fresh = vae_model()
    assert restore_latest(fresh, tmp_path) == 1
    assert_weights_equal(fresh.get_weights(), recorder.weights[1])


def test_failed_manifest_write_removes_weight_files(tmp_path, monkeypatch):
    original = _io.write_json_atomic
    calls = []

    def flaky_write(path, obj):
        calls.append(path)
        if os.path.basename(path) == "ckpt-epoch0002.json":
            raise OSError("no space (injected)")
        return original(path, obj)

    monkeypatch.setattr(_io, "write_json_atomic", flaky_write)
    vae = vae_model()
    with pytest.raises(OSError, match="no space"):
        fit(vae, 3, [VAECheckpoint(tmp_path, monitor=None)])
    assert listing(tmp_path) == ckpt_files(1) | {"checkpoints.json"}
    assert restore_latest(vae_model(), tmp_path) == 1


def test_incomplete_checkpoint_is_ignored_and_cleaned(tmp_path):
    vae = vae_model()
    fit(vae, 2, [VAECheckpoint(tmp_path, monitor=None)])
    # Simulate a hard crash after the weights but before the manifest.
    os.remove(tmp_path / "ckpt-epoch0002.json")
    # ...and a temp file of a killed writer; plus a file of the user's.
    temp = ".ckpt-epoch0003.weights.h5.x1y2.tmp.weights.h5"
    (tmp_path / temp).write_text("")
    (tmp_path / ".checkpoints.json.x1y2.tmp.json").write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    assert restore_latest(vae_model(), tmp_path) == 1
    fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor=None,
                                       keep_last=None)])
    # on_train_begin removed the leftovers; epoch 1 was re-saved.
    assert listing(tmp_path) == ckpt_files(1) | {"checkpoints.json",
                                                 "notes.txt"}
    assert [m["sequence"] for m in list_checkpoints(tmp_path)] == [2]


# ----------------------------------------------------------------------------
# Restore and resume
# ----------------------------------------------------------------------------


def test_interrupt_and_resume(tmp_path):
    vae = vae_model(run_eagerly=False)
    recorder = WeightsAtEpochEnd()
    fit(vae, 2, [VAECheckpoint(tmp_path, monitor="loss"), recorder])
    saved_optimizer = [np.array(v) for v in vae.optimizer.variables]

    fresh = vae_model(run_eagerly=False)
    assert restore_latest(fresh, tmp_path) == 2
    assert_weights_equal(fresh.get_weights(), recorder.weights[2])
    # Adam moments and the iteration counter came back too.
    assert_weights_equal([np.array(v) for v in fresh.optimizer.variables],
                         saved_optimizer)

    history = fit(fresh, 4, [VAECheckpoint(tmp_path, monitor="loss")],
                  initial_epoch=2)
    assert len(history.history["loss"]) == 2
    epochs = [m["epoch"] for m in list_checkpoints(tmp_path)]
    assert epochs[-2:] == [3, 4]
    assert [m["sequence"] for m in list_checkpoints(tmp_path)][-1] == 4
    assert restore_latest(vae_model(), tmp_path) == 4


def test_restore_with_nothing_to_restore(tmp_path):
    vae = vae_model()
    assert restore_latest(vae, tmp_path / "missing") == 0
    assert restore_best(vae, tmp_path) == 0
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        load_decoder_weights(vae.decoder, tmp_path)


def test_restore_best_without_monitor_values(tmp_path):
    fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor=None)])
    with pytest.raises(ValueError, match="no best checkpoint"):
        restore_best(vae_model(), tmp_path)


def test_restore_unbuilt_functional_model_fails_clearly(tmp_path):
    fit(functional_vae(), 1, [VAECheckpoint(tmp_path, monitor=None)])

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="is not built"):
        restore_latest(Sub(name="sub"), tmp_path)


def test_resave_of_existing_epoch_after_restoring_older(tmp_path):
    vae = vae_model()
    fit(vae, 3, [VAECheckpoint(tmp_path, monitor=None, keep_last=None)])
    fresh = vae_model()
    manifests = list_checkpoints(tmp_path)
    os.remove(tmp_path / manifests[-1]["manifest"])  # forget epoch 3...
    assert restore_latest(fresh, tmp_path) == 2
    fit(vae, 3, [VAECheckpoint(tmp_path, monitor=None, keep_last=None)])
    # ...epoch 1 and 2 are re-saved with newer sequence numbers.
    got = [(m["epoch"], m["sequence"]) for m in list_checkpoints(tmp_path)]
    assert got == [(1, 3), (2, 4), (3, 5)]


# ----------------------------------------------------------------------------
# Functional VAEs and sub-models
# ----------------------------------------------------------------------------


def test_functional_vae_saves_encoder_and_decoder(tmp_path):
    model = functional_vae(nested=True)
    fit(model, 2, [VAECheckpoint(tmp_path, monitor="loss")])
    assert ckpt_files(2) <= listing(tmp_path)
    manifest = read_json(tmp_path / "ckpt-epoch0002.json")
    assert manifest["sub_models"] == {"encoder": "encoder",
                                      "decoder": "decoder"}

    fresh = functional_vae(nested=True)
    assert restore_latest(fresh, tmp_path) == 2
    assert_weights_equal(fresh.get_weights(), model.get_weights())

    other = dense_vae(nested=True)
    decoder = other.get_layer("decoder")
    encoder = other.get_layer("encoder")
    assert load_decoder_weights(decoder, tmp_path, which="latest") == 2
    assert load_encoder_weights(encoder, tmp_path, which="best") in (1, 2)
    assert_weights_equal(decoder.get_weights(),
                         model.get_layer("decoder").get_weights())


def test_functional_vae_without_sub_models_saves_full_weights_only(tmp_path):
    model = functional_vae(nested=False)
    fit(model, 1, [VAECheckpoint(tmp_path, monitor="loss")])
    assert listing(tmp_path) == ckpt_files(1, parts=False) | {
        "checkpoints.json"
    }
    manifest = read_json(tmp_path / "ckpt-epoch0001.json")
    assert manifest["files"] == {"model": "ckpt-epoch0001.weights.h5"}
    assert "no encoder/decoder sub-model found" in manifest["note"]
    with pytest.raises(ValueError, match="no separate decoder weights"):
        load_decoder_weights(dense_vae(nested=True).get_layer("decoder"),
                             tmp_path)


def test_save_encoder_decoder_false(tmp_path):
    fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor=None,
                                       save_encoder_decoder=False)])
    manifest = read_json(tmp_path / "ckpt-epoch0001.json")
    assert list(manifest["files"]) == ["model"]
    assert "save_encoder_decoder=False" in manifest["note"]


def test_find_encoder_decoder():
    vae = vae_model()
    assert find_encoder_decoder(vae) == (vae.encoder, vae.decoder)
    nested = dense_vae(nested=True)
    enc, dec = find_encoder_decoder(nested)
    assert (enc.name, dec.name) == ("encoder", "decoder")
    assert find_encoder_decoder(dense_vae(nested=False)) == (None, None)

    # Identified by structure, whatever the names.
    x = keras.Input((16,))
    inner = dense_vae(nested=True)
    e = keras.Model(inner.get_layer("encoder").input,
                    inner.get_layer("encoder").output, name="part_a")
    z_in = keras.Input((2,))
    d = keras.Model(z_in, keras.layers.Dense(16)(z_in), name="part_b")
    model = keras.Model(x, d(e(x)[0]))
    enc, dec = find_encoder_decoder(model)
    assert (enc.name, dec.name) == ("part_a", "part_b")


# ----------------------------------------------------------------------------
# Errors and configuration
# ----------------------------------------------------------------------------


def test_directory_under_a_regular_file_fails_early(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="is not a directory"):
        VAECheckpoint(blocker / "ckpts")
    with pytest.raises(ValueError, match="is not a directory"):
        VAECheckpoint(blocker)


def test_directory_broken_after_construction_fails_before_training(tmp_path):
    target = tmp_path / "later"
    cb = VAECheckpoint(target / "ckpts", monitor=None)
    target.write_text("now a file")
    epochs_run = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_run.append(epoch)

    with pytest.raises(ValueError, match="cannot use `directory`"):
        fit(vae_model(), 1, [cb, Spy()])
    assert epochs_run == []


def test_unknown_monitor_lists_available_keys(tmp_path):
    with pytest.raises(ValueError,
                       match=r"'val_los' is not in the epoch logs.*'loss'"):
        fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor="val_los")])
    # Without validation data the default monitor is missing as well.
    with pytest.raises(ValueError, match="'val_loss' is not in the epoch"):
        fit(vae_model(), 1, [VAECheckpoint(tmp_path)])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"save_freq": 0},
         "VAECheckpoint: `save_freq` must be an integer >= 1"),
        ({"save_freq": "epoch"}, "`save_freq` must be an integer"),
        ({"keep_last": 0}, "`keep_last` must be an integer >= 1"),
        ({"mode": "minimum"}, "unknown `mode` 'minimum'"),
        ({"monitor": ""}, "`monitor` must be a log key"),
        ({"monitor": None, "save_best_only": True}, "needs a `monitor`"),
        ({"monitor": None, "save_freq": None}, "nothing would ever be saved"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAECheckpoint(tmp_path, **kwargs)


def test_invalid_directory_argument():
    with pytest.raises(ValueError, match="`directory` must be a non-empty"):
        VAECheckpoint("")
    with pytest.raises(ValueError, match="`directory` must be a non-empty"):
        VAECheckpoint(None)


def test_auto_mode():
    assert VAECheckpoint("unused", monitor="val_accuracy").resolved_mode == (
        "max"
    )
    assert VAECheckpoint("unused", monitor="auc").resolved_mode == "max"
    assert VAECheckpoint("unused", monitor="val_neg_elbo").resolved_mode == (
        "min"
    )
    assert not os.path.exists("unused")  # the constructor creates nothing


def test_config_round_trip(tmp_path):
    cb = VAECheckpoint(tmp_path, monitor="val_neg_elbo", mode="min",
                       save_freq=2, keep_last=5, verbose=1)
    config = cb.get_config()
    assert config == {
        "directory": os.fspath(tmp_path),
        "monitor": "val_neg_elbo",
        "mode": "min",
        "save_freq": 2,
        "save_best_only": False,
        "keep_last": 5,
        "save_encoder_decoder": True,
        "verbose": 1,
    }
    assert VAECheckpoint.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(cb)
    )
    assert isinstance(restored, VAECheckpoint)
    assert restored.get_config() == config


def test_deepcopy_before_and_after_training(tmp_path):
    cb = VAECheckpoint(tmp_path, monitor=None, keep_last=2)
    before = copy.deepcopy(cb)
    vae = vae_model()
    fit(vae, 2, [cb])
    assert cb.model is vae
    after = copy.deepcopy(cb)
    assert after._model is None and after._state is None
    assert after.get_config() == cb.get_config()
    # Each copy works on its own model and continues the directory.
    fit(vae_model(), 3, [before], initial_epoch=2)
    fit(vae_model(), 4, [after], initial_epoch=3)
    assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [3, 4]
