"""Atomic, rotating VAE checkpoints: full model, encoder and decoder weights.

Directory layout (flat; one checkpoint = up to three weight files and a
manifest sharing the stem `ckpt-epochNNNN`, where NNNN is the number of
completed epochs):

```
directory/
  ckpt-epoch0004.weights.h5          full model (incl. optimizer state)
  ckpt-epoch0004.encoder.weights.h5  encoder sub-model (when found)
  ckpt-epoch0004.decoder.weights.h5  decoder sub-model (when found)
  ckpt-epoch0004.json                manifest, written last
  ckpt-epoch0005.*                   ...
  checkpoints.json                   index: complete checkpoints, best, latest
```

Every file is written to a temporary file in the same directory and renamed
into place, and a checkpoint is *complete* only once its manifest exists
(the manifest is the last file written and the first one deleted). The
manifests are the source of truth; `checkpoints.json` is a convenience
summary for people and tools.
"""

import datetime
import json
import os
import re
import tempfile

import keras

from keras_vae_layers import _io
# Shared with `diagnostics.find_encoder` / `find_decoder`; re-exported here.
from keras_vae_layers._discovery import find_encoder_decoder
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._version import __version__
from keras_vae_layers.callbacks._callback_base import CopySafeCallback
from keras_vae_layers.callbacks._callback_base import logs_to_floats
from keras_vae_layers.callbacks._callback_base import to_float

__all__ = [
    "VAECheckpoint",
    "find_encoder_decoder",
    "list_checkpoints",
    "load_decoder_weights",
    "load_encoder_weights",
    "restore_best",
    "restore_latest",
]

INDEX_NAME = "checkpoints.json"
"""File name of the index written next to the checkpoints."""

MANIFEST_FORMAT = "keras_vae_layers.checkpoint/1"
MODES = ("auto", "min", "max")
WHICH = ("latest", "best")

_OWNER = "VAECheckpoint"
_MANIFEST_RE = re.compile(r"^ckpt-epoch(\d{4,})\.json$")
_WEIGHTS_RE = re.compile(
    r"^ckpt-epoch\d{4,}(\.encoder|\.decoder)?\.weights\.h5$"
)
# Temporary files of `_io.atomic_path` left behind by a killed process.
_TEMP_RE = re.compile(
    r"^\.(ckpt-epoch\d{4,}[^/]*|checkpoints\.json)\..*\.tmp"
)


def _stem(epoch):
    return f"ckpt-epoch{epoch:04d}"


def resolve_mode(mode, monitor):
    """`"min"`/`"max"` for `mode`; `"auto"` is max for accuracy/AUC names."""
    if mode != "auto":
        return mode
    name = (monitor or "").lower()
    return "max" if ("acc" in name or "auc" in name) else "min"


# ----------------------------------------------------------------------------
# Reading checkpoints
# ----------------------------------------------------------------------------


def _read_manifest(directory, name):
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or "model" not in files:
        return None
    if not isinstance(manifest.get("epoch"), int):
        return None
    # Complete only if every file it lists is there.
    for file_name in files.values():
        if not os.path.isfile(os.path.join(directory, file_name)):
            return None
    manifest["manifest"] = name
    return manifest


