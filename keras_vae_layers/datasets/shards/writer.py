"""`write_image_shards`: an image folder into resumable `.npy` shards."""

import concurrent.futures
import math
import os
import time

import numpy as np

from keras_vae_layers.io import atomic_path
from keras_vae_layers.io import remove_stale_temporaries
from keras_vae_layers.io import write_json_atomic
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int
from keras_vae_layers._version import __version__
from keras_vae_layers.datasets.image_folder import COLOR_MODES
from keras_vae_layers.datasets.image_folder import CROPS
from keras_vae_layers.datasets.image_folder import IMAGE_EXTENSIONS
from keras_vae_layers.datasets.image_folder import check_extensions
from keras_vae_layers.datasets.image_folder import check_folder
from keras_vae_layers.datasets.image_folder import check_num_workers
from keras_vae_layers.datasets.image_folder import check_size_pair
from keras_vae_layers.datasets.image_folder import decode_into
from keras_vae_layers.datasets.image_folder import scan_image_files
from keras_vae_layers.datasets.image_folder import log
from keras_vae_layers.datasets.image_folder import warn_unreadable
from keras_vae_layers.datasets.shards._format import MANIFEST_NAME
from keras_vae_layers.datasets.shards._format import SHARD_FORMAT_VERSION
from keras_vae_layers.datasets.shards._format import BLOCK
from keras_vae_layers.datasets.shards._format import FORMAT
from keras_vae_layers.datasets.shards._format import PROGRESS_SECONDS
from keras_vae_layers.datasets.shards._format import SETTINGS
from keras_vae_layers.datasets.shards._format import SHARD_RE
from keras_vae_layers.datasets.shards._format import check_manifest
from keras_vae_layers.datasets.shards._format import check_shard
from keras_vae_layers.datasets.shards._format import listing_digest
from keras_vae_layers.datasets.shards._format import load_manifest
from keras_vae_layers.datasets.shards._format import read_npy_header
from keras_vae_layers.datasets.shards._format import relative
from keras_vae_layers.datasets.shards._format import sha256
from keras_vae_layers.datasets.shards._format import shard_name


def _shrink_npy(path, count, record_bytes):
    """Rewrites a `.npy` header for `count` records and cuts the file there.

    numpy pads `.npy` headers with room for the first axis to change
    (`GROWTH_AXIS_MAX_DIGITS`), so the header keeps its length.
    """
    with open(path, "r+b") as f:
        version, shape, fortran, dtype = read_npy_header(f)
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
        if not self.verbose or now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        rate = self.rate()
        eta = (f", about {(self.total - done) / rate:.0f} s left"
               if rate > 0 and done < self.total else "")
        log(f"{self.owner}: {done}/{self.total} files, {shards_done}/"
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
            for start in range(0, len(files), BLOCK):
                block = slice(start, min(start + BLOCK, len(files)))
                ok[block] = decode_into(pool, files[block], out[block],
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
        return count, sha256(tmp), os.path.getsize(tmp)


def _settings_differ(stored, settings):
    return [f"{key}={stored.get(key)!r} (this call: {settings[key]!r})"
            for key in SETTINGS if stored.get(key) != settings[key]]


def _existing_state(out_dir, settings, listing, overwrite, owner):
    """The manifest to resume from (or `None` to start afresh).

    Refuses a directory that is not ours, or ours but written with other
    settings, from another listing of the folder, or (unfinished) by another
    package version, unless `overwrite` (never for a foreign manifest).
    """
    manifest = load_manifest(out_dir, owner)
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
    check_manifest(manifest, out_dir, owner, hint)
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
            check_shard(out_dir, entry, manifest,
                         verify=not manifest["complete"], owner=owner)
        except (OSError, ValueError) as err:
            if verbose:
                log(f"{err} It is written again.")
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
    size = check_size_pair(size, owner)
    check_choice(crop, "crop", CROPS, owner)
    check_choice(color_mode, "color_mode", tuple(COLOR_MODES), owner)
    images_per_shard = check_positive_int(images_per_shard,
                                          "images_per_shard", owner)
    num_workers = check_num_workers(num_workers, owner)
    extensions = check_extensions(extensions, owner)
    folder = check_folder(folder, owner)
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

    files = scan_image_files(folder, recursive, extensions)
    if not files:
        raise ValueError(
            f"{owner}: no image files in {folder!r} (looked for extensions "
            f"{extensions}{', recursively' if recursive else ''})."
        )
    settings = {"size": list(size), "crop": crop, "color_mode": color_mode,
                "images_per_shard": images_per_shard,
                "recursive": bool(recursive), "extensions": list(extensions)}
    listing = {"folder": os.path.abspath(folder), "files": len(files),
               "listing_sha256": listing_digest(files, folder)}
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
            log(f"{owner}: {out_dir!r} already holds the {previous['count']}"
                 f" images of {folder!r} in {len(kept)} shards with these "
                 "settings; nothing to do.")
        return previous

    channels = 3 if color_mode == "rgb" else 1
    shape = (size[0], size[1], channels)
    manifest = {
        "format": FORMAT, "format_version": SHARD_FORMAT_VERSION,
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
        log(f"{owner}: converting {len(files)} files from {folder!r} into "
             f"{num_shards} shards of up to {images_per_shard} images "
             f"{shape[0]}x{shape[1]}x{shape[2]} in {out_dir!r}{resumed}.")
    done_files = sum(min(images_per_shard, len(files) - k * images_per_shard)
                     for k in kept)
    progress = _Progress(owner, len(files), done_files, verbose)
    failed = []
    decode_args = (size, crop, COLOR_MODES[color_mode])
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        for k in (k for k in range(num_shards) if k not in kept):
            start = k * images_per_shard
            shard_files = files[start:start + images_per_shard]
            shard_failed = []
            count, digest, nbytes = _write_shard(
                os.path.join(out_dir, shard_name(k)), shard_files, shape,
                decode_args, pool, shard_failed,
                lambda stop: progress.update(done_files + stop, len(kept),
                                             num_shards))
            done_files += len(shard_files)
            failed.extend(shard_failed)
            kept[k] = {
                "index": k, "file": shard_name(k), "count": count,
                "bytes": nbytes, "sha256": digest,
                "header_bytes": nbytes - count * int(np.prod(shape)),
                "files": [start, start + len(shard_files)],
                "skipped": sorted(relative(f, folder)
                                  for f, _ in shard_failed),
            }
            save()
            progress.update(done_files, len(kept), num_shards)
    warn_unreadable(failed, folder, owner)
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
        log(f"{owner}: wrote {manifest['count']} images in {num_shards} "
             f"shards to {out_dir!r} ({progress.rate():.0f} files/s).")
    return manifest


def _remove_shards(out_dir, keep):
    """Deletes the shard files of `out_dir` whose names are not in `keep`."""
    for name in os.listdir(out_dir):
        if SHARD_RE.match(name) and name not in keep:
            os.remove(os.path.join(out_dir, name))
