"""The checkpoint directory format: reading, validating and restoring.

`VAECheckpoint` (in `checkpoint.py`) writes these directories; this module
owns their layout, reads the manifests back (a trust boundary: they are
checked field by field) and restores models from them.

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

import json
import math
import os
import re
import warnings

import keras
import numpy as np

# Shared with `diagnostics.find_encoder` / `find_decoder`; re-exported here.
from keras_vae_layers.diagnostics.discovery import find_encoder_decoder
from keras_vae_layers._validation import check_choice

__all__ = [
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

PART_SUFFIXES = {
    "model": ".weights.h5",
    "encoder": ".encoder.weights.h5",
    "decoder": ".decoder.weights.h5",
}
# Format 2 stems carry the run id and the sequence; format 1 stems do not.
_STEM_RE = re.compile(
    r"^ckpt-epoch(?P<epoch>\d{4,})"
    r"(?:-run(?P<run>[0-9a-f]{8})-(?P<seq>\d{4,}))?$"
)
RUN_FILE_RE = re.compile(
    r"^ckpt-epoch\d{4,}-run(?P<run>[0-9a-f]{8})-\d{4,}"
    r"(?:\.json|(?:\.encoder|\.decoder)?\.weights\.h5)$"
)
_OPTIONAL_STRINGS = ("timestamp", "keras_version", "keras_vae_layers_version",
                     "model_name", "model_class", "note")
# Set on a model by restore_latest/restore_best: (real directory, run id).
ORIGIN_ATTR = "_vae_checkpoint_origin"


def checkpoint_stem(epoch, run, sequence):
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
        if part not in PART_SUFFIXES:
            raise _InvalidManifest(
                f"unknown entry {part!r} in 'files', expected "
                f"{sorted(PART_SUFFIXES)}"
            )
        if name != stem + PART_SUFFIXES[part]:
            raise _InvalidManifest(
                f"files[{part!r}] is {name!r}, expected "
                f"'{stem}{PART_SUFFIXES[part]}' (a checkpoint names only "
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


def scan(directory, owner):
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
    return scan(directory, "list_checkpoints")


def recorded_finite(manifest):
    """False for (older) checkpoints whose loss or monitor was not finite."""
    logs = manifest["logs"]
    keys = {"loss", manifest["monitor"]} & set(logs)
    return all(_finite_number(logs[key]) for key in keys)


def best_of(manifests, monitor, mode):
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


def best_criterion(manifests):
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
    for manifest in scan(directory, owner):
        if recorded_finite(manifest):
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
    monitor, mode, others = best_criterion(usable)
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


def non_finite_weights(variables):
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
        bad = non_finite_weights(model.weights)
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
    setattr(model, ORIGIN_ATTR,
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


def remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
