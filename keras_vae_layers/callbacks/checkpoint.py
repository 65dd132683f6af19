"""`VAECheckpoint`: atomic, rotating full-model, encoder and decoder weights.

The directory format, the manifest checks and the restore functions live in
`checkpoint_store.py` and are re-exported here.
"""

import datetime
import os
import secrets
import tempfile
import warnings

import keras

from keras_vae_layers import _keras_compat
from keras_vae_layers import io as _io
# Shared with `diagnostics.find_encoder` / `find_decoder`; re-exported here.
from keras_vae_layers.diagnostics.discovery import find_encoder_decoder
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._version import __version__
from keras_vae_layers.distribute import is_chief
from keras_vae_layers.distribute import is_multi_worker
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.callbacks._callback_base import logs_to_floats
from keras_vae_layers.callbacks._callback_base import to_float
from keras_vae_layers.callbacks.checkpoint_store import best_criterion
from keras_vae_layers.callbacks.checkpoint_store import best_of
from keras_vae_layers.callbacks.checkpoint_store import checkpoint_stem
from keras_vae_layers.callbacks.checkpoint_store import INDEX_NAME
from keras_vae_layers.callbacks.checkpoint_store import list_checkpoints
from keras_vae_layers.callbacks.checkpoint_store import load_decoder_weights
from keras_vae_layers.callbacks.checkpoint_store import load_encoder_weights
from keras_vae_layers.callbacks.checkpoint_store import MANIFEST_FORMAT
from keras_vae_layers.callbacks.checkpoint_store import MODES
from keras_vae_layers.callbacks.checkpoint_store import non_finite_weights
from keras_vae_layers.callbacks.checkpoint_store import ORIGIN_ATTR
from keras_vae_layers.callbacks.checkpoint_store import PART_SUFFIXES
from keras_vae_layers.callbacks.checkpoint_store import recorded_finite
from keras_vae_layers.callbacks.checkpoint_store import remove_quietly
from keras_vae_layers.callbacks.checkpoint_store import resolve_mode
from keras_vae_layers.callbacks.checkpoint_store import restore_best
from keras_vae_layers.callbacks.checkpoint_store import restore_latest
from keras_vae_layers.callbacks.checkpoint_store import RUN_FILE_RE
from keras_vae_layers.callbacks.checkpoint_store import scan

__all__ = [
    "VAECheckpoint",
    "find_encoder_decoder",
    "list_checkpoints",
    "load_decoder_weights",
    "load_encoder_weights",
    "restore_best",
    "restore_latest",
]

_OWNER = "VAECheckpoint"

# ----------------------------------------------------------------------------
# Directory checks
# ----------------------------------------------------------------------------


