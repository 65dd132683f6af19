"""Folders of image files (e.g. CelebA) as one `uint8` array.

`list_image_files` and `decode_image` hold the listing and decoding rules
(centre crop, Lanczos resize, EXIF rotation, 16-bit to 8-bit, unreadable
files skipped); `load_image_folder` runs them over a folder with a thread
pool, progress output and an atomic on-disk cache.
"""

import concurrent.futures
import json
import numbers
import os
import sys
import time
import warnings

import numpy as np

from keras_vae_layers.io import atomic_path
from keras_vae_layers._validation import check_choice
from keras_vae_layers._validation import check_positive_int

__all__ = ["IMAGE_EXTENSIONS", "list_image_files", "decode_image",
           "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
"""File suffixes `load_image_folder` reads by default."""

_CACHE_FORMAT = 1


def check_size_pair(size, owner):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(
            f"{owner}: `size` must be an int or a (height, width) pair, "
            f"received {size!r}."
        )
    return (check_positive_int(size[0], "size[0]", owner),
            check_positive_int(size[1], "size[1]", owner))


COLOR_MODES = {"rgb": "RGB", "grayscale": "L"}
CROPS = ("center", "none")

# Greyscale modes with more than 8 bits per sample. Pillow opens 16-bit
# greyscale PNGs as "I;16" (older versions: "I"), 16-bit TIFFs as "I;16" /
# "I;16B" and 16-bit PGMs as "I" (32-bit signed).
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def check_extensions(extensions, owner):
    if isinstance(extensions, str):
        extensions = (extensions,)
    try:
        extensions = tuple(extensions)
    except TypeError:
        extensions = None
    if not extensions or not all(isinstance(e, str) and e for e in extensions):
        raise ValueError(
            f"{owner}: `extensions` must be a non-empty sequence of file "
            f"suffixes such as '.png', received {extensions!r}."
        )
    return tuple(e.lower() for e in extensions)


def check_folder(path, owner):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{owner}: folder {path!r} does not exist.")
    if not os.path.isdir(path):
        raise ValueError(f"{owner}: `path` {path!r} is not a folder.")
    return path


def _is_listed_file(entry):
    """Whether a non-folder directory entry is a file to try decoding."""
    try:
        # Follows symlinks. FIFOs, sockets and devices are not files: opening
        # a FIFO would block the load forever.
        if entry.is_file():
            return True
        # A dangling symlink is listed so that the load reports it as
        # unreadable instead of dropping it without a word.
        return entry.is_symlink() and not os.path.exists(entry.path)
    except OSError:
        # A symlink loop (ELOOP) or an entry that just vanished: listed, and
        # reported like any other file that cannot be read.
        return True


def scan_image_files(path, recursive, extensions):
    found = []
    folders = [path]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            if folder == path:
                raise
            continue  # an unreadable sub-folder is skipped, as os.walk does
        for entry in entries:
            try:
                is_folder = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_folder = False
            if is_folder:
                # Symlinked folders are not followed (no cycles), as in
                # os.walk; they fail _is_listed_file below.
                if recursive:
                    folders.append(entry.path)
            elif (entry.name.lower().endswith(extensions)
                  and _is_listed_file(entry)):
                found.append(entry.path)
    # Sorted so that image i is the same file on every machine and every run.
    return sorted(found)


def list_image_files(path, recursive=False, extensions=IMAGE_EXTENSIONS):
    """Lists the image files of a folder, as `load_image_folder` reads them.

    A file is listed when its name ends with one of `extensions` (case
    insensitive) and it is a regular file or a symlink to one. Broken and
    looping symlinks are listed too, so that a load reports them as
    unreadable; FIFOs, sockets and devices are not. Symlinked sub-folders
    are not followed.

    Args:
        path: Folder to list.
        recursive: If `True`, also list sub-folders (unreadable sub-folders
            are skipped).
        extensions: File suffixes to list, e.g. `(".png", ".jpg")`.

    Returns:
        Sorted list of file paths (each `path` joined with the relative
        name), the order in which `load_image_folder` stacks the images.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If `path` is not a folder, or `extensions` is empty.

    Example:

    >>> files = list_image_files("img_align_celeba")
    >>> shard = [decode_image(f, size=64) for f in files[:1000]]
    """
    owner = "list_image_files"
    path = check_folder(path, owner)
    extensions = check_extensions(extensions, owner)
    return scan_image_files(path, recursive, extensions)


def _to_8_bit(img):
    """A wide greyscale image (`_WIDE_GRAY_MODES`) as 8-bit mode "L".

    Keeps the high byte (`v >> 8`). Pillow's `convert("L")` clips instead,
    which turns a 0..65535 ramp almost white. The high byte is what Pillow
    itself keeps of 16-bit RGB(A) PNGs, so greyscale and colour 16-bit files
    of one set agree; it differs from round(v / 257) by at most one level.
    """
    from PIL import Image

    arr = np.asarray(img)
    if img.mode == "I":  # 32-bit: read as 16-bit samples, clipped
        arr = np.clip(arr, 0, 65535)
    return Image.fromarray((arr >> 8).astype(np.uint8))


def _decode(file, size, crop, mode):
    from PIL import Image
    from PIL import ImageOps

    height, width = size
    with Image.open(file) as img:
        # Camera JPEGs store rotation in EXIF; honour it like viewers do.
        img = ImageOps.exif_transpose(img)
        if img.mode in _WIDE_GRAY_MODES:
            img = _to_8_bit(img)
        # Palette / alpha modes go through RGB first so that transparency
        # and palettes resolve the way viewers show them.
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        if img.mode != mode:
            img = img.convert(mode)
        src_w, src_h = img.size
        if crop == "center":
            # Largest centred box with the target aspect ratio, cut out
            # before resizing so the filter does not pull in pixels from
            # outside it (resize(box=...) would).
            target = width / height
            if src_w / src_h > target:
                crop_w = max(1, round(src_h * target))
                left = (src_w - crop_w) // 2
                box = (left, 0, left + crop_w, src_h)
            else:
                crop_h = max(1, round(src_w / target))
                top = (src_h - crop_h) // 2
                box = (0, top, src_w, top + crop_h)
            if box != (0, 0, src_w, src_h):
                img = img.crop(box)
        # LANCZOS keeps downscaled faces sharp; reducing_gap first shrinks
        # by an integer factor (much faster on big photos) with no visible
        # loss.
        img = img.resize((width, height), Image.Resampling.LANCZOS,
                         reducing_gap=3.0)
        arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def decode_image(file, size=(96, 96), crop="center", color_mode="rgb"):
    """Decodes one image file exactly as `load_image_folder` does.

    The rules, in order: the EXIF orientation is applied; 16-bit greyscale
    (Pillow modes `"I;16"`, `"I;16B"`, ..., and 32-bit `"I"` read as 16-bit
    samples) is reduced to 8 bits by keeping the high byte (`v >> 8`, what
    Pillow does for 16-bit RGB(A) PNGs); palette and alpha images are
    converted to RGB (alpha dropped); then to `color_mode`; then the image
    is centre-cropped to the aspect ratio of `size` (with `crop="center"`)
    and resized with a Lanczos filter.

    Args:
        file: Path or binary file object of an image Pillow can open.
        size: Output `(height, width)` in pixels, or an int for a square.
        crop: `"center"` crops to the target aspect ratio before resizing;
            `"none"` resizes the whole image (distorting its aspect ratio).
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).

    Returns:
        `uint8` array of shape `(height, width, channels)`.

    Raises:
        ValueError: On bad arguments.
        OSError: If `file` cannot be read or decoded (Pillow's
            `UnidentifiedImageError` is an `OSError`); a few corrupt files
            make Pillow raise other exceptions.

    Example:

    >>> image = decode_image("face.png", size=64)
    >>> image.shape, image.dtype
    ((64, 64, 3), dtype('uint8'))
    """
    owner = "decode_image"
    size = check_size_pair(size, owner)
    check_choice(crop, "crop", CROPS, owner)
    check_choice(color_mode, "color_mode", tuple(COLOR_MODES), owner)
    return _decode(file, size, crop, COLOR_MODES[color_mode])


def check_num_workers(num_workers, owner):
    """Decoding threads: `None` means the CPU count, at most 8."""
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, 8)
    return check_positive_int(num_workers, "num_workers", owner)


