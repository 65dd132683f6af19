"""Atomic, rotating VAE checkpoints: full model, encoder and decoder weights.

Directory layout (flat; one checkpoint = up to three weight files and a
manifest sharing one stem):

```
directory/
  ckpt-epoch0004-run3f9a1c2e-0007.weights.h5          full model
  ckpt-epoch0004-run3f9a1c2e-0007.encoder.weights.h5  encoder sub-model
  ckpt-epoch0004-run3f9a1c2e-0007.decoder.weights.h5  decoder sub-model
  ckpt-epoch0004-run3f9a1c2e-0007.json                manifest, written last
  ckpt-epoch0005-run3f9a1c2e-0008.*                   ...
  ckpt-epoch0002.*                                    format 1 (older
                                                      versions): read only
  checkpoints.json                                    index
```

The stem holds the number of completed epochs, the id of the run that wrote
it and the save `sequence`, which grows across all runs of the directory.
A run is one `on_train_begin` of a fresh `VAECheckpoint` (a deep copy, as
keras-tuner makes per trial, is fresh too); it continues the run a model
was restored from by `restore_latest`/`restore_best`. Rotation only deletes
files of its own run, so runs sharing a directory never destroy each
other's checkpoints.

Every file is written to a temporary file in the same directory and renamed
into place, and a checkpoint is *complete* only once its manifest exists
(the manifest is the last file written and the first one deleted). The
manifests are the source of truth; `checkpoints.json` is a convenience
summary for people and tools. A manifest is read from disk and may have been
edited or damaged: every field is type-checked and every file it names must
be the one its stem implies, inside the directory; any other manifest is
skipped with a warning.
"""

import datetime
import json
import math
import os
import re
import secrets
import tempfile
import warnings

import keras
import numpy as np

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

MANIFEST_FORMAT = "keras_vae_layers.checkpoint/2"
_FORMAT_1 = "keras_vae_layers.checkpoint/1"
MODES = ("auto", "min", "max")
WHICH = ("latest", "best")

_OWNER = "VAECheckpoint"
_PART_SUFFIXES = {
    "model": ".weights.h5",
    "encoder": ".encoder.weights.h5",
    "decoder": ".decoder.weights.h5",
}
# Format 2 stems carry the run id and the sequence; format 1 stems do not.
_STEM_RE = re.compile(
    r"^ckpt-epoch(?P<epoch>\d{4,})"
    r"(?:-run(?P<run>[0-9a-f]{8})-(?P<seq>\d{4,}))?$"
)
_RUN_FILE_RE = re.compile(
    r"^ckpt-epoch\d{4,}-run(?P<run>[0-9a-f]{8})-\d{4,}"
    r"(?:\.json|(?:\.encoder|\.decoder)?\.weights\.h5)$"
)
_OPTIONAL_STRINGS = ("timestamp", "keras_version", "keras_vae_layers_version",
                     "model_name", "model_class", "note")
# Set on a model by restore_latest/restore_best: (real directory, run id).
_ORIGIN_ATTR = "_vae_checkpoint_origin"


def _stem(epoch, run, sequence):
    return f"ckpt-epoch{epoch:04d}-run{run}-{sequence:04d}"


def resolve_mode(mode, monitor):
    """`"min"`/`"max"` for `mode`; `"auto"` is max for accuracy/AUC names."""
    if mode != "auto":
        return mode
    name = (monitor or "").lower()
    return "max" if ("acc" in name or "auc" in name) else "min"


# ----------------------------------------------------------------------------
# Reading checkpoints
# ----------------------------------------------------------------------------


