"""VAECheckpoint: files, rotation, manifests, atomicity, resume, restore."""

import copy
import json
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import keras_vae_layers
from keras_vae_layers import io as _io
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
from helpers import saved_weights

X = binary_data(32)


# Checkpointing does not interact with tracing, and eager fits of these
# tiny models cost a third of a traced one; the resume and Functional tests
# run traced.


def vae_model(run_eagerly=True):
    base = dense_vae(nested=True, kl_layer=False)
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


_RUN_AND_SEQUENCE = re.compile(r"-run[0-9a-f]{8}-\d{4,}")


def listing(directory):
    """File names with the run id and sequence cut out of the stems (so they
    compare with `ckpt_files`); at most one checkpoint per epoch allowed."""
    names = os.listdir(directory)
    short = {_RUN_AND_SEQUENCE.sub("", name) for name in names}
    assert len(short) == len(names), sorted(names)
    return short


def manifest_path(directory, epoch):
    """The manifest file of the only complete checkpoint of `epoch`."""
    [manifest] = [m for m in list_checkpoints(directory)
                  if m["epoch"] == epoch]
    return os.path.join(directory, manifest["manifest"])


def runs(directory):
    """{run id: [epochs, in saving order]} of the complete checkpoints."""
    out = {}
    for manifest in list_checkpoints(directory):
        out.setdefault(manifest["run"], []).append(manifest["epoch"])
    return out


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
    ckpt = VAECheckpoint(tmp_path, monitor="score")
    fit(vae, 1, [InjectLogs([0.5]), ckpt])
    stem = f"ckpt-epoch0001-run{ckpt.run_id}-0001"
    manifest = read_json(tmp_path / f"{stem}.json")
    assert manifest["format"] == "keras_vae_layers.checkpoint/2"
    assert manifest["epoch"] == 1
    assert re.fullmatch(r"[0-9a-f]{8}", manifest["run"])
    assert manifest["run"] == ckpt.run_id
    assert manifest["sequence"] == 1
    assert manifest["monitor"] == "score"
    assert manifest["mode"] == "min"
    assert manifest["monitor_value"] == 0.5
    assert manifest["files"] == {
        "model": f"{stem}.weights.h5",
        "encoder": f"{stem}.encoder.weights.h5",
        "decoder": f"{stem}.decoder.weights.h5",
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
        if os.path.basename(path).startswith("ckpt-epoch0002-"):
            raise OSError("no space (injected)")
        return original(path, obj)

    monkeypatch.setattr(_io, "write_json_atomic", flaky_write)
    vae = vae_model()
    with pytest.raises(OSError, match="no space"):
        fit(vae, 3, [VAECheckpoint(tmp_path, monitor=None)])
    assert listing(tmp_path) == ckpt_files(1) | {"checkpoints.json"}
    assert restore_latest(vae_model(), tmp_path) == 1


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_incomplete_checkpoint_is_ignored_and_cleaned(tmp_path):
    vae = vae_model()
    fit(vae, 2, [VAECheckpoint(tmp_path, monitor=None)])
    # Simulate a hard crash after the weights but before the manifest.
    os.remove(manifest_path(tmp_path, 2))
    # ...temp files of a killed writer and of a live one; a user's file.
    host = _io._HOST_TAG
    stale = [
        f".ckpt-epoch0003-run0badc0de-0003.weights.h5.{dead_pid()}.{host}"
        ".0000abcd.tmp.weights.h5",
        f".checkpoints.json.{dead_pid()}.{host}.0000abcd.tmp.json",
    ]
    live = f".checkpoints.json.{os.getpid()}.{host}.0000abcd.tmp.json"
    for name in stale + [live]:
        (tmp_path / name).write_text("")
    (tmp_path / "notes.txt").write_text("mine")
    resumed = vae_model()
    assert restore_latest(resumed, tmp_path) == 1
    fit(resumed, 1, [VAECheckpoint(tmp_path, monitor=None, keep_last=None)])
    # on_train_begin of the continued run removed its leftovers and the
    # dead writers' temporaries; epoch 1 was re-saved.
    assert listing(tmp_path) == ckpt_files(1) | {"checkpoints.json",
                                                 "notes.txt", live}
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
    fit(fresh, 3, [VAECheckpoint(tmp_path, monitor=None, keep_last=None)])
    # ...epoch 1 and 2 are re-saved with newer sequence numbers (the old
    # ones removed once their replacement was complete).
    got = [(m["epoch"], m["sequence"]) for m in list_checkpoints(tmp_path)]
    assert got == [(1, 3), (2, 4), (3, 5)]


# ----------------------------------------------------------------------------
# Functional VAEs and sub-models
# ----------------------------------------------------------------------------


def test_functional_vae_saves_encoder_and_decoder(tmp_path):
    model = functional_vae(nested=True)
    fit(model, 2, [VAECheckpoint(tmp_path, monitor="loss")])
    assert ckpt_files(2) <= listing(tmp_path)
    manifest = read_json(manifest_path(tmp_path, 2))
    assert manifest["sub_models"] == {"encoder": "encoder",
                                      "decoder": "decoder"}

    fresh = functional_vae(nested=True)
    assert restore_latest(fresh, tmp_path) == 2
    assert_weights_equal(saved_weights(fresh), saved_weights(model))

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
    manifest = read_json(manifest_path(tmp_path, 1))
    assert list(manifest["files"]) == ["model"]
    assert "no encoder/decoder sub-model found" in manifest["note"]
    with pytest.raises(ValueError, match="no separate decoder weights"):
        load_decoder_weights(dense_vae(nested=True).get_layer("decoder"),
                             tmp_path)


def test_save_encoder_decoder_false(tmp_path):
    fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor=None,
                                       save_encoder_decoder=False)])
    manifest = read_json(manifest_path(tmp_path, 1))
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


