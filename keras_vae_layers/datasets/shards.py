"""Image folders converted once into `uint8` shards, streamed from disk.

For image sets larger than memory (CelebA at 128x128 is about 10 GB as
`uint8`). `write_image_shards` decodes a folder by the rules of
`load_image_folder` into raw `.npy` shards plus a `manifest.json`;
`load_image_shards` streams them through `tf.data` (shardable by file across
`tf.distribute` workers) and `open_image_shards` maps them into memory as
one read-only array for `ImageBatches` (any backend, no TensorFlow).

Why raw `.npy` shards rather than TFRecord: a record is the image's bytes
at a fixed offset, so the same files serve `tf.data`
(`FixedLengthRecordDataset` skips the 128-byte header) and a plain memory
map (random access for a global shuffle, no TensorFlow, no parsing); the
conversion writes each shard through a memory map, so memory stays bounded
by one shard.

Directory layout: `shard-00000.npy`, `shard-00001.npy`, ... and
`manifest.json`. Shard `k` holds the readable images among the files
`k * images_per_shard` to `(k + 1) * images_per_shard - 1` of the sorted
listing, so a shard's content depends only on its files: an interrupted
conversion redoes exactly the shards it had not finished.
"""

import concurrent.futures
import hashlib
import json
import math
import numbers
import os
import re
import time

import numpy as np

from keras_vae_layers._io import atomic_path
from keras_vae_layers._io import remove_stale_temporaries
from keras_vae_layers._io import write_json_atomic
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._version import __version__
from keras_vae_layers.datasets._checks import check_seed
from keras_vae_layers.datasets._checks import import_tensorflow
from keras_vae_layers.datasets.image_folder import _COLOR_MODES
from keras_vae_layers.datasets.image_folder import _CROPS
from keras_vae_layers.datasets.image_folder import IMAGE_EXTENSIONS
from keras_vae_layers.datasets.image_folder import _check_extensions
from keras_vae_layers.datasets.image_folder import _check_folder
from keras_vae_layers.datasets.image_folder import _check_num_workers
from keras_vae_layers.datasets.image_folder import _check_size_pair
from keras_vae_layers.datasets.image_folder import _decode_into
from keras_vae_layers.datasets.image_folder import _list_image_files
from keras_vae_layers.datasets.image_folder import _log
from keras_vae_layers.datasets.image_folder import _warn_unreadable

__all__ = ["write_image_shards", "load_image_shards", "open_image_shards",
           "ShardedImages", "MANIFEST_NAME", "SHARD_FORMAT_VERSION"]

MANIFEST_NAME = "manifest.json"
"""File name of the manifest in a shard directory."""

SHARD_FORMAT_VERSION = 1
"""Version of the shard directory format this package writes and reads."""

_FORMAT = "keras_vae_layers.image_shards"
_SHARD_RE = re.compile(r"^shard-\d{5,}\.npy$")
# Settings a directory is written with; a rerun or a resume must match them.
_SETTINGS = ("size", "crop", "color_mode", "images_per_shard", "recursive",
             "extensions")
_PROGRESS_SECONDS = 5.0
# Decoding blocks within a shard: bounded pending futures, progress points.
_BLOCK = 1024
_HASH_CHUNK = 1 << 22


def _shard_name(index):
    return f"shard-{index:05d}.npy"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _relative(file, folder):
    """`file` relative to `folder`. The listing joins every name onto
    `folder` as given, so cutting the prefix is exact (and far cheaper than
    `os.path.relpath` on a million names)."""
    prefix = os.path.join(folder, "")
    return file[len(prefix):] if file.startswith(prefix) else (
        os.path.relpath(file, folder))