class _InvalidManifest(ValueError):
    """A manifest that is not a trustworthy description of a checkpoint."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite_number(value):
    try:
        return _is_number(value) and math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _inside(real_directory, path):
    """Whether `path`, symlinks resolved, lies inside `real_directory`."""
    real = os.path.realpath(path)
    return real != real_directory and os.path.commonpath(
        [real_directory, real]
    ) == real_directory


def _check_fields(manifest, stem, match):
    """Raises `_InvalidManifest` unless every field has the expected type."""
    if not isinstance(manifest, dict):
        raise _InvalidManifest(
            f"expected a JSON object, found {type(manifest).__name__}"
        )
    run = match["run"]
    expected_format = _FORMAT_1 if run is None else MANIFEST_FORMAT
    if manifest.get("format") != expected_format:
        raise _InvalidManifest(
            f"'format' is {manifest.get('format')!r}, expected "
            f"{expected_format!r} for a file named like this"
        )
    if manifest.get("epoch") != int(match["epoch"]) or not _is_int(
        manifest.get("epoch")
    ):
        raise _InvalidManifest(
            f"'epoch' is {manifest.get('epoch')!r}, expected the integer "
            f"{int(match['epoch'])} of its file name"
        )
    sequence = manifest.get("sequence", 0 if run is None else None)
    if not _is_int(sequence) or sequence < 0 or (
        run is not None and sequence != int(match["seq"])
    ):
        raise _InvalidManifest(
            f"'sequence' is {sequence!r}, expected a non-negative integer"
            + ("" if run is None else f" equal to {int(match['seq'])}")
        )
    if manifest.get("run") != run:
        raise _InvalidManifest(
            f"'run' is {manifest.get('run')!r}, expected {run!r}"
        )
    monitor = manifest.get("monitor")
    if monitor is not None and (not isinstance(monitor, str) or not monitor):
        raise _InvalidManifest(
            f"'monitor' is {monitor!r}, expected a log key or null"
        )
    mode = manifest.get("mode", resolve_mode("auto", monitor))
    if mode not in ("min", "max"):
        raise _InvalidManifest(f"'mode' is {mode!r}, expected 'min' or 'max'")
    value = manifest.get("monitor_value")
    if value is not None and not _finite_number(value):
        raise _InvalidManifest(
            f"'monitor_value' is {value!r}, expected a finite number or null"
        )
    logs = manifest.get("logs", {})
    if not isinstance(logs, dict) or not all(
        isinstance(v, (int, float, type(None))) and not isinstance(v, bool)
        for v in logs.values()
    ):
        raise _InvalidManifest(
            "'logs' must map log keys to numbers or null"
        )
    for key in _OPTIONAL_STRINGS:
        if key in manifest and not isinstance(manifest[key], str):
            raise _InvalidManifest(
                f"{key!r} is {manifest[key]!r}, expected a string"
            )
    sub_models = manifest.get("sub_models", {})
    if not isinstance(sub_models, dict) or not all(
        isinstance(v, (str, type(None))) for v in sub_models.values()
    ):
        raise _InvalidManifest(
            f"'sub_models' is {sub_models!r}, expected an object of names"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or "model" not in files:
        raise _InvalidManifest(
            f"'files' is {files!r}, expected an object with a 'model' entry"
        )
    for part, name in files.items():
        if part not in _PART_SUFFIXES:
            raise _InvalidManifest(
                f"unknown entry {part!r} in 'files', expected "
                f"{sorted(_PART_SUFFIXES)}"
            )
        if name != stem + _PART_SUFFIXES[part]:
            raise _InvalidManifest(
                f"files[{part!r}] is {name!r}, expected "
                f"'{stem}{_PART_SUFFIXES[part]}' (a checkpoint names only "
                "its own files, inside the checkpoint directory)"
            )
    return {**manifest, "mode": mode, "logs": logs, "sequence": sequence,
            "run": run, "monitor": monitor}


def _read_manifest(directory, real_directory, name):
    """The manifest `name`, validated; `None` while the checkpoint is
    incomplete (a file is missing). Raises `_InvalidManifest`."""
    stem = name[:-len(".json")]
    match = _STEM_RE.match(stem)
    path = os.path.join(directory, name)
    if not _inside(real_directory, path):
        raise _InvalidManifest("it resolves outside the checkpoint directory")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return None  # deleted by a rotation while we listed the directory
    except OSError as error:
        raise _InvalidManifest(f"cannot be read ({error})") from None
    except ValueError as error:
        raise _InvalidManifest(f"is not valid JSON ({error})") from None
    manifest = _check_fields(raw, stem, match)
    for file_name in manifest["files"].values():
        file_path = os.path.join(directory, file_name)
        if not os.path.lexists(file_path):
            return None
        if not _inside(real_directory, file_path):
            raise _InvalidManifest(
                f"'{file_name}' resolves outside the checkpoint directory"
            )
        if not os.path.isfile(file_path):
            return None
    manifest["manifest"] = name
    return manifest


def _scan(directory, owner):
    """The complete, valid checkpoints in `directory`, oldest first.

    Invalid manifests are skipped with a warning that names them.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    real_directory = os.path.realpath(directory)
    manifests = []
    for name in os.listdir(directory):
        if not (name.endswith(".json") and _STEM_RE.match(name[:-5])):
            continue
        try:
            manifest = _read_manifest(directory, real_directory, name)
        except _InvalidManifest as reason:
            warnings.warn(
                f"{owner}: ignoring checkpoint manifest "
                f"'{os.path.join(directory, name)}': {reason}.",
                stacklevel=3,
            )
            continue
        if manifest is not None:
            manifests.append(manifest)
    manifests.sort(key=lambda m: (m["sequence"], m["epoch"], m["manifest"]))
    return manifests