def test_unknown_monitor_warns_once_listing_available_keys(tmp_path):
    with pytest.warns(UserWarning,
                      match=r"'val_los' is not in the epoch logs.*'loss'"):
        fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor="val_los")])


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
    # Each copy is a run of its own on its own model; the original run's
    # checkpoints stay.
    fit(vae_model(), 3, [before], initial_epoch=2)
    fit(vae_model(), 4, [after], initial_epoch=3)
    assert before.run_id != after.run_id != cb.run_id != before.run_id
    assert runs(tmp_path) == {cb.run_id: [1, 2], before.run_id: [3],
                              after.run_id: [4]}


# ----------------------------------------------------------------------------
# Helpers for hand-made and damaged checkpoints
# ----------------------------------------------------------------------------


def write_v1_checkpoint(directory, model, epoch, sequence, logs=None,
                        monitor=None, value=None):
    """A checkpoint as versions before run ids wrote it (format 1)."""
    stem = f"ckpt-epoch{epoch:04d}"
    model.save_weights(os.path.join(directory, f"{stem}.weights.h5"))
    manifest = {
        "format": "keras_vae_layers.checkpoint/1", "epoch": epoch,
        "sequence": sequence, "monitor": monitor, "mode": "min",
        "monitor_value": value, "logs": logs or {"loss": 1.0},
        "files": {"model": f"{stem}.weights.h5"},
        "sub_models": {"encoder": None, "decoder": None},
        "timestamp": "2024-01-01T00:00:00+00:00",
    }
    with open(os.path.join(directory, f"{stem}.json"), "w") as f:
        json.dump(manifest, f)
    return manifest


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def messages(caught):
    return "\n".join(str(w.message) for w in caught)


class SetAtEpochEnd(keras.callbacks.Callback):
    """At the end of epoch index `epoch`: overrides `logs` entries and/or
    fills the first weight with NaN (placed before the checkpoint)."""

    def __init__(self, epoch, logs=None, nan_weights=False):
        super().__init__()
        self.epoch = epoch
        self.logs = logs or {}
        self.nan_weights = nan_weights

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            logs.update(self.logs)
            if self.nan_weights:
                weight = self.model.weights[0]
                weight.assign(np.full(weight.shape, np.nan, "float32"))


# ----------------------------------------------------------------------------
# Tampered and malformed manifests (a checkpoint folder is a trust boundary)
# ----------------------------------------------------------------------------