def list_checkpoints(directory):
    """The complete checkpoints in `directory`, oldest first.

    A checkpoint is complete when its manifest `ckpt-epochNNNN.json` parses
    and every weights file it lists exists. Order is the order of saving
    (the manifest's `sequence`), so after resuming from an older checkpoint
    the newly written ones count as the newest.

    Args:
        directory: A checkpoint directory written by `VAECheckpoint`.

    Returns:
        A list of manifest dicts (empty if the directory does not exist).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    manifests = []
    for name in os.listdir(directory):
        if _MANIFEST_RE.match(name):
            manifest = _read_manifest(directory, name)
            if manifest is not None:
                manifests.append(manifest)
    manifests.sort(key=lambda m: (m.get("sequence", 0), m["epoch"]))
    return manifests


def _best_of(manifests, monitor, mode):
    """The manifest with the best finite `monitor` value (newest on ties)."""
    best = None
    best_value = None
    for manifest in manifests:
        if manifest.get("monitor") != monitor:
            continue
        value = to_float(manifest.get("monitor_value"))
        if value is None:
            continue
        if (
            best is None
            or (mode == "min" and value <= best_value)
            or (mode == "max" and value >= best_value)
        ):
            best, best_value = manifest, value
    return best


def _select(directory, which, owner):
    check_choice(which, "which", WHICH, owner)
    manifests = list_checkpoints(directory)
    if not manifests:
        return None
    latest = manifests[-1]
    if which == "latest":
        return latest
    monitor = latest.get("monitor")
    best = _best_of(manifests, monitor, latest.get("mode", "min"))
    if best is None:
        raise ValueError(
            f"{owner}: no checkpoint in '{directory}' records a value for "
            f"the monitored quantity {monitor!r}, so there is no best "
            "checkpoint; use which='latest' / restore_latest()."
        )
    return best


def _prepare_for_loading(model, owner):
    if not model.built:
        encoder = getattr(model, "encoder", None)
        inputs = getattr(encoder, "inputs", None)
        if inputs and len(inputs) == 1:
            # A VAEModel can be built from its encoder's input shape.
            model.build(tuple(inputs[0].shape))
        else:
            raise ValueError(
                f"{owner}: model '{model.name}' is not built, so its weights "
                "cannot be restored. Build it first, e.g. by calling it on a "
                "batch or with `model.build(input_shape)`."
            )
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # The full-model file holds the optimizer state; loading it into
        # an unbuilt optimizer would drop it and Adam would restart cold.
        optimizer.build(model.trainable_variables)


def _restore(model, directory, which, owner):
    manifest = _select(directory, which, owner)
    if manifest is None:
        return 0
    _prepare_for_loading(model, owner)
    model.load_weights(os.path.join(os.fspath(directory),
                                    manifest["files"]["model"]))
    return int(manifest["epoch"])


def restore_latest(model, directory):
    """Loads the newest complete checkpoint from `directory` into `model`.

    Weights and, when the model is compiled, the optimizer state are
    restored. Incomplete checkpoints (no manifest, missing file) are ignored,
    so a crash while saving never makes this pick up a half-written one.

    Args:
        model: The model to restore (same architecture as when saved). An
            unbuilt `VAEModel` is built from its encoder's input shape;
            other models must be built.
        directory: The `VAECheckpoint` directory.

    Returns:
        The number of completed epochs of that checkpoint, or `0` if the
        directory holds no complete checkpoint (or does not exist), so
        `fit(..., initial_epoch=restore_latest(model, d))` works for a fresh
        run and a resumed one alike.

    Example:

    ```python
    initial_epoch = restore_latest(vae, "ckpts")
    vae.fit(x, epochs=20, initial_epoch=initial_epoch,
            callbacks=[VAECheckpoint("ckpts")])
    ```
    """
    return _restore(model, directory, "latest", "restore_latest")


def restore_best(model, directory):
    """Loads the checkpoint with the best monitored value into `model`.

    "Best" uses the monitor and mode recorded in the newest manifest.

    Args:
        model: The model to restore (see `restore_latest`).
        directory: The `VAECheckpoint` directory.

    Returns:
        The epoch of the restored checkpoint, or `0` if there is none.

    Raises:
        ValueError: if checkpoints exist but none recorded a monitor value.

    Example:

    ```python
    epoch = restore_best(vae, "ckpts")
    ```
    """
    return _restore(model, directory, "best", "restore_best")


def _load_part(part, model, directory, which, owner):
    manifest = _select(directory, which, owner)
    if manifest is None:
        raise FileNotFoundError(
            f"{owner}: no complete checkpoint in '{os.fspath(directory)}'."
        )
    file_name = manifest["files"].get(part)
    if file_name is None:
        raise ValueError(
            f"{owner}: checkpoint '{manifest['manifest']}' has no separate "
            f"{part} weights (no {part} sub-model was found when it was "
            "saved); load the full model with restore_latest/restore_best."
        )
    model.load_weights(os.path.join(os.fspath(directory), file_name))
    return int(manifest["epoch"])


def load_decoder_weights(decoder, directory, which="best"):
    """Loads the decoder weights of a checkpoint into `decoder`.

    Handy for generation-only deployments: rebuild the decoder, load its
    weights, sample.

    Args:
        decoder: A built decoder model with the saved architecture.
        directory: The `VAECheckpoint` directory.
        which: `"best"` or `"latest"`.

    Returns:
        The epoch of the checkpoint used.

    Raises:
        FileNotFoundError: if there is no complete checkpoint.
        ValueError: if that checkpoint has no decoder file.

    Example:

    ```python
    _, decoder = build_conv_encoder_decoder(...)
    load_decoder_weights(decoder, "ckpts", which="best")
    ```
    """
    return _load_part("decoder", decoder, directory, which,
                      "load_decoder_weights")


def load_encoder_weights(encoder, directory, which="best"):
    """Loads the encoder weights of a checkpoint into `encoder`.

    Args:
        encoder: A built encoder model with the saved architecture.
        directory: The `VAECheckpoint` directory.
        which: `"best"` or `"latest"`.

    Returns:
        The epoch of the checkpoint used.

    Example:

    ```python
    load_encoder_weights(encoder, "ckpts", which="latest")
    ```
    """
    return _load_part("encoder", encoder, directory, which,
                      "load_encoder_weights")


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


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ----------------------------------------------------------------------------
# The callback
# ----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_vae_layers")
class VAECheckpoint(CopySafeCallback):
    """Saves full-model, encoder and decoder weights atomically, with rotation.

    At the end of every `save_freq`-th epoch, and whenever `monitor`
    improves, the callback writes a checkpoint to `directory`:

    * `ckpt-epochNNNN.weights.h5`: the full model (optimizer state
      included), NNNN being the number of completed epochs;
    * `ckpt-epochNNNN.encoder.weights.h5` and
      `ckpt-epochNNNN.decoder.weights.h5`: the encoder and decoder alone
      (see `find_encoder_decoder`; `VAEModel.encoder`/`.decoder`, or the
      sub-models of a Functional VAE). If they cannot be identified only the
      full model is saved and the manifest says so in `note`;
    * `ckpt-epochNNNN.json`: the manifest (epoch, save `sequence`, monitor
      name/mode/value, all epoch logs as floats (non-finite as `null`),
      file names, sub-model names, `keras_vae_layers` and Keras versions,
      UTC timestamp);
    * `checkpoints.json`: an index of the complete checkpoints with the
      latest and best one.

    Every file is written to a temporary file in `directory` and renamed into
    place; the manifest is written last and deleted first. A crash while
    saving therefore never leaves a truncated file under a final name and
    never touches the previous checkpoints; a checkpoint without a manifest
    is ignored by `restore_latest`/`restore_best` and its leftovers are
    removed at the next `on_train_begin`. Use one directory per training
    run at a time.

    Rotation keeps the `keep_last` most recently saved checkpoints plus the
    best one, whatever its age. On `on_train_begin` the checkpoints already
    in `directory` are read, so a resumed run continues the rotation and
    the best-so-far comparison. Re-saving an epoch that already has a
    checkpoint (e.g. after resuming from an older one) replaces it.

    Args:
        directory: Folder for the checkpoints; created if missing. An error
            is raised before training if it cannot be created or written.
        monitor: Log key deciding the "best" checkpoint (e.g. `"val_loss"`,
            `"loss"`, `"val_neg_elbo"`), or `None` for periodic saves only.
            A key missing from the logs of the first epoch raises a
            `ValueError` listing the keys available (with
            `validation_freq > 1` the first epoch has no `val_*` keys:
            monitor a training key then).
        mode: `"min"`, `"max"` or `"auto"` (max for names containing
            `"acc"` or `"auc"`, else min).
        save_freq: Save every `save_freq` epochs (int >= 1), or `None` to
            save only when `monitor` improves.
        save_best_only: Save only when `monitor` improves (no periodic
            saves).
        keep_last: Number of most recent checkpoints to keep (int >= 1),
            or `None` to keep all. The best checkpoint is always kept too.
        save_encoder_decoder: Also write separate encoder/decoder files.
        verbose: `1` prints a line per save and deletion.

    Example:

    ```python
    ckpt = VAECheckpoint("ckpts", monitor="val_loss", keep_last=3)
    vae.fit(x, epochs=20, validation_data=(x_val,), callbacks=[ckpt])
    # later, or after a crash:
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

    # --------------------------------------------------------------- events

    def on_train_begin(self, logs=None):
        _prepare_directory(self.directory)
        manifests = list_checkpoints(self.directory)
        self._remove_leftovers(manifests)
        best = (
            _best_of(manifests, self.monitor, self.resolved_mode)
            if self.monitor is not None else None
        )
        encoder, decoder = (
            find_encoder_decoder(self.model)
            if self.save_encoder_decoder else (None, None)
        )
        self._state = {
            "manifests": manifests,
            "best": best,
            "sequence": max(
                (m.get("sequence", 0) for m in manifests), default=0
            ),
            "monitor_seen": False,
            "encoder": encoder,
            "decoder": decoder,
        }

    def on_epoch_end(self, epoch, logs=None):
        if self._state is None:
            self.on_train_begin()
        logs = logs or {}
        epoch_number = epoch + 1
        value = None
        improved = False
        if self.monitor is not None:
            if self.monitor in logs:
                self._state["monitor_seen"] = True
                value = to_float(logs[self.monitor])
                improved = value is not None and self._improves(value)
            elif not self._state["monitor_seen"]:
                raise ValueError(
                    f"{_OWNER}: `monitor` {self.monitor!r} is not in the "
                    f"epoch logs; available keys: {sorted(logs)}. Pass "
                    "`validation_data` to fit() for val_* keys, monitor one "
                    "of the available keys, or use monitor=None for "
                    "periodic checkpoints only."
                )
        periodic = (
            not self.save_best_only
            and self.save_freq is not None
            and epoch_number % self.save_freq == 0
        )
        if periodic or improved:
            self._save(epoch_number, logs, value)

    def _improves(self, value):
        best = self._state["best"]
        if best is None:
            return True
        best_value = to_float(best.get("monitor_value"))
        if best_value is None:
            return True
        if self.resolved_mode == "min":
            return value < best_value
        return value > best_value

    # --------------------------------------------------------------- saving

    def _path(self, name):
        return os.path.join(self.directory, name)

    def _save(self, epoch_number, logs, value):
        state = self._state
        stem = _stem(epoch_number)
        manifest_name = f"{stem}.json"
        # Re-running an epoch: invalidate its old checkpoint first, so its
        # manifest never describes a mix of old and new weight files.
        replaced = [m for m in state["manifests"]
                    if m["manifest"] == manifest_name]
        for manifest in replaced:
            self._delete(manifest, quiet=True)
        parts = [("model", f"{stem}.weights.h5", self.model)]
        for part in ("encoder", "decoder"):
            if state[part] is not None:
                parts.append(
                    (part, f"{stem}.{part}.weights.h5", state[part])
                )
        written = []
        try:
            for _, file_name, model in parts:
                with _io.atomic_path(self._path(file_name)) as tmp:
                    model.save_weights(tmp, overwrite=True)
                written.append(file_name)
            state["sequence"] += 1
            manifest = self._manifest(epoch_number, state["sequence"],
                                      logs, value, parts)
            _io.write_json_atomic(self._path(manifest_name), manifest)
        except BaseException:
            # Files of an unfinished checkpoint are not a checkpoint.
            for file_name in written:
                _remove_quietly(self._path(file_name))
            raise
        manifest["manifest"] = manifest_name
        state["manifests"].append(manifest)
        if self.monitor is not None:
            state["best"] = _best_of(state["manifests"], self.monitor,
                                     self.resolved_mode)
        if self.verbose:
            shown = "" if value is None else f", {self.monitor}={value:.6g}"
            print(f"{_OWNER}: saved {stem} in '{self.directory}'{shown}")
        self._rotate()
        self._write_index()

    def _manifest(self, epoch_number, sequence, logs, value, parts):
        files = {part: file_name for part, file_name, _ in parts}
        sub_models = {
            part: (self._state[part].name
                   if self._state[part] is not None else None)
            for part in ("encoder", "decoder")
        }
        manifest = {
            "format": MANIFEST_FORMAT,
            "epoch": epoch_number,
            "sequence": sequence,
            "monitor": self.monitor,
            "mode": self.resolved_mode,
            "monitor_value": value,
            "logs": logs_to_floats(logs),
            "files": files,
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
        # Manifest first: from then on the checkpoint is incomplete.
        _remove_quietly(self._path(manifest["manifest"]))
        for file_name in manifest["files"].values():
            _remove_quietly(self._path(file_name))
        self._state["manifests"] = [
            m for m in self._state["manifests"] if m is not manifest
        ]
        if self._state["best"] is manifest:
            self._state["best"] = None
        if self.verbose and not quiet:
            print(f"{_OWNER}: removed {manifest['manifest'][:-5]}")

    def _rotate(self):
        if self.keep_last is None:
            return
        manifests = self._state["manifests"]
        keep = {id(m) for m in manifests[-self.keep_last:]}
        if self._state["best"] is not None:
            keep.add(id(self._state["best"]))
        for manifest in list(manifests):
            if id(manifest) not in keep:
                self._delete(manifest)

    def _remove_leftovers(self, manifests):
        """Deletes files of checkpoints that never got a manifest.

        They can only come from a process killed while saving (an exception
        cleans up after itself): weight files without a manifest and
        temporary files.
        """
        referenced = {
            name for m in manifests for name in m["files"].values()
        }
        for name in os.listdir(self.directory):
            orphan = _WEIGHTS_RE.match(name) and name not in referenced
            if orphan or _TEMP_RE.match(name):
                _remove_quietly(self._path(name))

    def _write_index(self):
        state = self._state

        def entry(m):
            if m is None:
                return None
            return {
                "epoch": m["epoch"],
                "sequence": m.get("sequence"),
                "manifest": m["manifest"],
                "monitor_value": m.get("monitor_value"),
                "files": m["files"],
            }

        best = state["best"]
        index = {
            "format": MANIFEST_FORMAT,
            "monitor": self.monitor,
            "mode": self.resolved_mode,
            "checkpoints": [entry(m) for m in state["manifests"]],
            "latest": entry(state["manifests"][-1]) if state["manifests"]
            else None,
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