def _listing_digest(files, folder):
    """Fingerprint of the sorted relative file names (what shard k holds)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(_relative(file, folder).encode("utf-8",
                                                     "surrogateescape"))
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------


def _load_manifest(out_dir, owner):
    """The parsed manifest of `out_dir`, or `None` when there is none.

    Raises `ValueError` naming the file when it is not a shard manifest of
    this package (unreadable, not JSON, another format).
    """
    path = os.path.join(out_dir, MANIFEST_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{owner}: {path!r} is not a readable shard manifest "
            f"({type(err).__name__}: {err})."
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        found = (manifest.get("format") if isinstance(manifest, dict)
                 else type(manifest).__name__)
        raise ValueError(
            f"{owner}: {path!r} is not a keras_vae_layers image-shard "
            f"manifest (its 'format' is {found!r}, expected {_FORMAT!r})."
        )
    return manifest


def _check_manifest(manifest, out_dir, owner, hint):
    """Raises `ValueError` naming the manifest when it is of another format
    version or malformed (fields missing or of the wrong type)."""
    path = os.path.join(out_dir, MANIFEST_NAME)
    version = manifest.get("format_version")
    if version != SHARD_FORMAT_VERSION:
        raise ValueError(
            f"{owner}: {path!r} was written in shard format version "
            f"{version!r} (by keras_vae_layers "
            f"{manifest.get('package_version')!r}); this keras_vae_layers "
            f"({__version__}) reads format version {SHARD_FORMAT_VERSION}. "
            f"{hint}"
        )
    try:
        _check_manifest_fields(manifest)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{owner}: {path!r} is malformed ({type(err).__name__}: {err}). "
            f"{hint}"
        ) from None


def _check_manifest_fields(manifest):
    settings = manifest["settings"]
    if not isinstance(settings, dict) or set(settings) != set(_SETTINGS):
        raise ValueError(f"'settings' must hold exactly {_SETTINGS}")
    shape = manifest["record_shape"]
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(v, int) and v > 0 for v in shape)):
        raise ValueError(f"bad 'record_shape' {shape!r}")
    for key in ("header_bytes", "count"):
        if not isinstance(manifest[key], int) or manifest[key] < 0:
            raise ValueError(f"bad {key!r} {manifest[key]!r}")
    if not isinstance(manifest["complete"], bool):
        raise ValueError("'complete' must be true or false")
    if not isinstance(manifest["source"]["listing_sha256"], str):
        raise ValueError("bad 'source'")
    for entry in manifest["shards"]:
        # A plain name: a manifest must not point outside its directory.
        if not _SHARD_RE.match(entry["file"]):
            raise ValueError(f"bad shard file name {entry['file']!r}")
        for key in ("index", "count", "bytes", "header_bytes"):
            if not isinstance(entry[key], int) or entry[key] < 0:
                raise ValueError(f"bad {key!r} in shard entry {entry!r}")
        if (not isinstance(entry["sha256"], str)
                or not isinstance(entry["skipped"], list)):
            raise ValueError(f"bad 'sha256' or 'skipped' in shard entry "
                             f"{entry!r}")
    if manifest["complete"] and (
            sum(e["count"] for e in manifest["shards"]) != manifest["count"]):
        raise ValueError("the shard counts do not add up to 'count'")


def _record_bytes(manifest):
    return int(np.prod(manifest["record_shape"]))


def _read_npy_header(f):
    """`(version, shape, fortran_order, dtype)` of an open `.npy` file,
    leaving the file at the first data byte."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        header = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version} is not used here")
    return (version,) + header