def decode_into(pool, files, out, size, crop, mode, failed):
    """Decodes `files[i]` into `out[i]` on the thread pool `pool`.

    Returns a boolean mask of the files decoded; each file that could not be
    read is appended to `failed` as `(file, exception)` and its row of `out`
    is left as it was.
    """
    ok = np.zeros(len(files), dtype=bool)

    def work(i):
        try:
            out[i] = _decode(files[i], size, crop, mode)
            ok[i] = True
        except Exception as err:  # Pillow raises many types for bad files
            failed.append((files[i], err))

    list(pool.map(work, range(len(files))))
    return ok


def warn_unreadable(failed, path, owner):
    """One warning for all the files of `failed` that were skipped."""
    if not failed:
        return
    failed = sorted(failed, key=lambda item: item[0])
    names = ", ".join(os.path.basename(f) for f, _ in failed[:5])
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    first_err = failed[0][1]
    warnings.warn(
        f"{owner}: skipped {len(failed)} unreadable file(s) in "
        f"{path!r}: {names}{more} (first error: "
        f"{type(first_err).__name__}: {first_err}).",
        stacklevel=3,
    )


def _cache_meta(size, crop, color_mode, max_images=None):
    meta = {"format": _CACHE_FORMAT, "size": list(size), "crop": crop,
            "color_mode": color_mode}
    if max_images is not None:
        meta["max_images"] = max_images
    return meta


