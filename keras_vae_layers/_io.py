"""Atomic file writing: never leave a truncated file at the final path."""

import contextlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path in the same directory as `path`.

    On normal exit the temporary file is renamed onto `path` with
    `os.replace` (atomic on POSIX and Windows when both live on one file
    system, which the shared directory guarantees). On any exception the
    temporary file is removed and `path` is left untouched.

    Args:
        path: Final destination.
        suffix: Suffix for the temporary name; defaults to the suffix of
            `path` (some writers, e.g. Keras' `save_weights`, insist on it).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if suffix is None:
        # Keep compound suffixes such as ".weights.h5" intact.
        suffix = base[base.index("."):] if "." in base else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}",
                               dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions an
        # ordinary open() would (0666 minus the umask).
        os.chmod(tmp, 0o666 & ~_umask())
        # Writers such as h5py close without fsync; flush the data to disk
        # before the rename so a power loss cannot leave the new name
        # pointing at unwritten blocks.
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path, obj):
    """Writes `obj` as pretty JSON to `path` atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())


def _json_default(value):
    # numpy scalars and arrays appear in Keras logs.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def history_as_floats(history):
    """A Keras `History.history` dict with plain floats (JSON-ready)."""
    return {k: [float(v) for v in vals] for k, vals in history.items()}


def print_outputs(written, seconds, out_dir):
    """Prints the closing lines of the examples: time and files written."""
    print(f"done in {seconds:.0f}s; outputs in {out_dir}/:")
    width = max((len(k) for k in written), default=0) + 2
    for what, path in written.items():
        print(f"  {what:{width}s} {path}")