def _check_shard(out_dir, entry, manifest, verify, owner):
    """Raises if a shard file is missing, of the wrong size or header, or
    (with `verify`) its SHA-256 differs from the manifest's."""
    path = os.path.join(out_dir, entry["file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{owner}: shard {path!r} listed in the manifest is missing.")
    expected = (manifest["header_bytes"]
                + entry["count"] * _record_bytes(manifest))
    actual = os.path.getsize(path)
    if actual != expected or actual != entry["bytes"]:
        raise ValueError(
            f"{owner}: shard {path!r} has {actual} bytes, expected "
            f"{expected} ({entry['count']} records): truncated or corrupt."
        )
    try:
        with open(path, "rb") as f:
            _, shape, fortran, dtype = _read_npy_header(f)
            offset = f.tell()
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{owner}: shard {path!r} has no valid .npy header ({err})."
        ) from None
    want = (entry["count"],) + tuple(manifest["record_shape"])
    if (shape != want or fortran or dtype != np.uint8
            or offset != manifest["header_bytes"]):
        raise ValueError(
            f"{owner}: shard {path!r} holds {dtype} {shape} (data at byte "
            f"{offset}), expected uint8 {want} at byte "
            f"{manifest['header_bytes']}: not the file the manifest lists."
        )
    if verify and _sha256(path) != entry["sha256"]:
        raise ValueError(
            f"{owner}: shard {path!r} does not match its checksum in the "
            "manifest (SHA-256): the file is corrupt or was replaced."
        )


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def _shrink_npy(path, count, record_bytes):
    """Rewrites a `.npy` header for `count` records and cuts the file there.

    numpy pads `.npy` headers with room for the first axis to change
    (`GROWTH_AXIS_MAX_DIGITS`), so the header keeps its length.
    """
    with open(path, "r+b") as f:
        version, shape, fortran, dtype = _read_npy_header(f)
        offset = f.tell()
        f.seek(0)
        header = {"descr": np.lib.format.dtype_to_descr(dtype),
                  "fortran_order": fortran,
                  "shape": (count,) + tuple(shape[1:])}
        if version == (1, 0):
            np.lib.format.write_array_header_1_0(f, header)
        else:
            np.lib.format.write_array_header_2_0(f, header)
        if f.tell() != offset:
            raise RuntimeError(
                f"write_image_shards: the rewritten .npy header of {path!r} "
                f"is {f.tell()} bytes, not {offset}.")
        f.truncate(offset + count * record_bytes)


class _Progress:
    """Throttled progress lines on stderr (at most one per few seconds)."""

    def __init__(self, owner, total, done, verbose):
        self.owner, self.total, self.verbose = owner, total, verbose
        self.start_done = self.done = done
        self.start = self.last = time.perf_counter()

    def rate(self):
        """Files per second decoded in this run so far."""
        elapsed = time.perf_counter() - self.start
        return (self.done - self.start_done) / max(elapsed, 1e-9)

    def update(self, done, shards_done, num_shards):
        self.done = done
        now = time.perf_counter()
        if not self.verbose or now - self.last < _PROGRESS_SECONDS:
            return
        self.last = now
        rate = self.rate()
        eta = (f", about {(self.total - done) / rate:.0f} s left"
               if rate > 0 and done < self.total else "")
        _log(f"{self.owner}: {done}/{self.total} files, {shards_done}/"
             f"{num_shards} shards ({rate:.0f} files/s{eta}).")


def _write_shard(path, files, shape, decode_args, pool, failed, on_block):
    """Decodes `files` straight into a memory-mapped `.npy` written atomically.

    Returns `(count, sha256, bytes)` of the shard written: `count` images
    (unreadable files are skipped and appended to `failed`), the file's
    checksum and size.
    """
    record_bytes = int(np.prod(shape))
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                        shape=(len(files),) + shape)
        try:
            ok = np.zeros(len(files), dtype=bool)
            for start in range(0, len(files), _BLOCK):
                block = slice(start, min(start + _BLOCK, len(files)))
                ok[block] = _decode_into(pool, files[block], out[block],
                                         *decode_args, failed)
                on_block(block.stop)
            count = int(ok.sum())
            # Close the gaps of skipped files in place, one record at a time
            # (moving forward, j <= i): no second shard-sized buffer.
            for j, i in enumerate(np.flatnonzero(ok)):
                if i != j:
                    out[j] = out[i]
            out.flush()
        finally:
            del out  # unmaps the file: its pages leave this process' memory
        if count < len(files):
            _shrink_npy(tmp, count, record_bytes)
        return count, _sha256(tmp), os.path.getsize(tmp)


def _settings_differ(stored, settings):
    return [f"{key}={stored.get(key)!r} (this call: {settings[key]!r})"
            for key in _SETTINGS if stored.get(key) != settings[key]]