def test_manifests_naming_files_outside_the_directory_are_ignored(tmp_path):
    directory = tmp_path / "ckpts"
    victim = tmp_path / "victim.csv"
    victim.write_text("precious")
    vae = vae_model()
    recorder = WeightsAtEpochEnd()
    cb = VAECheckpoint(directory, monitor=None, keep_last=1)
    fit(vae, 1, [cb, recorder])
    # Loadable weights outside the folder, reached through a symlink.
    outside = tmp_path / "outside.weights.h5"
    other = vae_model()
    fit(other, 1, [])
    other.save_weights(outside)
    outside_bytes = outside.read_bytes()
    os.symlink(outside, directory / "ckpt-epoch0009.weights.h5")

    run = list_checkpoints(directory)[0].get("run")
    base = write_v1_checkpoint(directory, vae, 5, 40)
    os.remove(directory / "ckpt-epoch0005.weights.h5")
    os.remove(directory / "ckpt-epoch0005.json")
    tampered = {
        "ckpt-epoch0007.json": {"model": "../victim.csv"},
        "ckpt-epoch0008.json": {"model": str(victim)},
        "ckpt-epoch0009.json": {"model": "ckpt-epoch0009.weights.h5"},
        f"ckpt-epoch0006-run{run}-0049.json": {"model": "../victim.csv"},
    }
    for sequence, (name, files) in enumerate(tampered.items(), start=50):
        manifest = {**base, "epoch": int(name[10:14]), "sequence": sequence,
                    "files": files}
        if "-run" in name:
            manifest.update(format="keras_vae_layers.checkpoint/2", run=run,
                            sequence=49)
        (directory / name).write_text(json.dumps(manifest))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [m["epoch"] for m in list_checkpoints(directory)] == [1]
    for name in tampered:
        assert f"ignoring checkpoint manifest '{directory / name}'" in (
            messages(caught))
    assert "resolves outside the checkpoint directory" in messages(caught)

    resumed = vae_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert restore_latest(resumed, directory) == 1
        assert_weights_equal(resumed.get_weights(), recorder.weights[1])
        # Continue the run: rotation and leftover cleanup run twice.
        fit(resumed, 3, [VAECheckpoint(directory, monitor=None, keep_last=1)],
            initial_epoch=1)
        assert load_decoder_weights(resumed.decoder, directory,
                                    which="latest") == 3
        assert runs(directory) == {run: [3]}
    assert victim.read_text() == "precious"
    assert outside.read_bytes() == outside_bytes


MALFORMED = {
    "files_model_int": lambda m: m["files"].update(model=5),
    "files_none": lambda m: m.update(files=None),
    "files_entry_none": lambda m: m["files"].update(encoder=None),
    "files_list": lambda m: m.update(files=["ckpt-epoch0007.weights.h5"]),
    "epoch_none": lambda m: m.update(epoch=None),
    "epoch_float": lambda m: m.update(epoch=7.0),
    "sequence_string": lambda m: m.update(sequence="99"),
    "sequence_none": lambda m: m.update(sequence=None),
    "monitor_value_string": lambda m: m.update(monitor="loss",
                                               monitor_value="0.1"),
    "monitor_value_huge_int": lambda m: m.update(monitor="loss",
                                                 monitor_value=10 ** 400),
    "monitor_int": lambda m: m.update(monitor=3),
    "sub_models_list": lambda m: m.update(sub_models=["encoder"]),
    "mode_unknown": lambda m: m.update(mode="sideways"),
    "logs_list": lambda m: m.update(logs=[1.0]),
    "logs_value_string": lambda m: m.update(logs={"loss": "low"}),
    "timestamp_int": lambda m: m.update(timestamp=5),
    "json_list": "[1, 2]",
    "json_null": "null",
    "json_string": '"ckpt"',
    "not_json": '{"files": ',
}


@pytest.mark.parametrize("damage", list(MALFORMED.values()),
                         ids=list(MALFORMED))