def _check_directory_path(directory):
    """Side-effect-free check: the nearest existing ancestor is a directory."""
    path = os.path.abspath(directory)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent
    if not os.path.isdir(path):
        raise ValueError(
            f"{_OWNER}: cannot use `directory` {directory!r}: '{path}' "
            "exists and is not a directory. Expected a directory path "
            "that can be created and written to."
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(
            f"{_OWNER}: cannot use `directory` {directory!r}: '{path}' is "
            "not writable. Expected a writable directory."
        )


def _prepare_directory(directory):
    """Creates `directory` and proves it writable by creating a file."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise ValueError(
            f"{_OWNER}: cannot use `directory` {directory!r}: "
            f"{error.strerror or error}. Expected a directory that can be "
            "created and written to."
        ) from error


# ----------------------------------------------------------------------------
# The callback
# ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class VAECheckpoint(CopySafeCallback):
    """Saves full-model, encoder and decoder weights atomically, with rotation.

    At the end of every `save_freq`-th epoch, and whenever `monitor`
    improves, the callback writes a checkpoint to `directory`, all files
    sharing the stem `ckpt-epochNNNN-runRRRRRRRR-SSSS` (NNNN: completed
    epochs, RRRRRRRR: the run id, SSSS: the save sequence):

    * `<stem>.weights.h5`: the full model (optimizer state included);
    * `<stem>.encoder.weights.h5` and `<stem>.decoder.weights.h5`: the
      encoder and decoder alone (see `find_encoder_decoder`;
      `VAEModel.encoder`/`.decoder`, or the sub-models of a Functional VAE).
      If they cannot be identified only the full model is saved and the
      manifest says so in `note`;
    * `<stem>.json`: the manifest (epoch, `run`, save `sequence`, monitor
      name/mode/value, all epoch logs as floats, file names, sub-model
      names, `keras_vae_layers` and Keras versions, UTC timestamp);
    * `checkpoints.json`: an index of the complete checkpoints of all runs
      with the latest and the best one.

    **Runs.** Each `on_train_begin` of a fresh callback (also each deep copy,
    e.g. each keras-tuner trial) starts a new run with a random id. When the
    model was restored from `directory` by `restore_latest`/`restore_best`,
    the callback continues that checkpoint's run instead, and a callback
    reused for another `fit` of the same model continues its own run.
    Rotation keeps the `keep_last` most recent checkpoints of its run plus
    the run's best one, whatever its age, and never deletes files of another
    run or checkpoints of format 1 (written by older versions), so runs
    sharing a directory (two callbacks, tuner trials, a new run from epoch 0)
    cannot destroy each other's checkpoints. The save `sequence` grows
    across runs, so `restore_latest` picks the newest checkpoint and
    `restore_best` the best one over all runs. Re-saving an epoch of the
    run (after resuming from an older checkpoint) writes a new checkpoint
    and only then deletes the old one of that epoch (unless it is the
    run's best).

    **Atomic.** Every file is written to a temporary file in `directory` and
    renamed into place; the manifest is written last and deleted first. A
    crash while saving therefore never leaves a truncated file under a
    final name and never touches the previous checkpoints; a checkpoint
    without a manifest is ignored by `restore_latest`/`restore_best`.
    `on_train_begin` removes temporary files of killed processes and the
    incomplete checkpoints of the run it continues; those of other runs are
    left alone (another process may be writing them).

    **Multi-worker training.** Under a multi-worker `tf.distribute`
    strategy only the chief writes (see `keras_vae_layers.distribute.
    is_chief`); the other workers write nothing. To resume, every worker
    calls `restore_latest` on the chief's directory, so it must be on
    storage all of them can read.

    **Skipped epochs.** An epoch whose `loss` or monitored value is NaN or
    infinite, or whose model weights are not finite, is not saved (with a
    warning), so a diverged epoch never becomes the "latest" checkpoint.
    A `monitor` missing from the logs (e.g. `"val_loss"` in a `fit` without
    `validation_data`) gives one warning listing the available keys;
    periodic saves go on (as with `keras.callbacks.ModelCheckpoint`), while
    improvement-only saving (`save_best_only=True` or `save_freq=None`)
    saves nothing until the key appears.

    Args:
        directory: Folder for the checkpoints; created if missing. An error
            is raised before training if it cannot be created or written.
        monitor: Log key deciding the "best" checkpoint (e.g. `"val_loss"`,
            `"loss"`, `"val_neg_elbo"`), or `None` for periodic saves only.
        mode: `"min"`, `"max"` or `"auto"` (max for names containing
            `"acc"` or `"auc"`, else min).
        save_freq: Save every `save_freq` epochs (int >= 1), or `None` to
            save only when `monitor` improves.
        save_best_only: Save only when `monitor` improves (no periodic
            saves).
        keep_last: Number of most recent checkpoints of the run to keep
            (int >= 1), or `None` to keep all. The run's best checkpoint is
            always kept too.
        save_encoder_decoder: Also write separate encoder/decoder files.
        verbose: `1` prints a line per save and deletion.

    Example:

    ```python
    ckpt = VAECheckpoint("ckpts", monitor="val_loss", keep_last=3)
    vae.fit(x, epochs=20, validation_data=(x_val,), callbacks=[ckpt])
    # later, or after a crash (continues the same run):
    initial_epoch = restore_latest(vae, "ckpts")
    vae.fit(x, epochs=20, initial_epoch=initial_epoch,
            validation_data=(x_val,), callbacks=[ckpt])
    ```
    """

    _TRANSIENT = ("_state",)

    def __init__(self, directory, monitor="val_loss", mode="auto",
                 save_freq=1, save_best_only=False, keep_last=3,
                 save_encoder_decoder=True, verbose=0):
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)) or not os.fspath(
            directory
        ):
            raise ValueError(
                f"{_OWNER}: `directory` must be a non-empty path (str or "
                f"os.PathLike), received {directory!r}."
            )
        directory = os.fspath(directory)
        if monitor is not None and (
            not isinstance(monitor, str) or not monitor
        ):
            raise ValueError(
                f"{_OWNER}: `monitor` must be a log key such as 'val_loss' "
                f"or None, received {monitor!r}."
            )
        check_choice(mode, "mode", MODES, _OWNER)
        if save_freq is not None:
            save_freq = check_positive_int(save_freq, "save_freq", _OWNER)
        if keep_last is not None:
            keep_last = check_positive_int(keep_last, "keep_last", _OWNER)
        if save_best_only and monitor is None:
            raise ValueError(
                f"{_OWNER}: `save_best_only=True` needs a `monitor`, "
                "received monitor=None."
            )
        if monitor is None and save_freq is None:
            raise ValueError(
                f"{_OWNER}: with monitor=None and save_freq=None nothing "
                "would ever be saved; set `save_freq` to an int >= 1 or "
                "give a `monitor`."
            )
        _check_directory_path(directory)
        self.directory = directory
        self.monitor = monitor
        self.mode = mode
        self.save_freq = save_freq
        self.save_best_only = bool(save_best_only)
        self.keep_last = keep_last
        self.save_encoder_decoder = bool(save_encoder_decoder)
        self.verbose = int(verbose)
        # Run state, created in on_train_begin (dropped by deepcopy).
        self._state = None

    @property
    def resolved_mode(self):
        """`"min"` or `"max"` (`"auto"` resolved from the monitor name)."""
        return resolve_mode(self.mode, self.monitor)

    @property
    def run_id(self):
        """Id of the current (or last) run, `None` before training."""
        return None if self._state is None else self._state["run"]

    # --------------------------------------------------------------- events

    def on_train_begin(self, logs=None):
        if is_multi_worker(self.model):
            # Every worker, before the chief saves alone: Keras' saving
            # would otherwise run a collective operation in it.
            _keras_compat.fill_saving_skipset_cache()
        if not is_chief(self.model):
            return  # multi-worker training: only the chief writes
        _prepare_directory(self.directory)
        real_directory = os.path.realpath(self.directory)
        run = self._choose_run(real_directory)
        _io.remove_stale_temporaries(self.directory)
        manifests = [m for m in scan(self.directory, _OWNER)
                     if m["run"] == run]
        self._remove_incomplete(run, manifests)
        encoder, decoder = (
            find_encoder_decoder(self.model)
            if self.save_encoder_decoder else (None, None)
        )
        self._state = {
            "run": run,
            "model": self.model,
            "manifests": manifests,
            "best": best_of(manifests, self.monitor, self.resolved_mode),
            "monitor_warned": False,
            "encoder": encoder,
            "decoder": decoder,
        }

    def _choose_run(self, real_directory):
        origin = getattr(self.model, ORIGIN_ATTR, None)
        if (
            isinstance(origin, tuple) and len(origin) == 2
            and origin[0] == real_directory and origin[1] is not None
        ):
            # Claimed by this callback: a second callback on the directory
            # in the same fit starts its own run instead of sharing it.
            setattr(self.model, ORIGIN_ATTR, None)
            return origin[1]
        previous = self._state
        if previous is not None and previous["model"] is self.model:
            return previous["run"]
        names = os.listdir(self.directory)
        while True:
            run = secrets.token_hex(4)
            if not any(f"-run{run}-" in name for name in names):
                return run

    def on_epoch_end(self, epoch, logs=None):
        if not is_chief(self.model):
            return  # multi-worker training: only the chief writes
        if self._state is None:
            self.on_train_begin()
        logs = logs or {}
        epoch_number = epoch + 1
        value = None
        improved = False
        if self.monitor is not None:
            if self.monitor in logs:
                value = to_float(logs[self.monitor])
                improved = value is not None and self._improves(value)
            else:
                self._warn_missing_monitor(logs)
        periodic = (
            not self.save_best_only
            and self.save_freq is not None
            and epoch_number % self.save_freq == 0
        )
        if not (periodic or improved):
            return
        problem = self._non_finite(logs)
        if problem:
            warnings.warn(
                f"{_OWNER}: epoch {epoch_number} not saved to "
                f"'{self.directory}': {problem}.",
                stacklevel=2,
            )
            return
        self._save(epoch_number, logs, value)

    def _warn_missing_monitor(self, logs):
        if self._state["monitor_warned"]:
            return
        self._state["monitor_warned"] = True
        if self.save_best_only or self.save_freq is None:
            consequence = ("nothing is saved until it appears (only "
                           "improvements of the monitor are saved)")
        else:
            consequence = (f"checkpoints are still saved every "
                           f"{self.save_freq} epoch(s), without a best one")
        warnings.warn(
            f"{_OWNER}: `monitor` {self.monitor!r} is not in the epoch logs "
            f"(available keys: {sorted(logs)}); {consequence}. Pass "
            "`validation_data` to fit() for val_* keys, monitor one of the "
            "available keys, or use monitor=None for periodic checkpoints "
            "only.",
            stacklevel=3,
        )

    def _non_finite(self, logs):
        """Why this epoch must not be saved, or `None`."""
        for key in ("loss", self.monitor):
            if key is not None and key in logs and to_float(logs[key]) is None:
                return f"`{key}` is {logs[key]!r} (not a finite number)"
        bad = non_finite_weights(self.model.weights)
        if bad:
            return f"the model weights hold NaN or inf (in {bad[:3]})"
        return None

    def _improves(self, value):
        best = self._state["best"]
        if best is None:
            return True
        if self.resolved_mode == "min":
            return value < best["monitor_value"]
        return value > best["monitor_value"]

    # --------------------------------------------------------------- saving

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _save(self, epoch_number, logs, value):
        state = self._state
        # Re-read the directory: other runs may have saved since.
        everything = scan(self.directory, _OWNER)
        sequence = 1 + max(
            [m["sequence"] for m in everything + state["manifests"]],
            default=0,
        )
        stem = checkpoint_stem(epoch_number, state["run"], sequence)
        parts = [("model", self.model)] + [
            (part, state[part]) for part in ("encoder", "decoder")
            if state[part] is not None
        ]
        files = {part: stem + PART_SUFFIXES[part] for part, _ in parts}
        try:
            for part, model in parts:
                with _io.atomic_path(self._path(files[part])) as tmp:
                    model.save_weights(tmp, overwrite=True)
            manifest = self._manifest(epoch_number, sequence, logs, value,
                                      files)
            _io.write_json_atomic(self._path(f"{stem}.json"), manifest)
        except BaseException:
            # Files of an unfinished checkpoint are not a checkpoint; their
            # names are unique to this save, so nothing else is lost.
            for file_name in files.values():
                remove_quietly(self._path(file_name))
            raise
        manifest["manifest"] = f"{stem}.json"
        replaced = [m for m in state["manifests"]
                    if m["epoch"] == epoch_number]
        state["manifests"].append(manifest)
        if self.monitor is not None:
            state["best"] = best_of(state["manifests"], self.monitor,
                                     self.resolved_mode)
        if self.verbose:
            shown = "" if value is None else f", {self.monitor}={value:.6g}"
            print(f"{_OWNER}: saved {stem} in '{self.directory}'{shown}")
        # The new checkpoint is complete: only now drop the one it replaces.
        deleted = [m for m in replaced if m is not state["best"]]
        for old in deleted:
            self._delete(old, quiet=True)
        deleted += self._rotate()
        gone = {m["manifest"] for m in deleted}
        self._write_index(
            [m for m in everything if m["manifest"] not in gone] + [manifest]
        )

    def _manifest(self, epoch_number, sequence, logs, value, files):
        sub_models = {
            part: (self._state[part].name
                   if self._state[part] is not None else None)
            for part in ("encoder", "decoder")
        }
        manifest = {
            "format": MANIFEST_FORMAT,
            "epoch": epoch_number,
            "run": self._state["run"],
            "sequence": sequence,
            "monitor": self.monitor,
            "mode": self.resolved_mode,
            "monitor_value": value,
            "logs": logs_to_floats(logs),
            "files": dict(files),
            "model_name": self.model.name,
            "model_class": type(self.model).__name__,
            "sub_models": sub_models,
            "keras_vae_layers_version": __version__,
            "keras_version": keras.__version__,
            "timestamp": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"),
        }
        if not self.save_encoder_decoder:
            manifest["note"] = (
                "save_encoder_decoder=False: only full-model weights saved."
            )
        elif sub_models["encoder"] is None and sub_models["decoder"] is None:
            manifest["note"] = (
                "no encoder/decoder sub-model found: only full-model "
                "weights saved."
            )
        elif None in sub_models.values():
            missing = [k for k, v in sub_models.items() if v is None][0]
            manifest["note"] = f"no {missing} sub-model found: not saved."
        return manifest

    # ------------------------------------------------------------- rotation

    def _delete(self, manifest, quiet=False):
        if manifest["run"] != self._state["run"]:
            return  # never another run's files
        # Manifest first: from then on the checkpoint is incomplete.
        remove_quietly(self._path(manifest["manifest"]))
        for file_name in manifest["files"].values():
            remove_quietly(self._path(file_name))
        self._state["manifests"] = [
            m for m in self._state["manifests"] if m is not manifest
        ]
        if self._state["best"] is manifest:
            self._state["best"] = None
        if self.verbose and not quiet:
            print(f"{_OWNER}: removed {manifest['manifest'][:-5]}")

    def _rotate(self):
        """Deletes the run's checkpoints beyond `keep_last` (but its best);
        returns them."""
        if self.keep_last is None:
            return []
        manifests = self._state["manifests"]
        keep = {id(m) for m in manifests[-self.keep_last:]}
        if self._state["best"] is not None:
            keep.add(id(self._state["best"]))
        doomed = [m for m in manifests if id(m) not in keep]
        for manifest in doomed:
            self._delete(manifest)
        return doomed

    def _remove_incomplete(self, run, manifests):
        """Deletes files of the run that no complete checkpoint lists.

        They can only come from a process killed while saving (an exception
        cleans up after itself). Other runs' files are never touched: their
        writer may still be running.
        """
        complete = {m["manifest"] for m in manifests} | {
            name for m in manifests for name in m["files"].values()
        }
        for name in os.listdir(self.directory):
            match = RUN_FILE_RE.match(name)
            if match and match["run"] == run and name not in complete:
                remove_quietly(self._path(name))

    def _write_index(self, manifests):
        usable = [m for m in manifests if recorded_finite(m)]
        monitor, mode, _ = best_criterion(usable)
        best = best_of(usable, monitor, mode)

        def entry(m):
            if m is None:
                return None
            return {
                "epoch": m["epoch"],
                "run": m["run"],
                "sequence": m["sequence"],
                "manifest": m["manifest"],
                "monitor_value": m["monitor_value"],
                "files": m["files"],
            }

        index = {
            "format": MANIFEST_FORMAT,
            "monitor": monitor,
            "mode": mode,
            "checkpoints": [entry(m) for m in manifests],
            "latest": entry(usable[-1]) if usable else None,
            "best": entry(best),
            "best_epoch": None if best is None else best["epoch"],
        }
        _io.write_json_atomic(self._path(INDEX_NAME), index)

    # -------------------------------------------------------- serialization

    def get_config(self):
        return {
            "directory": self.directory,
            "monitor": self.monitor,
            "mode": self.mode,
            "save_freq": self.save_freq,
            "save_best_only": self.save_best_only,
            "keep_last": self.keep_last,
            "save_encoder_decoder": self.save_encoder_decoder,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