def _existing_state(out_dir, settings, listing, overwrite, owner):
    """The manifest to resume from (or `None` to start afresh).

    Refuses a directory that is not ours, or ours but written with other
    settings, from another listing of the folder, or (unfinished) by another
    package version, unless `overwrite` (never for a foreign manifest).
    """
    manifest = _load_manifest(out_dir, owner)
    if manifest is None:
        others = sorted(os.listdir(out_dir))
        if others:
            raise ValueError(
                f"{owner}: `out_dir` {out_dir!r} is not empty and holds no "
                f"{MANIFEST_NAME} (found {', '.join(others[:3])}"
                f"{' ...' if len(others) > 3 else ''}); choose an empty or "
                "new folder."
            )
        return None
    if overwrite:
        return None
    path = os.path.join(out_dir, MANIFEST_NAME)
    hint = ("Pass `overwrite=True` to convert anew into it, or choose "
            "another `out_dir`.")
    _check_manifest(manifest, out_dir, owner, hint)
    differ = _settings_differ(manifest["settings"], settings)
    if differ:
        raise ValueError(
            f"{owner}: {path!r} was written with other settings: "
            f"{', '.join(differ)}. {hint}"
        )
    source = manifest["source"]
    if source["listing_sha256"] != listing["listing_sha256"]:
        raise ValueError(
            f"{owner}: the folder's file list changed since {path!r} was "
            f"written ({source.get('files')} files then, {listing['files']} "
            f"now). {hint}"
        )
    if not manifest["complete"] and manifest["package_version"] != __version__:
        raise ValueError(
            f"{owner}: {path!r} is an unfinished conversion by "
            f"keras_vae_layers {manifest['package_version']!r} (this is "
            f"{__version__}): its decoding may differ, so new shards are not "
            f"mixed with its own. {hint}"
        )
    return manifest


def _kept_shards(out_dir, manifest, num_shards, owner, verbose):
    """Shard entries of `manifest` whose files pass the check, by index.

    A complete manifest's shards get the quick check (size and header); an
    unfinished one's the full checksum. Failing shards are rewritten.
    """
    kept = {}
    for entry in manifest["shards"]:
        if entry["index"] >= num_shards:
            continue
        try:
            _check_shard(out_dir, entry, manifest,
                         verify=not manifest["complete"], owner=owner)
        except (OSError, ValueError) as err:
            if verbose:
                _log(f"{err} It is written again.")
            continue
        kept[entry["index"]] = entry
    return kept