def test_malformed_manifest_is_skipped_with_a_warning(tmp_path, damage):
    vae = vae_model()
    fit(vae, 1, [VAECheckpoint(tmp_path, monitor=None)])
    manifest = write_v1_checkpoint(tmp_path, vae, epoch=7, sequence=99)
    if callable(damage):
        damage(manifest)
        damage = json.dumps(manifest)
    (tmp_path / "ckpt-epoch0007.json").write_text(damage)
    pattern = re.escape(f"manifest '{tmp_path / 'ckpt-epoch0007.json'}'")
    with pytest.warns(UserWarning, match=pattern):
        assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [1]
    with pytest.warns(UserWarning, match=pattern):
        assert restore_latest(vae_model(), tmp_path) == 1


# ----------------------------------------------------------------------------
# Corrupt weights files
# ----------------------------------------------------------------------------


def test_corrupt_weights_fall_back_to_the_next_checkpoint(tmp_path):
    vae = vae_model()
    recorder = WeightsAtEpochEnd()
    fit(vae, 3, [InjectLogs([3.0, 1.0, 2.0]),
                 VAECheckpoint(tmp_path, monitor="score", keep_last=None),
                 recorder])
    files = {m["epoch"]: m["files"] for m in list_checkpoints(tmp_path)}
    truncate(tmp_path / files[3]["model"])
    fresh = vae_model()
    with pytest.warns(UserWarning, match=re.escape(files[3]["model"])):
        assert restore_latest(fresh, tmp_path) == 2
    assert_weights_equal(fresh.get_weights(), recorder.weights[2])

    # Best is epoch 2, then 3 (both broken now), then 1.
    truncate(tmp_path / files[2]["model"])
    fresh = vae_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert restore_best(fresh, tmp_path) == 1
    assert files[2]["model"] in messages(caught)
    assert files[3]["model"] in messages(caught)
    assert_weights_equal(fresh.get_weights(), recorder.weights[1])

    truncate(tmp_path / files[2]["decoder"])
    decoder = vae_model().decoder
    with pytest.warns(UserWarning, match=re.escape(files[2]["decoder"])):
        assert load_decoder_weights(decoder, tmp_path) == 3


def test_no_loadable_checkpoint_is_an_error_naming_the_file(tmp_path):
    fit(vae_model(), 1, [VAECheckpoint(tmp_path, monitor=None)])
    [manifest] = list_checkpoints(tmp_path)
    truncate(tmp_path / manifest["files"]["model"])
    fresh = vae_model()
    fresh(X[:2])
    before = fresh.get_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=(
            r"restore_latest: none of the 1 checkpoint\(s\).*"
            + re.escape(manifest["files"]["model"])
        )):
            restore_latest(fresh, tmp_path)
    assert_weights_equal(fresh.get_weights(), before)


def test_failed_load_leaves_no_half_loaded_model(tmp_path):
    fit(functional_vae(), 1, [VAECheckpoint(tmp_path, monitor=None)])
    # Same layers, wider input: Keras assigns the layers that fit, then
    # fails on the first Dense kernel.
    wider = dense_vae(input_dim=17, nested=True)
    wider.compile(optimizer="adam", loss="binary_crossentropy")
    before = [np.array(v) for v in wider.variables]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="could not be loaded"):
            restore_latest(wider, tmp_path)
    assert_weights_equal([np.array(v) for v in wider.variables], before)


# ----------------------------------------------------------------------------
# Runs sharing a directory
# ----------------------------------------------------------------------------


def test_a_second_run_from_epoch_zero_keeps_the_first_runs_best(tmp_path):
    first, second = vae_model(), vae_model()
    rec1, rec2 = WeightsAtEpochEnd(), WeightsAtEpochEnd()
    cb1 = VAECheckpoint(tmp_path, monitor="score", keep_last=1)
    cb2 = VAECheckpoint(tmp_path, monitor="score", keep_last=1)
    fit(first, 3, [InjectLogs([1.0, 2.0, 3.0]), cb1, rec1])
    fit(second, 3, [InjectLogs([5.0, 6.0, 7.0]), cb2, rec2])
    assert any(not np.array_equal(a, b)
               for a, b in zip(rec1.weights[1], rec2.weights[1]))
    fresh = vae_model()
    assert restore_best(fresh, tmp_path) == 1
    assert_weights_equal(fresh.get_weights(), rec1.weights[1])
    assert restore_latest(fresh, tmp_path) == 3
    assert_weights_equal(fresh.get_weights(), rec2.weights[3])
    assert runs(tmp_path) == {cb1.run_id: [1, 3], cb2.run_id: [1, 3]}
    index = read_json(tmp_path / "checkpoints.json")
    assert index["format"] == "keras_vae_layers.checkpoint/2"
    assert (index["best"]["run"], index["best"]["epoch"]) == (cb1.run_id, 1)
    assert (index["latest"]["run"], index["latest"]["epoch"]) == (
        cb2.run_id, 3)
    assert len(index["checkpoints"]) == 4


