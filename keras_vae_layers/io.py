"""Atomic file writing: never leave a truncated file at the final path.

Temporary files are named `.{target}.{pid}.{host}.{random}.tmp{suffix}` in
the target's directory: the writer's process id and a short tag of its host
name make a temporary left behind by a killed writer recognizable, so the
next write of the same target (or `remove_stale_temporaries`) deletes it,
while a temporary of a writer that is still running is never touched.
"""

import contextlib
import hashlib
import json
import os
import re
import secrets
import socket

# Temporaries of other hosts (a directory shared over the network) are never
# removed: their writer's liveness cannot be checked from here.
_HOST_TAG = hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:8]
_TEMP_RE = re.compile(
    r"^\.(?P<target>.+)\.(?P<pid>\d+)\.(?P<host>[0-9a-f]{8})\.[0-9a-f]{8}"
    r"\.tmp(?:\..*)?$",
    re.S,
)
_CREATE_FLAGS = (os.O_CREAT | os.O_EXCL | os.O_WRONLY
                 | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path in the same directory as `path`.

    On normal exit the temporary file is flushed to disk and renamed onto
    `path` with `os.replace` (atomic on POSIX and Windows when both live on
    one file system, which the shared directory guarantees). On any
    exception the temporary file is removed and `path` is left untouched.
    Stale temporaries of `path` left by killed writers are removed first
    (see `remove_stale_temporaries`).

    The temporary file is created empty with mode `0o666`, so the kernel
    applies the process umask exactly as for `open(path, "w")`: the final
    file gets the usual permissions without reading or changing the umask.

    Args:
        path: Final destination.
        suffix: Suffix for the temporary name; defaults to the suffix of
            `path` (some writers, e.g. Keras' `save_weights`, insist on it).

    Example:

    ```python
    with atomic_path("weights.h5") as tmp:
        model.save_weights(tmp)
    ```
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    if suffix is None:
        # Keep compound suffixes such as ".weights.h5" intact.
        suffix = base[base.index("."):] if "." in base else ""
    remove_stale_temporaries(directory, base)
    tmp = _create_temporary(directory, base, suffix)
    try:
        yield tmp
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


def _create_temporary(directory, base, suffix):
    prefix = f".{base}.{os.getpid()}.{_HOST_TAG}."
    for _ in range(100):
        tmp = os.path.join(directory,
                           f"{prefix}{secrets.token_hex(4)}.tmp{suffix}")
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(
        f"atomic_path: could not create a unique temporary file for "
        f"'{os.path.join(directory, base)}' after 100 attempts."
    )


def _writer_alive(pid):
    if os.name == "nt":
        # os.kill(pid, 0) terminates the process on Windows.
        return True
    if pid <= 0:
        return True  # not a process id: keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        # PermissionError: the process exists but belongs to another user.
        return True
    return True


def remove_stale_temporaries(directory, target=None):
    """Removes temporaries of `atomic_path` whose writer process is gone.

    A temporary is stale when it was written on this host by a process
    that no longer exists (checked with `os.kill(pid, 0)`). Temporaries of
    live processes, of other hosts and files with any other name are left
    alone. Called before every atomic write, for the target being written.

    Args:
        directory: Folder to clean.
        target: Base name of one target file (only its temporaries are
            considered), or `None` for the temporaries of every target.

    Returns:
        The names of the files removed.
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    prefix = "." if target is None else f".{target}."
    removed = []
    for name in names:
        if not name.startswith(prefix):
            continue
        match = _TEMP_RE.match(name)
        if (
            match is None
            or (target is not None and match["target"] != target)
            or match["host"] != _HOST_TAG
            or _writer_alive(int(match["pid"]))
        ):
            continue
        try:
            os.remove(os.path.join(directory, name))
        except OSError:
            continue  # removed concurrently, or not a file
        removed.append(name)
    return removed


def write_json_atomic(path, obj):
    """Writes `obj` as pretty JSON to `path` atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")


def _json_default(value):
    # numpy scalars and arrays appear in Keras logs.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)