def write_image_shards(folder, out_dir, size=(96, 96), crop="center",
                       color_mode="rgb", images_per_shard=10_000,
                       num_workers=None, recursive=False,
                       extensions=IMAGE_EXTENSIONS, overwrite=False,
                       verbose=True):
    """Converts a folder of images into `uint8` shards on disk, resumably.

    The files are those `list_image_files` lists, decoded by the rules of
    `load_image_folder` (`decode_image`: EXIF rotation, 16-bit to 8-bit,
    centre crop, Lanczos resize); unreadable files are skipped with one
    warning, as there. Shard `k` (`shard-0000k.npy`, a plain `.npy` array
    `(n_k, height, width, channels)`) holds the readable images among files
    `k * images_per_shard` to `(k + 1) * images_per_shard - 1`, in sorted
    file order.

    Each shard is decoded straight into a memory map of its file, so memory
    stays bounded by one shard (`images_per_shard * height * width *
    channels` bytes, about 276 MB for the defaults) whatever the folder
    size, and written atomically; `manifest.json` (image count and shape,
    per-shard sizes and SHA-256 checksums, the settings, the package and
    format versions) is updated after every shard and marked complete last.

    Rerunning after an interruption resumes: shards already listed are
    verified by checksum and kept, the others are written (never twice).
    Rerunning on a complete directory with the same settings does nothing
    (it checks the shards' sizes and headers and says so).

    Args:
        folder: Folder of images to convert.
        out_dir: Shard directory: new, empty, or one this function wrote
            with the same settings (then it resumes or does nothing). Must
            not lie inside `folder`.
        size: Output `(height, width)` in pixels, or an int for a square.
        crop: `"center"` or `"none"`, as in `load_image_folder`.
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).
        images_per_shard: Files per shard, an int >= 1. Around 10,000 keeps
            shards at 100-500 MB: few enough files to open, enough of them
            to spread over workers (each `tf.distribute` worker reads whole
            files).
        num_workers: Decoding threads; defaults to the CPU count, at most 8.
        recursive: If `True`, also read sub-folders.
        extensions: Lower-case file suffixes to read.
        overwrite: If `True`, whatever `out_dir` holds from an earlier
            conversion (other settings, another file list, another format
            version) is replaced by a new conversion instead of refused. A
            manifest that is not ours is refused all the same.
        verbose: If `True`, print progress lines to stderr (at most one
            every 5 seconds, plus the first and the last).

    Returns:
        The manifest (a dict): `count`, `record_shape`, `shards` (`file`,
        `count`, `bytes`, `sha256`, ... per shard), `settings`, `skipped`
        (relative names of the unreadable files), ...

    Raises:
        FileNotFoundError: If `folder` does not exist.
        ValueError: On bad arguments, no readable image, `out_dir` inside
            `folder`, a non-empty `out_dir` without a manifest, or a shard
            directory from other settings / another file list / another
            format version.

    Example:

    >>> write_image_shards("img_align_celeba", "celeba64", size=64)
    >>> ds = load_image_shards("celeba64", batch_size=128, seed=0)
    """
    owner = "write_image_shards"
    size = _check_size_pair(size, owner)
    check_choice(crop, "crop", _CROPS, owner)
    check_choice(color_mode, "color_mode", tuple(_COLOR_MODES), owner)
    images_per_shard = check_positive_int(images_per_shard,
                                          "images_per_shard", owner)
    num_workers = _check_num_workers(num_workers, owner)
    extensions = _check_extensions(extensions, owner)
    folder = _check_folder(folder, owner)
    out_dir = os.fspath(out_dir)
    real_folder = os.path.realpath(folder)
    real_out = os.path.realpath(out_dir)
    if os.path.commonpath([real_folder, real_out]) == real_folder:
        raise ValueError(
            f"{owner}: `out_dir` {out_dir!r} lies inside the image folder "
            f"{folder!r}; choose a folder outside it."
        )
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{owner}: `out_dir` {out_dir!r} is not a folder.")

    files = _list_image_files(folder, recursive, extensions)
    if not files:
        raise ValueError(
            f"{owner}: no image files in {folder!r} (looked for extensions "
            f"{extensions}{', recursively' if recursive else ''})."
        )
    settings = {"size": list(size), "crop": crop, "color_mode": color_mode,
                "images_per_shard": images_per_shard,
                "recursive": bool(recursive), "extensions": list(extensions)}
    listing = {"folder": os.path.abspath(folder), "files": len(files),
               "listing_sha256": _listing_digest(files, folder)}
    num_shards = math.ceil(len(files) / images_per_shard)
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)
    previous = _existing_state(out_dir, settings, listing, overwrite, owner)
    kept = ({} if previous is None
            else _kept_shards(out_dir, previous, num_shards, owner, verbose))
    if previous is not None and previous["complete"] and len(kept) == len(
            previous["shards"]):
        if verbose:
            _log(f"{owner}: {out_dir!r} already holds the {previous['count']}"
                 f" images of {folder!r} in {len(kept)} shards with these "
                 "settings; nothing to do.")
        return previous

    channels = 3 if color_mode == "rgb" else 1
    shape = (size[0], size[1], channels)
    manifest = {
        "format": _FORMAT, "format_version": SHARD_FORMAT_VERSION,
        "package_version": __version__, "settings": settings,
        "source": listing, "record_shape": list(shape), "dtype": "uint8",
        "header_bytes": 0, "count": 0, "complete": False, "shards": [],
        "skipped": [],
    }
    manifest_path = os.path.join(out_dir, MANIFEST_NAME)

    def save(complete=False):
        entries = [kept[k] for k in sorted(kept)]
        manifest.update(
            complete=complete, shards=entries,
            count=sum(e["count"] for e in entries),
            skipped=[name for e in entries for name in e["skipped"]])
        if entries:
            manifest["header_bytes"] = entries[0]["header_bytes"]
        write_json_atomic(manifest_path, manifest)

    # Mark the directory unfinished (and ours) before touching any shard;
    # shard files no entry lists are from an earlier run or other settings.
    save()
    _remove_shards(out_dir, keep={kept[k]["file"] for k in kept})

    if verbose:
        resumed = f", keeping {len(kept)} finished shards" if kept else ""
        _log(f"{owner}: converting {len(files)} files from {folder!r} into "
             f"{num_shards} shards of up to {images_per_shard} images "
             f"{shape[0]}x{shape[1]}x{shape[2]} in {out_dir!r}{resumed}.")
    done_files = sum(min(images_per_shard, len(files) - k * images_per_shard)
                     for k in kept)
    progress = _Progress(owner, len(files), done_files, verbose)
    failed = []
    decode_args = (size, crop, _COLOR_MODES[color_mode])
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        for k in (k for k in range(num_shards) if k not in kept):
            start = k * images_per_shard
            shard_files = files[start:start + images_per_shard]
            shard_failed = []
            count, digest, nbytes = _write_shard(
                os.path.join(out_dir, _shard_name(k)), shard_files, shape,
                decode_args, pool, shard_failed,
                lambda stop: progress.update(done_files + stop, len(kept),
                                             num_shards))
            done_files += len(shard_files)
            failed.extend(shard_failed)
            kept[k] = {
                "index": k, "file": _shard_name(k), "count": count,
                "bytes": nbytes, "sha256": digest,
                "header_bytes": nbytes - count * int(np.prod(shape)),
                "files": [start, start + len(shard_files)],
                "skipped": sorted(_relative(f, folder)
                                  for f, _ in shard_failed),
            }
            save()
            progress.update(done_files, len(kept), num_shards)
    _warn_unreadable(failed, folder, owner)
    if sum(e["count"] for e in kept.values()) == 0:
        # Nothing to keep: leave no directory that looks like a conversion.
        os.remove(manifest_path)
        _remove_shards(out_dir, keep=())
        if created:
            os.rmdir(out_dir)
        raise ValueError(
            f"{owner}: none of the {len(files)} image files in {folder!r} "
            "could be read."
        )
    if len({e["header_bytes"] for e in kept.values()}) != 1:
        raise RuntimeError(
            f"{owner}: shards of {out_dir!r} have .npy headers of different "
            "lengths; convert anew with `overwrite=True`.")
    save(complete=True)
    if verbose:
        _log(f"{owner}: wrote {manifest['count']} images in {num_shards} "
             f"shards to {out_dir!r} ({progress.rate():.0f} files/s).")
    return manifest