def test_two_checkpoint_callbacks_on_one_directory_in_one_fit(tmp_path):
    vae = vae_model()
    recorder = WeightsAtEpochEnd()
    a = VAECheckpoint(tmp_path, monitor="score", keep_last=1)
    b = VAECheckpoint(tmp_path, monitor=None, keep_last=1)
    fit(vae, 3, [InjectLogs([1.0, 3.0, 2.0]), a, b, recorder])
    fresh = vae_model()
    assert restore_best(fresh, tmp_path) == 1
    assert_weights_equal(fresh.get_weights(), recorder.weights[1])
    assert a.run_id != b.run_id
    assert runs(tmp_path) == {a.run_id: [1, 3], b.run_id: [3]}


def test_one_callback_in_a_keras_tuner_search_keeps_every_trial(tmp_path):
    import keras_tuner as kt

    from keras_vae_layers.datasets import load_shapes
    from keras_vae_layers.tuning import VAEHyperModel

    images, _ = load_shapes(48, size=16, seed=3, dtype="float32")
    hypermodel = VAEHyperModel(
        (16, 16, 1), z_dim=2, intermediate_dim=None, beta=(0.5, 2.0),
        encoder_filters=(4,), encoder_kernel_sizes=3, encoder_strides=2,
    )
    tuner = kt.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=2, seed=1,
        directory=str(tmp_path / "kt"), project_name="p", overwrite=True,
    )
    ckpt_dir = tmp_path / "ckpts"
    tuner.search(images[:32], epochs=2, batch_size=32, verbose=0,
                 validation_data=(images[32:],),
                 callbacks=[VAECheckpoint(ckpt_dir, monitor="val_neg_elbo",
                                          keep_last=1)])
    trials = list(tuner.oracle.trials.values())
    assert [t.status for t in trials] == ["COMPLETED", "COMPLETED"]
    # Each trial's last epoch is there (not one overwriting the other).
    assert [m["epoch"] for m in list_checkpoints(ckpt_dir)].count(2) == 2
    by_run = runs(ckpt_dir)
    assert len(by_run) == 2
    for epochs in by_run.values():
        assert epochs[-1] == 2 and set(epochs) <= {1, 2}


def test_resume_continues_the_run_and_its_rotation(tmp_path):
    cb = VAECheckpoint(tmp_path, monitor=None, keep_last=2)
    fit(vae_model(), 3, [cb])
    resumed = vae_model()
    assert restore_latest(resumed, tmp_path) == 3
    again = VAECheckpoint(tmp_path, monitor=None, keep_last=2)
    fit(resumed, 5, [again], initial_epoch=3)
    assert again.run_id == cb.run_id
    assert runs(tmp_path) == {cb.run_id: [4, 5]}
    # The same callback, the same model, another fit: still that run.
    fit(resumed, 6, [again], initial_epoch=5)
    assert runs(tmp_path) == {cb.run_id: [5, 6]}

    # After a restore, only one callback continues the run; a second one
    # on the directory in the same fit starts its own.
    other = vae_model()
    assert restore_latest(other, tmp_path) == 6
    c, d = (VAECheckpoint(tmp_path, monitor=None, keep_last=1)
            for _ in range(2))
    fit(other, 7, [c, d], initial_epoch=6)
    assert c.run_id == cb.run_id and d.run_id != cb.run_id
    assert runs(tmp_path) == {cb.run_id: [7], d.run_id: [7]}
    # A fresh model is a new run: nothing of the old one is deleted.
    e = VAECheckpoint(tmp_path, monitor=None, keep_last=1)
    fit(vae_model(), 1, [e])
    assert runs(tmp_path) == {cb.run_id: [7], d.run_id: [7], e.run_id: [1]}


