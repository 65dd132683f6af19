"""`_io`: atomic writes, file modes without touching the umask, and the
removal of temporaries left by killed writers."""

import ast
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras_vae_layers
from keras_vae_layers import io as _io
from keras_vae_layers import datasets

PACKAGE = pathlib.Path(keras_vae_layers.__file__).resolve().parent


# Makes `keras_vae_layers` importable in a child without running its
# `__init__` (which imports Keras): `_io` and `datasets` need neither, and
# the child starts in a fraction of a second.
_BARE_PACKAGE = f"""
import sys, types
package = types.ModuleType("keras_vae_layers")
package.__path__ = [{str(PACKAGE)!r}]
sys.modules["keras_vae_layers"] = package
"""


def python(code, umask=None, **kwargs):
    """Starts `code` in a fresh interpreter (optionally under `umask`)."""
    preexec = None if umask is None else (lambda: os.umask(umask))
    source = _BARE_PACKAGE + textwrap.dedent(code)
    return subprocess.Popen([sys.executable, "-c", source],
                            preexec_fn=preexec, text=True,
                            stdout=subprocess.PIPE, **kwargs)


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temp_name(target, pid, host=None, token="0badc0de", suffix=".json"):
    return f".{target}.{pid}.{host or _io._HOST_TAG}.{token}.tmp{suffix}"


# ----------------------------------------------------------------------------
# Permissions: the umask applies, and is never read or changed
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o027, 0o640), (0o077, 0o600)],
                         ids=["umask027", "umask077"])
def test_final_files_get_the_umask_mode_and_umask_is_never_called(
        tmp_path, umask, mode):
    # The child replaces os.umask by a trap: any call fails the write.
    child = python(f"""
        import json, os, numpy as np
        def trap(*args):
            raise AssertionError("os.umask was called")
        os.umask = trap
        from keras_vae_layers import datasets, io as _io
        d = {str(tmp_path)!r}
        _io.write_json_atomic(os.path.join(d, "a.json"), {{"x": 1}})
        with _io.atomic_path(os.path.join(d, "b.bin")) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"data")
        datasets.image_folder._write_cache(os.path.join(d, "c.npz"),
                              np.zeros((2, 3), "uint8"), {{"k": 1}})
        print(json.dumps({{n: os.stat(os.path.join(d, n)).st_mode & 0o777
                          for n in sorted(os.listdir(d))}}))
    """, umask=umask, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    modes = json.loads(out.strip().splitlines()[-1])
    assert modes == {"a.json": mode, "b.bin": mode, "c.npz": mode}


def test_package_code_never_calls_umask():
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                name = getattr(func, "attr", getattr(func, "id", None))
                if name == "umask":
                    calls.append(f"{path.name}:{node.lineno}")
    assert calls == []


# ----------------------------------------------------------------------------
# Temporary names and stale temporaries
# ----------------------------------------------------------------------------


def test_temporary_name_carries_pid_and_is_removed_on_failure(tmp_path):
    target = tmp_path / "out.weights.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with _io.atomic_path(target) as tmp:
            name = os.path.basename(tmp)
            assert name.startswith(f".out.weights.h5.{os.getpid()}.")
            assert name.endswith(".tmp.weights.h5")
            assert stat.S_ISREG(os.stat(tmp).st_mode)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(
        tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c",
                                "import time; time.sleep(60)"])
    try:
        dead = temp_name("data.json", dead_pid())
        dead_other_target = temp_name("other.json", dead_pid(),
                                      token="00000001")
        own = temp_name("data.json", os.getpid(), token="00000002")
        live_child = temp_name("data.json", sleeper.pid, token="00000003")
        other_host = temp_name("data.json", dead_pid(), host="ffffffff")
        unrelated = ".data.json.notes"
        for name in (dead, dead_other_target, own, live_child, other_host,
                     unrelated):
            (tmp_path / name).write_text("partial")

        _io.write_json_atomic(tmp_path / "data.json", {"a": 1})
        # Only the dead writer's temporary of this target went.
        assert set(os.listdir(tmp_path)) == {
            "data.json", dead_other_target, own, live_child, other_host,
            unrelated,
        }
        # Without a target: every stale temporary in the folder.
        assert _io.remove_stale_temporaries(tmp_path) == [dead_other_target]
        assert live_child in os.listdir(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    # The child is gone now: its temporary is stale.
    assert _io.remove_stale_temporaries(tmp_path, "data.json") == [live_child]


def test_cache_write_of_a_killed_process_is_cleaned_by_the_next_write(
        tmp_path):
    cache = tmp_path / "faces.npz"
    child = python(f"""
        import sys, time
        from keras_vae_layers import io as _io
        with _io.atomic_path({str(cache)!r}) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"PK half an archive")
            print(tmp, flush=True)
            time.sleep(60)
    """)
    try:
        tmp = child.stdout.readline().strip()
        assert os.path.basename(tmp).startswith(f".faces.npz.{child.pid}.")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert os.listdir(tmp_path) == [os.path.basename(tmp)]  # left behind

    images = np.arange(24, dtype="uint8").reshape(2, 3, 4)
    datasets.image_folder._write_cache(str(cache), images, {"size": [3, 4]})
    assert os.listdir(tmp_path) == ["faces.npz"]
    with np.load(cache) as data:
        np.testing.assert_array_equal(data["images"], images)
        assert json.loads(str(data["meta"])) == {"size": [3, 4]}