def _remove_shards(out_dir, keep):
    """Deletes the shard files of `out_dir` whose names are not in `keep`."""
    for name in os.listdir(out_dir):
        if _SHARD_RE.match(name) and name not in keep:
            os.remove(os.path.join(out_dir, name))


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


def _open_manifest(out_dir, owner, verify, size, crop, color_mode):
    """The manifest of a complete shard directory, after checking it, the
    expected settings and every shard (size and header; with `verify`, its
    checksum too)."""
    expected = {}
    if size is not None:
        expected["size"] = list(_check_size_pair(size, owner))
    if crop is not None:
        expected["crop"] = check_choice(crop, "crop", _CROPS, owner)
    if color_mode is not None:
        expected["color_mode"] = check_choice(
            color_mode, "color_mode", tuple(_COLOR_MODES), owner)
    out_dir = os.fspath(out_dir)
    if not os.path.isdir(out_dir):
        raise FileNotFoundError(
            f"{owner}: shard directory {out_dir!r} does not exist.")
    manifest = _load_manifest(out_dir, owner)
    path = os.path.join(out_dir, MANIFEST_NAME)
    if manifest is None:
        raise FileNotFoundError(
            f"{owner}: {path!r} does not exist: {out_dir!r} is not a shard "
            "directory written by `write_image_shards`."
        )
    _check_manifest(manifest, out_dir, owner, hint=(
        "Convert the image folder again with `write_image_shards`."))
    settings = manifest["settings"]
    if not manifest["complete"]:
        total = math.ceil(manifest["source"]["files"]
                          / settings["images_per_shard"])
        raise ValueError(
            f"{owner}: {out_dir!r} holds an unfinished conversion "
            f"({len(manifest['shards'])} of {total} shards); rerun "
            "`write_image_shards` with the same settings to finish it."
        )
    differ = [f"{key}={settings[key]!r} (expected {value!r})"
              for key, value in expected.items() if settings[key] != value]
    if differ:
        raise ValueError(
            f"{owner}: {path!r} was written with {', '.join(differ)}.")
    for entry in manifest["shards"]:
        _check_shard(out_dir, entry, manifest, verify, owner)
    return manifest


