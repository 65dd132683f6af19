"""The shard directory format: names, manifest, checks (private)."""

import hashlib
import json
import os
import re

import numpy as np

from keras_vae_layers._version import __version__


MANIFEST_NAME = "manifest.json"
"""File name of the manifest in a shard directory."""

SHARD_FORMAT_VERSION = 1
"""Version of the shard directory format this package writes and reads."""

FORMAT = "keras_vae_layers.image_shards"
SHARD_RE = re.compile(r"^shard-\d{5,}\.npy$")
# Settings a directory is written with; a rerun or a resume must match them.
SETTINGS = ("size", "crop", "color_mode", "images_per_shard", "recursive",
             "extensions")
PROGRESS_SECONDS = 5.0
# Decoding blocks within a shard: bounded pending futures, progress points.
BLOCK = 1024
HASH_CHUNK = 1 << 22


def shard_name(index):
    return f"shard-{index:05d}.npy"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def relative(file, folder):
    """`file` relative to `folder`. The listing joins every name onto
    `folder` as given, so cutting the prefix is exact (and far cheaper than
    `os.path.relpath` on a million names)."""
    prefix = os.path.join(folder, "")
    return file[len(prefix):] if file.startswith(prefix) else (
        os.path.relpath(file, folder))


def listing_digest(files, folder):
    """Fingerprint of the sorted relative file names (what shard k holds)."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(relative(file, folder).encode("utf-8",
                                                     "surrogateescape"))
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------


def load_manifest(out_dir, owner):
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = (manifest.get("format") if isinstance(manifest, dict)
                 else type(manifest).__name__)
        raise ValueError(
            f"{owner}: {path!r} is not a keras_vae_layers image-shard "
            f"manifest (its 'format' is {found!r}, expected {FORMAT!r})."
        )
    return manifest


def check_manifest(manifest, out_dir, owner, hint):
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
        check_manifest_fields(manifest)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{owner}: {path!r} is malformed ({type(err).__name__}: {err}). "
            f"{hint}"
        ) from None


def check_manifest_fields(manifest):
    settings = manifest["settings"]
    if not isinstance(settings, dict) or set(settings) != set(SETTINGS):
        raise ValueError(f"'settings' must hold exactly {SETTINGS}")
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
        if not SHARD_RE.match(entry["file"]):
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


def manifest_record_bytes(manifest):
    return int(np.prod(manifest["record_shape"]))


def read_npy_header(f):
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


def check_shard(out_dir, entry, manifest, verify, owner):
    """Raises if a shard file is missing, of the wrong size or header, or
    (with `verify`) its SHA-256 differs from the manifest's."""
    path = os.path.join(out_dir, entry["file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{owner}: shard {path!r} listed in the manifest is missing.")
    expected = (manifest["header_bytes"]
                + entry["count"] * manifest_record_bytes(manifest))
    actual = os.path.getsize(path)
    if actual != expected or actual != entry["bytes"]:
        raise ValueError(
            f"{owner}: shard {path!r} has {actual} bytes, expected "
            f"{expected} ({entry['count']} records): truncated or corrupt."
        )
    try:
        with open(path, "rb") as f:
            _, shape, fortran, dtype = read_npy_header(f)
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
    if verify and sha256(path) != entry["sha256"]:
        raise ValueError(
            f"{owner}: shard {path!r} does not match its checksum in the "
            "manifest (SHA-256): the file is corrupt or was replaced."
        )