def test_format_1_checkpoints_are_restorable_and_never_deleted(tmp_path):
    old = vae_model()
    fit(old, 1, [])
    write_v1_checkpoint(tmp_path, old, 1, 1, {"loss": 2.0, "score": 0.9},
                        monitor="score", value=0.9)
    write_v1_checkpoint(tmp_path, old, 2, 2, {"loss": 1.0, "score": 0.5},
                        monitor="score", value=0.5)
    v1_files = listing(tmp_path)
    assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [1, 2]
    fresh = vae_model()
    assert restore_latest(fresh, tmp_path) == 2
    assert_weights_equal(fresh.get_weights(), old.get_weights())
    cb = VAECheckpoint(tmp_path, monitor="score", keep_last=1)
    fit(fresh, 5, [InjectLogs([9.0, 9.0, 3.0, 2.0, 4.0]), cb],
        initial_epoch=2)
    assert v1_files <= listing(tmp_path)
    assert restore_best(vae_model(), tmp_path) == 2  # score 0.5
    assert runs(tmp_path) == {None: [1, 2], cb.run_id: [4, 5]}
    assert restore_latest(vae_model(), tmp_path) == 5


# ----------------------------------------------------------------------------
# Missing monitor and non-finite epochs
# ----------------------------------------------------------------------------


def test_default_monitor_without_validation_data_saves_and_warns_once(
        tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(vae_model(), 3, [VAECheckpoint(tmp_path, keep_last=None)])
    ours = [str(w.message) for w in caught
            if str(w.message).startswith("VAECheckpoint")]
    assert len(ours) == 1
    assert "'val_loss' is not in the epoch logs" in ours[0]
    assert "'loss'" in ours[0] and "still saved every 1 epoch" in ours[0]
    manifests = list_checkpoints(tmp_path)
    assert [m["epoch"] for m in manifests] == [1, 2, 3]
    assert {m["monitor_value"] for m in manifests} == {None}


def test_save_best_only_with_missing_monitor_saves_nothing_warns_once(
        tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(vae_model(), 3, [VAECheckpoint(tmp_path, save_best_only=True)])
    ours = [str(w.message) for w in caught
            if str(w.message).startswith("VAECheckpoint")]
    assert len(ours) == 1 and "nothing is saved" in ours[0]
    assert list_checkpoints(tmp_path) == []


def test_non_finite_epochs_are_not_saved(tmp_path):
    vae = vae_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(vae, 3, [SetAtEpochEnd(1, logs={"loss": float("nan")}),
                     SetAtEpochEnd(2, nan_weights=True),
                     VAECheckpoint(tmp_path, monitor="loss")])
    text = messages(caught)
    assert "epoch 2 not saved" in text and "`loss` is nan" in text
    assert "epoch 3 not saved" in text and "NaN or inf" in text
    assert [m["epoch"] for m in list_checkpoints(tmp_path)] == [1]
    assert restore_latest(vae_model(), tmp_path) == 1


def test_restore_skips_checkpoints_recorded_or_loaded_as_non_finite(
        tmp_path):
    good = vae_model()
    fit(good, 1, [])
    write_v1_checkpoint(tmp_path, good, 1, 1, {"loss": 1.0})
    poisoned = vae_model()
    fit(poisoned, 1, [SetAtEpochEnd(0, nan_weights=True)])
    write_v1_checkpoint(tmp_path, poisoned, 2, 2, {"loss": 0.5})  # finite log
    write_v1_checkpoint(tmp_path, good, 3, 3, {"loss": None})  # was NaN
    fresh = vae_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert restore_latest(fresh, tmp_path) == 1
    assert "'ckpt-epoch0003.json'" in messages(caught)
    assert "non-finite" in messages(caught)
    assert "ckpt-epoch0002.weights.h5" in messages(caught)
    assert_weights_equal(fresh.get_weights(), good.get_weights())