def list_checkpoints(directory):
    """The complete checkpoints in `directory`, oldest first.

    A checkpoint is complete when its manifest parses, passes the checks
    (field types; every file it names is its own and inside `directory`)
    and every weights file it lists exists. Manifests failing the checks
    are skipped with a warning naming them. Order is the order of saving
    (the manifest's `sequence`, which grows across runs), so after resuming
    from an older checkpoint the newly written ones count as the newest.

    Args:
        directory: A checkpoint directory written by `VAECheckpoint`.

    Returns:
        A list of manifest dicts (empty if the directory does not exist).
        Each has `manifest` (its file name) and `run` (`None` for
        checkpoints of format 1) besides the fields on disk.

    Example:

    ```python
    epochs = [m["epoch"] for m in list_checkpoints("ckpts")]
    ```
    """
    return _scan(directory, "list_checkpoints")


def _recorded_finite(manifest):
    """False for (older) checkpoints whose loss or monitor was not finite."""
    logs = manifest["logs"]
    keys = {"loss", manifest["monitor"]} & set(logs)
    return all(_finite_number(logs[key]) for key in keys)


def _best_of(manifests, monitor, mode):
    """The manifest with the best finite `monitor` value (newest on ties)."""
    ranked = _rank(manifests, monitor, mode)
    return ranked[0] if ranked else None


def _rank(manifests, monitor, mode):
    """Manifests recording `monitor`, best first (newest first on ties)."""
    sign = 1.0 if mode == "min" else -1.0
    scored = [
        (sign * m["monitor_value"], -position, m)
        for position, m in enumerate(manifests)
        if monitor is not None and m["monitor"] == monitor
        and m["monitor_value"] is not None
    ]
    return [m for _, _, m in sorted(scored, key=lambda t: t[:2])]


def _best_criterion(manifests):
    """Monitor and mode of the newest manifest that has a monitor, plus the
    other monitors found (ignored by "best")."""
    monitored = [m for m in manifests if m["monitor"] is not None]
    if not monitored:
        return None, "min", []
    newest = monitored[-1]
    others = sorted({m["monitor"] for m in monitored} - {newest["monitor"]})
    return newest["monitor"], newest["mode"], others


def _candidates(directory, which, owner):
    """Checkpoints to load, the preferred one first."""
    check_choice(which, "which", WHICH, owner)
    usable = []
    for manifest in _scan(directory, owner):
        if _recorded_finite(manifest):
            usable.append(manifest)
        else:
            warnings.warn(
                f"{owner}: skipping checkpoint '{manifest['manifest']}' in "
                f"'{os.fspath(directory)}': its logs record a non-finite "
                "loss or monitor value.",
                stacklevel=3,
            )
    if which == "latest" or not usable:
        return usable[::-1]
    monitor, mode, others = _best_criterion(usable)
    if others:
        warnings.warn(
            f"{owner}: the checkpoints in '{os.fspath(directory)}' were saved "
            f"with different monitors; 'best' uses the newest checkpoint's "
            f"monitor {monitor!r} ({mode}) and ignores those saved with "
            f"{others}.",
            stacklevel=3,
        )
    ranked = _rank(usable, monitor, mode)
    if not ranked:
        raise ValueError(
            f"{owner}: no checkpoint in '{os.fspath(directory)}' records a "
            f"value for the monitored quantity {monitor!r}, so there is no "
            "best checkpoint; use which='latest' / restore_latest()."
        )
    return ranked


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