class ShardedImages:
    """A shard directory as one read-only `uint8` array, memory-mapped.

    Returned by `open_image_shards`. Supports `len()`, `shape`, `dtype`,
    `ndim` and indexing by an int, a slice or a 1-D integer array (the
    result is a new in-memory numpy array); the shards are mapped on first
    use, one memory map (and file descriptor) per shard. Pickling keeps the
    paths only (worker processes map the files themselves). Pass it to
    `ImageBatches` for a backend-neutral, globally shuffled batch source.

    Example:

    >>> images = open_image_shards("celeba64")
    >>> images.shape, images[[5, 70_000]].shape
    ((202599, 64, 64, 3), (2, 64, 64, 3))
    """

    def __init__(self, out_dir, manifest):
        self.out_dir = os.fspath(out_dir)
        self.manifest = manifest
        # Empty shards (every file unreadable) cannot be mapped: left out.
        entries = [e for e in manifest["shards"] if e["count"] > 0]
        self.files = [os.path.join(self.out_dir, e["file"]) for e in entries]
        self._counts = [e["count"] for e in entries]
        self._ends = np.cumsum(self._counts)
        self._starts = self._ends - self._counts
        self._header_bytes = manifest["header_bytes"]
        self.shape = (int(manifest["count"]),) + tuple(
            manifest["record_shape"])
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self._maps = [None] * len(self.files)

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return (f"ShardedImages({self.out_dir!r}, shape={self.shape}, "
                f"shards={len(self.files)})")

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_maps"] = [None] * len(self.files)
        return state

    def _map(self, s):
        if self._maps[s] is None:
            self._maps[s] = np.memmap(
                self.files[s], dtype=np.uint8, mode="r",
                offset=self._header_bytes,
                shape=(self._counts[s],) + self.shape[1:])
        return self._maps[s]

    def __getitem__(self, key):
        n = self.shape[0]
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if not -n <= key < n:
                raise IndexError(
                    f"ShardedImages: index {key} out of range for {n} "
                    "images.")
            return self[np.array([key % n])][0]
        if isinstance(key, slice):
            key = np.arange(*key.indices(n))
        idx = np.asarray(key)
        if idx.ndim != 1 or not (idx.dtype.kind in "iu" or idx.size == 0):
            raise TypeError(
                "ShardedImages: index with an int, a slice or a 1-D integer "
                f"array, received {type(key).__name__}"
                f"{f' of shape {idx.shape}' if idx.ndim != 1 else ''}.")
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(
                f"ShardedImages: index out of range for {n} images.")
        idx = idx.astype(np.int64) % max(n, 1)
        out = np.empty((idx.size,) + self.shape[1:], np.uint8)
        shard_of = np.searchsorted(self._ends, idx, side="right")
        for s in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == s)
            out[rows] = self._map(s)[idx[rows] - self._starts[s]]
        return out


def open_image_shards(out_dir, verify=False, size=None, crop=None,
                      color_mode=None):
    """Opens a shard directory as one memory-mapped `uint8` array-like.

    Needs no TensorFlow: for the JAX and PyTorch backends, wrap it in
    `ImageBatches`, which gathers each (globally shuffled) batch from the
    memory maps and scales it to float32 [0, 1].

    Checks on open, before anything is read: the manifest is a complete one
    of this package's shard format, the expected settings match, and every
    shard is present with the size and `.npy` header the manifest lists.
    `verify=True` also compares every shard's SHA-256 (reads the whole
    directory once: about 1 GB/s from the page cache).

    Args:
        out_dir: Directory written by `write_image_shards`.
        verify: If `True`, also check every shard's checksum.
        size: Optional expected `(height, width)` (or int); a directory
            written with another size is refused.
        crop: Optional expected crop (`"center"` or `"none"`).
        color_mode: Optional expected color mode (`"rgb"`, `"grayscale"`).

    Returns:
        A `ShardedImages` of shape `(count, height, width, channels)`.

    Raises:
        FileNotFoundError: If `out_dir`, its manifest or a shard is missing.
        ValueError: If the manifest is not ours, from another format
            version, unfinished or of other settings, or a shard is
            truncated or corrupt.

    Example:

    >>> images = open_image_shards("celeba64", size=64)
    >>> batches = ImageBatches(images, batch_size=128, seed=0)
    >>> vae.fit(batches, epochs=10, shuffle=False)
    """
    manifest = _open_manifest(out_dir, "open_image_shards", verify, size,
                              crop, color_mode)
    return ShardedImages(out_dir, manifest)