def _read_cache(cache, meta, owner):
    """Returns the cached images, or `None` if absent, stale or unreadable."""
    if not os.path.exists(cache):
        return None
    try:
        with np.load(cache, allow_pickle=False) as data:
            stored = json.loads(str(data["meta"]))
            if stored != meta:
                return "stale"
            return data["images"]
    except Exception as err:  # truncated by hand, foreign file, ...
        warnings.warn(
            f"{owner}: ignoring unreadable cache file {cache!r} "
            f"({type(err).__name__}: {err}); it will be rebuilt.",
            stacklevel=3,
        )
        return None


def _write_cache(cache, images, meta):
    """Writes the cache atomically: readers see the old file or the new one."""
    os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as f:
            # Passing a file object keeps numpy from appending ".npz", so the
            # cache lands at exactly the path the user gave.
            np.savez(f, images=images, meta=np.array(json.dumps(meta)))


def log(message):
    print(message, file=sys.stderr, flush=True)


def load_image_folder(path, size=(96, 96), crop="center", color_mode="rgb",
                      cache=None, recursive=False, verbose=True,
                      extensions=IMAGE_EXTENSIONS, num_workers=None,
                      progress_every=5000, max_images=None):
    """Loads a folder of images into one `uint8` array (e.g. CelebA).

    The files are those `list_image_files` lists, each decoded by
    `decode_image`: centre-cropped to the aspect ratio of `size` (a square
    for the default), resized with a Lanczos filter and converted to RGB or
    grayscale; 16-bit images are scaled to 8 bits (`v >> 8`). Files whose
    extension is not in `extensions` are ignored; files that have one but
    cannot be decoded (corrupt, not an image, a broken or looping symlink)
    are skipped with a single warning giving their count and a few names.

    The result stays `uint8` (a quarter of the memory of float32); scale it
    per batch with `make_image_dataset`.

    Args:
        path: Folder to read.
        size: Output `(height, width)` in pixels, or an int for a square.
        crop: `"center"` crops to the target aspect ratio before resizing;
            `"none"` resizes the whole image (distorting its aspect ratio).
        color_mode: `"rgb"` (3 channels) or `"grayscale"` (1 channel).
        cache: Optional path of a cache file. If it exists and was written
            with the same `size`, `crop` and `color_mode` it is loaded
            instead of the folder (the folder is then not read at all);
            otherwise the folder is loaded and the cache (re)written
            atomically. It is an `.npz` archive whatever its name.
        recursive: If `True`, also read sub-folders.
        verbose: If `True`, print progress lines to stderr.
        extensions: Lower-case file suffixes to read.
        num_workers: Decoding threads (Pillow releases the GIL while it
            decodes and resizes). Defaults to the CPU count, at most 8.
        progress_every: Print a progress line every this many files.
        max_images: Optional limit: only the first `max_images` files (in
            sorted name order) are decoded, so a subset of a large folder
            loads in proportion to its size. Unreadable files among them are
            skipped, so fewer images may come back. Part of the cache key.

    Returns:
        `uint8` array of shape `(n, height, width, channels)`, images in
        sorted file-name order.

    Raises:
        FileNotFoundError: If `path` does not exist (and no valid cache).
        ValueError: If no readable image is found, or on bad arguments.

    Example:

    >>> faces = load_image_folder("img_align_celeba", size=64,
    ...                           cache="celeba64.npz")
    >>> ds = make_image_dataset(faces, batch_size=128)
    """
    owner = "load_image_folder"
    size = check_size_pair(size, owner)
    check_choice(crop, "crop", CROPS, owner)
    check_choice(color_mode, "color_mode", tuple(COLOR_MODES), owner)
    extensions = check_extensions(extensions, owner)
    num_workers = check_num_workers(num_workers, owner)
    progress_every = check_positive_int(progress_every, "progress_every",
                                        owner)
    if max_images is not None:
        max_images = check_positive_int(max_images, "max_images", owner)
    if cache is not None:
        cache = os.fspath(cache)

    meta = _cache_meta(size, crop, color_mode, max_images)
    if cache is not None:
        cached = _read_cache(cache, meta, owner)
        if isinstance(cached, np.ndarray):
            if verbose:
                log(f"{owner}: loaded {len(cached)} images from cache "
                     f"{cache!r}.")
            return cached
        if cached == "stale" and verbose:
            log(f"{owner}: cache {cache!r} was written with other settings; "
                 "rebuilding it.")

    path = check_folder(path, owner)
    files = scan_image_files(path, recursive, extensions)
    if max_images is not None:
        files = files[:max_images]
    if not files:
        raise ValueError(
            f"{owner}: no image files in {path!r} (looked for extensions "
            f"{extensions}{', recursively' if recursive else ''})."
        )

    mode = COLOR_MODES[color_mode]
    channels = 3 if mode == "RGB" else 1
    images = np.empty((len(files), size[0], size[1], channels), np.uint8)
    ok = np.zeros(len(files), dtype=bool)
    failed = []
    if verbose:
        log(f"{owner}: reading {len(files)} files from {path!r}.")
    start_time = time.perf_counter()

    # Blocks bound the number of pending futures on huge folders and give
    # natural points to report progress.
    block = max(1, min(progress_every, 1024))
    with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
        done_since_report = 0
        for block_start in range(0, len(files), block):
            indices = slice(block_start, min(block_start + block, len(files)))
            ok[indices] = decode_into(pool, files[indices], images[indices],
                                       size, crop, mode, failed)
            done_since_report += indices.stop - indices.start
            done = indices.stop
            if verbose and (done_since_report >= progress_every
                            or done == len(files)):
                done_since_report = 0
                elapsed = time.perf_counter() - start_time
                log(f"{owner}: {done}/{len(files)} files "
                     f"({done / max(elapsed, 1e-9):.0f} files/s).")

    warn_unreadable(failed, path, owner)
    if not ok.any():
        raise ValueError(
            f"{owner}: none of the {len(files)} image files in {path!r} "
            "could be read."
        )
    if not ok.all():
        images = images[ok]
    if cache is not None:
        _write_cache(cache, images, meta)
        if verbose:
            log(f"{owner}: wrote cache {cache!r}.")
    return images