def _non_finite_weights(variables):
    """Paths of the floating-point variables holding NaN or inf."""
    bad = []
    for variable in variables:
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        if value.dtype.kind in "biu":
            continue
        try:
            finite = bool(np.isfinite(value).all())
        except TypeError:
            continue
        if not finite:
            bad.append(variable.path)
    return bad


def _load_or_roll_back(model, path):
    """Loads `path` into `model`; on any failure puts every variable back.

    `load_weights` assigns layer by layer, so a file that fails half-way
    (truncated, other architecture) would otherwise leave the model a mix
    of old and new weights. Returns the exception, or `None` on success.
    """
    optimizer = getattr(model, "optimizer", None)
    everything = list(model.variables) + list(
        optimizer.variables if optimizer is not None else []
    )
    variables = list({id(v): v for v in everything}.values())
    saved = [np.array(keras.ops.convert_to_numpy(v), copy=True)
             for v in variables]
    try:
        model.load_weights(path)
        bad = _non_finite_weights(model.weights)
        if bad:
            raise ValueError(f"non-finite values in {bad[:3]}")
    except Exception as error:  # noqa: BLE001 - reported to the caller.
        for variable, value in zip(variables, saved):
            variable.assign(value)
        return error
    return None


def _load_first_loadable(model, directory, candidates, part, owner):
    """Loads the first candidate whose `part` file loads; returns it."""
    directory = os.fspath(directory)
    real_directory = os.path.realpath(directory)
    failures = []
    for manifest in candidates:
        path = os.path.join(directory, manifest["files"][part])
        if not _inside(real_directory, path):  # replaced since the scan
            error = ValueError("resolves outside the checkpoint directory")
        else:
            error = _load_or_roll_back(model, path)
        if error is None:
            return manifest
        first_line = (str(error).splitlines() or [""])[0][:300]
        reason = f"{type(error).__name__}: {first_line}"
        failures.append(f"'{path}' ({reason})")
        warnings.warn(
            f"{owner}: could not load checkpoint file '{path}' into model "
            f"'{model.name}' ({reason}); the model is unchanged, trying the "
            "next checkpoint.",
            stacklevel=3,
        )
    raise ValueError(
        f"{owner}: none of the {len(failures)} checkpoint(s) in '{directory}' "
        f"could be loaded into model '{model.name}' (its weights are "
        f"unchanged): {'; '.join(failures)}."
    )


def _restore(model, directory, which, owner):
    candidates = _candidates(directory, which, owner)
    if not candidates:
        return 0
    _prepare_for_loading(model, owner)
    manifest = _load_first_loadable(model, directory, candidates, "model",
                                    owner)
    # The next VAECheckpoint on this directory continues this run.
    setattr(model, _ORIGIN_ATTR,
            (os.path.realpath(os.fspath(directory)), manifest["run"]))
    return manifest["epoch"]


def restore_latest(model, directory):
    """Loads the newest complete checkpoint from `directory` into `model`.

    Weights and, when the model is compiled, the optimizer state are
    restored. "Newest" is the highest save `sequence` over all runs that
    wrote into `directory`. Incomplete checkpoints (no manifest, missing
    file) are ignored, so a crash while saving never makes this pick up a
    half-written one; invalid manifests and checkpoints whose logs record a
    non-finite loss are skipped with a warning. If a weights file cannot be
    loaded (truncated, other architecture, non-finite values) the model is
    put back as it was, a warning names the file and the next older
    checkpoint is tried.

    The next `VAECheckpoint` on the same directory in `model`'s training
    continues the restored checkpoint's run (same run id, same rotation).

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

    Raises:
        ValueError: if checkpoints exist but none of them loads (the
            message names every file tried; the model is unchanged).

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

    "Best" compares all runs in `directory` by the monitor and mode of the
    newest checkpoint that has a monitor (a warning says so when runs used
    other monitors; their checkpoints are ignored). A file that cannot be
    loaded is skipped with a warning and the next best one is tried (see
    `restore_latest`, which also describes run continuation).

    Args:
        model: The model to restore (see `restore_latest`).
        directory: The `VAECheckpoint` directory.

    Returns:
        The epoch of the restored checkpoint, or `0` if there is none.

    Raises:
        ValueError: if checkpoints exist but none recorded a monitor value,
            or none of them loads.

    Example:

    ```python
    epoch = restore_best(vae, "ckpts")
    ```
    """
    return _restore(model, directory, "best", "restore_best")