def load_image_shards(out_dir, batch_size, shuffle=True, seed=None,
                      repeat=False, shuffle_buffer=None, drop_remainder=False,
                      verify=False, size=None, crop=None, color_mode=None):
    """Streams a shard directory as a `tf.data.Dataset` of float32 batches.

    The pipeline: the shard files (shuffled per epoch with `shuffle`) are
    read 8 at a time in parallel by `tf.data.FixedLengthRecordDataset`
    (one image per record, the `.npy` header skipped), their records
    interleaved and mixed in a bounded shuffle buffer, batched, decoded to
    `uint8` and scaled to [0, 1] per batch, and prefetched. Without
    `shuffle`, the images come in conversion order (sorted file names).

    Under `tf.distribute` (e.g. `MultiWorkerMirroredStrategy`), the dataset
    is auto-sharded by file: each worker reads whole shards of its own
    (`AutoShardPolicy.FILE`, which `AUTO` selects here), so there should be
    at least as many shards as workers.

    Checks on open as `open_image_shards` (with `verify`, full checksums).

    Args:
        out_dir: Directory written by `write_image_shards`.
        batch_size: Batch size, an int >= 1.
        shuffle: Whether to shuffle (file order, then a record buffer).
        seed: Optional int >= 0 for both shuffles.
        repeat: If `True`, repeat forever (then pass `steps_per_epoch`).
        shuffle_buffer: Records in the shuffle buffer. Defaults to about
            256 MB of records (21,000 at 64x64x3, 9,500 at 96x96x3), at
            least one batch and at most all images.
        drop_remainder: Whether to drop the last, smaller batch.
        verify: If `True`, check every shard's checksum on open.
        size, crop, color_mode: Optional expected settings (see
            `open_image_shards`).

    Returns:
        A `tf.data.Dataset` of float32 tensors `(batch, h, w, c)`, the
        batch `x` alone as `VAEModel.fit(x)` expects.

    Raises:
        ImportError: Without TensorFlow (use `open_image_shards` with
            `ImageBatches`).
        FileNotFoundError, ValueError: As `open_image_shards`.

    Example:

    >>> ds = load_image_shards("celeba64", batch_size=128, seed=0)
    >>> vae.fit(ds, epochs=10)
    """
    owner = "load_image_shards"
    batch_size = check_positive_int(batch_size, "batch_size", owner)
    seed = check_seed(seed, owner)
    manifest = _open_manifest(out_dir, owner, verify, size, crop, color_mode)
    tf = import_tensorflow(owner)
    record_shape = tuple(manifest["record_shape"])
    record_bytes = _record_bytes(manifest)
    count = manifest["count"]
    if shuffle_buffer is None:
        shuffle_buffer = min(count, max(batch_size,
                                        (256 << 20) // record_bytes))
    shuffle_buffer = check_positive_int(shuffle_buffer, "shuffle_buffer",
                                        owner)
    files = [os.path.join(os.fspath(out_dir), e["file"])
             for e in manifest["shards"] if e["count"] > 0]
    header_bytes = manifest["header_bytes"]

    def read(file):
        return tf.data.FixedLengthRecordDataset(
            file, record_bytes, header_bytes=header_bytes,
            buffer_size=1 << 20)

    def to_float(records):
        batch = tf.reshape(tf.io.decode_raw(records, tf.uint8),
                           (-1,) + record_shape)
        batch.set_shape((batch_size if drop_remainder else None,)
                        + record_shape)
        return tf.cast(batch, tf.float32) * (1.0 / 255.0)

    # A dataset of file names feeding a reader: what tf.distribute's
    # file-level auto-sharding looks for.
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(read, cycle_length=min(len(files), 8),
                           block_length=1,
                           num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed,
                        reshuffle_each_iteration=True)
    else:
        ds = ds.interleave(read, cycle_length=1)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