def _load_part(part, model, directory, which, owner):
    candidates = _candidates(directory, which, owner)
    if not candidates:
        raise FileNotFoundError(
            f"{owner}: no complete checkpoint in '{os.fspath(directory)}'."
        )
    if part not in candidates[0]["files"]:
        raise ValueError(
            f"{owner}: checkpoint '{candidates[0]['manifest']}' has no "
            f"separate {part} weights (no {part} sub-model was found when it "
            "was saved); load the full model with restore_latest/"
            "restore_best."
        )
    manifest = _load_first_loadable(
        model, directory, [m for m in candidates if part in m["files"]],
        part, owner,
    )
    return manifest["epoch"]


def load_decoder_weights(decoder, directory, which="best"):
    """Loads the decoder weights of a checkpoint into `decoder`.

    Handy for generation-only deployments: rebuild the decoder, load its
    weights, sample. Checkpoints are chosen and files that fail to load are
    skipped as in `restore_latest` / `restore_best`.

    Args:
        decoder: A built decoder model with the saved architecture.
        directory: The `VAECheckpoint` directory.
        which: `"best"` or `"latest"`.

    Returns:
        The epoch of the checkpoint used.

    Raises:
        FileNotFoundError: if there is no complete checkpoint.
        ValueError: if that checkpoint has no decoder file, or no decoder
            file loads.

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
        _prepare_directory(self.directory)
        real_directory = os.path.realpath(self.directory)
        run = self._choose_run(real_directory)
        _io.remove_stale_temporaries(self.directory)
        manifests = [m for m in _scan(self.directory, _OWNER)
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
            "best": _best_of(manifests, self.monitor, self.resolved_mode),
            "monitor_warned": False,
            "encoder": encoder,
            "decoder": decoder,
        }

    def _choose_run(self, real_directory):
        origin = getattr(self.model, _ORIGIN_ATTR, None)
        if (
            isinstance(origin, tuple) and len(origin) == 2
            and origin[0] == real_directory and origin[1] is not None
        ):
            # Claimed by this callback: a second callback on the directory
            # in the same fit starts its own run instead of sharing it.
            setattr(self.model, _ORIGIN_ATTR, None)
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
        bad = _non_finite_weights(self.model.weights)
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
        everything = _scan(self.directory, _OWNER)
        sequence = 1 + max(
            [m["sequence"] for m in everything + state["manifests"]],
            default=0,
        )
        stem = _stem(epoch_number, state["run"], sequence)
        parts = [("model", self.model)] + [
            (part, state[part]) for part in ("encoder", "decoder")
            if state[part] is not None
        ]
        files = {part: stem + _PART_SUFFIXES[part] for part, _ in parts}
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
                _remove_quietly(self._path(file_name))
            raise
        manifest["manifest"] = f"{stem}.json"
        replaced = [m for m in state["manifests"]
                    if m["epoch"] == epoch_number]
        state["manifests"].append(manifest)
        if self.monitor is not None:
            state["best"] = _best_of(state["manifests"], self.monitor,
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
            match = _RUN_FILE_RE.match(name)
            if match and match["run"] == run and name not in complete:
                _remove_quietly(self._path(name))

    def _write_index(self, manifests):
        usable = [m for m in manifests if _recorded_finite(m)]
        monitor, mode, _ = _best_criterion(usable)
        best = _best_of(usable, monitor, mode)

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
