"""Tests for keras_vae_layers.datasets.shards: writing, resuming, reading.

The shards must hold exactly what `load_image_folder` returns for the same
settings; conversions resume after an interruption (also a SIGKILL) without
rewriting finished shards; every bad directory is refused by name before
anything is read.
"""

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_vae_layers
from keras_vae_layers.datasets import ShardedImages
from keras_vae_layers.datasets import load_image_folder
from keras_vae_layers.datasets import load_image_shards
from keras_vae_layers.datasets import open_image_shards
from keras_vae_layers.datasets import shards as shards_module
from keras_vae_layers.datasets import write_image_shards

PACKAGE = os.path.dirname(os.path.abspath(keras_vae_layers.__file__))
SIZE = 4
PER_SHARD = 3


def _colour(i):
    return (i * 20 % 256, 255 - i * 7, (i * 53) % 256)


@pytest.fixture()
def folder(tmp_path):
    """11 readable images (distinct solid colours, various sizes and
    formats), 2 unreadable ones, a text file and a sub-folder of 2."""
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i in range(11):
        size = (8 + i, 6 + 2 * i)
        if i == 4:
            Image.new("L", size, 90).save(folder / f"img{i:02d}.png")
        else:
            Image.new("RGB", size, _colour(i)).save(folder / f"img{i:02d}.png")
    (folder / "img05b_corrupt.png").write_bytes(
        (folder / "img05.png").read_bytes()[:40])
    (folder / "img09b_fake.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("ignored")
    for i in (20, 21):
        Image.new("RGB", (9, 9), _colour(i)).save(folder / "sub" / f"s{i}.png")
    return folder


def _reference(folder, **kwargs):
    kwargs.setdefault("size", SIZE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_image_folder(folder, verbose=False, **kwargs)


def _write(folder, out, **kwargs):
    kwargs.setdefault("size", SIZE)
    kwargs.setdefault("images_per_shard", PER_SHARD)
    kwargs.setdefault("verbose", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_image_shards(folder, out, **kwargs)


def _manifest(out):
    with open(out / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


def _edit_manifest(out, **changes):
    manifest = _manifest(out)
    manifest.update(changes)
    (out / "manifest.json").write_text(json.dumps(manifest))


def _stamps(out):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in out.iterdir()}


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("recursive, color_mode",
                         [(False, "rgb"), (True, "grayscale")])
def test_shards_hold_what_load_image_folder_returns(folder, tmp_path,
                                                    recursive, color_mode):
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="write_image_shards: skipped 2 "
                                         "unreadable") as record:
        manifest = write_image_shards(folder, out, size=SIZE,
                                      images_per_shard=PER_SHARD,
                                      recursive=recursive,
                                      color_mode=color_mode, verbose=False)
    message = str(record[0].message)
    assert "img05b_corrupt.png" in message and "img09b_fake.jpg" in message
    reference = _reference(folder, recursive=recursive, color_mode=color_mode)
    channels = 3 if color_mode == "rgb" else 1
    n_files = 15 if recursive else 13
    assert manifest == _manifest(out)
    assert manifest["count"] == len(reference) == n_files - 2
    assert manifest["record_shape"] == [SIZE, SIZE, channels]
    assert manifest["complete"] is True
    assert manifest["format_version"] == shards_module.SHARD_FORMAT_VERSION
    assert manifest["package_version"] == keras_vae_layers.__version__
    assert manifest["settings"] == {
        "size": [SIZE, SIZE], "crop": "center", "color_mode": color_mode,
        "images_per_shard": PER_SHARD, "recursive": recursive,
        "extensions": [".png", ".jpg", ".jpeg", ".bmp", ".gif"]}
    assert manifest["skipped"] == ["img05b_corrupt.png", "img09b_fake.jpg"]
    assert manifest["source"]["files"] == n_files
    # Shard k holds the readable files among k*3 .. k*3+2 of the listing:
    # img05b_corrupt is file 6 (shard 2), img09b_fake file 11 (shard 3).
    counts = [e["count"] for e in manifest["shards"]]
    assert counts == ([3, 3, 2, 2, 1] if not recursive
                      else [3, 3, 2, 2, 3])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [
        f"shard-{k:05d}.npy" for k in range(5)]
    for entry in manifest["shards"]:
        data = (out / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        stored = np.load(out / entry["file"])  # a plain .npy file
        assert stored.shape == (entry["count"], SIZE, SIZE, channels)
    np.testing.assert_array_equal(open_image_shards(out)[:], reference)


def test_memory_is_one_shard_sized_memory_map(folder, tmp_path, monkeypatch):
    opened = []
    real = np.lib.format.open_memmap

    def spy(path, mode="r+", dtype=None, shape=None, **kwargs):
        opened.append((os.path.basename(path), shape))
        return real(path, mode=mode, dtype=dtype, shape=shape, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    _write(folder, tmp_path / "out", images_per_shard=4)
    # Every image is decoded into the memory map of its shard's temporary
    # file (hidden, renamed when done): one shard's worth at a time.
    assert [shape for _, shape in opened] == [(4, SIZE, SIZE, 3)] * 3 + [
        (1, SIZE, SIZE, 3)]
    assert all(name.startswith(".shard-") and ".tmp" in name
               for name, _ in opened)


def test_rerun_with_same_settings_is_a_noop(folder, tmp_path, capsys):
    out = tmp_path / "out"
    first = _write(folder, out)
    before = _stamps(out)
    capsys.readouterr()
    again = _write(folder, out, verbose=True)
    err = capsys.readouterr().err
    assert "already holds the 11 images" in err and "nothing to do" in err
    assert again == first
    assert _stamps(out) == before


def test_progress_lines_on_stderr(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(shards_module.writer, "PROGRESS_SECONDS", 0.0)
    _write(folder, tmp_path / "out", verbose=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("write_image_shards: converting 13 files from")
    assert "into 5 shards of up to 3 images 4x4x3" in lines[0]
    progress = [line for line in lines if " shards (" in line]
    assert "13/13 files, 5/5 shards (" in progress[-1]
    assert any("3/13 files, 0/5 shards" in line for line in progress)
    assert lines[-1].startswith("write_image_shards: wrote 11 images in 5 "
                                "shards to")


def test_interrupted_conversion_resumes_and_rewrites_a_corrupt_shard(
        folder, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    real = shards_module.writer._write_shard
    written = []

    def stop_at_third(path, *args):
        if len(written) == 2:
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of shard 2
        written.append(os.path.basename(path))
        return real(path, *args)

    monkeypatch.setattr(shards_module.writer, "_write_shard", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        _write(folder, out)
    partial = _manifest(out)
    assert partial["complete"] is False
    assert [e["file"] for e in partial["shards"]] == written
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + written
    with pytest.raises(ValueError, match="unfinished conversion .2 of 5 "
                                         "shards.; rerun"):
        open_image_shards(out)

    # Same size, one byte changed: only the checksum can tell.
    data = bytearray((out / "shard-00000.npy").read_bytes())
    data[-1] ^= 0xFF
    (out / "shard-00000.npy").write_bytes(bytes(data))
    kept_stamp = _stamps(out)["shard-00001.npy"]
    written.clear()
    monkeypatch.setattr(shards_module.writer, "_write_shard",
                        lambda path, *args: written.append(
                            os.path.basename(path)) or real(path, *args))
    capsys.readouterr()
    _write(folder, out, verbose=True)
    err = capsys.readouterr().err
    assert "shard-00000.npy" in err and "does not match its checksum" in err
    assert written == ["shard-00000.npy", "shard-00002.npy",
                       "shard-00003.npy", "shard-00004.npy"]
    assert _stamps(out)["shard-00001.npy"] == kept_stamp  # kept, not redone
    np.testing.assert_array_equal(open_image_shards(out, verify=True)[:],
                                  _reference(folder))


_KILLED_WRITER = """
import sys, time, types
package = types.ModuleType("keras_vae_layers")
package.__path__ = [{package!r}]
sys.modules["keras_vae_layers"] = package
from keras_vae_layers.datasets import image_folder, shards
real = image_folder._decode

def slow(*args):
    time.sleep(0.1)
    return real(*args)

image_folder._decode = slow
shards.write_image_shards({folder!r}, {out!r}, size={size}, images_per_shard=2,
                          num_workers=1, verbose=False)
"""


def test_killed_conversion_resumes_after_the_last_finished_shard(
        folder, tmp_path, monkeypatch):
    """A writer killed with SIGKILL (no clean-up at all) leaves finished
    shards, a manifest listing them and perhaps a temporary; the rerun keeps
    the listed shards, removes the temporary, writes the rest once."""
    out = tmp_path / "out"
    code = _KILLED_WRITER.format(package=PACKAGE, folder=str(folder),
                                 out=str(out), size=SIZE)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)],
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            try:
                if len(_manifest(out)["shards"]) >= 3:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        assert child.poll() is None, child.stderr.read()[-2000:]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stderr.close()
    partial = _manifest(out)
    assert partial["complete"] is False
    finished = [e["file"] for e in partial["shards"]]
    assert 3 <= len(finished) < 7
    stamps = _stamps(out)

    real = shards_module.writer._write_shard
    written = []
    monkeypatch.setattr(shards_module.writer, "_write_shard",
                        lambda path, *args: written.append(
                            os.path.basename(path)) or real(path, *args))
    manifest = _write(folder, out, images_per_shard=2)
    assert written == [f"shard-{k:05d}.npy" for k in range(len(finished), 7)]
    assert {name: _stamps(out)[name] for name in finished} == {
        name: stamps[name] for name in finished}
    # No temporary left, no shard twice.
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [
        f"shard-{k:05d}.npy" for k in range(7)]
    assert manifest["count"] == 11
    np.testing.assert_array_equal(open_image_shards(out, verify=True)[:],
                                  _reference(folder))


def test_rerun_rewrites_a_missing_shard_of_a_complete_directory(folder,
                                                                tmp_path):
    out = tmp_path / "out"
    _write(folder, out)
    (out / "shard-00003.npy").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00003.npy"):
        open_image_shards(out)
    _write(folder, out)
    np.testing.assert_array_equal(open_image_shards(out)[:],
                                  _reference(folder))


@pytest.mark.parametrize("change, fragment", [
    ({"size": 5}, "size=[4, 4] (this call: [5, 5])"),
    ({"crop": "none"}, "crop='center' (this call: 'none')"),
    ({"color_mode": "grayscale"}, "color_mode='rgb' (this call: 'grayscale')"),
    ({"images_per_shard": 4}, "images_per_shard=3 (this call: 4)"),
])
def test_other_settings_are_refused_unless_overwrite(folder, tmp_path,
                                                     change, fragment):
    out = tmp_path / "out"
    _write(folder, out)
    before = _stamps(out)
    with pytest.raises(ValueError, match="written with other settings") as info:
        _write(folder, out, **change)
    assert fragment in str(info.value)
    assert "manifest.json" in str(info.value)
    assert "overwrite=True" in str(info.value)
    assert _stamps(out) == before  # nothing touched
    manifest = _write(folder, out, overwrite=True, **change)
    for key, value in change.items():
        expected = [value, value] if key == "size" else value
        assert manifest["settings"][key] == expected
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"] + [
        e["file"] for e in manifest["shards"]]
    np.testing.assert_array_equal(
        open_image_shards(out)[:],
        _reference(folder, **{k: v for k, v in change.items()
                              if k != "images_per_shard"}))


def test_a_changed_file_list_is_refused(folder, tmp_path):
    out = tmp_path / "out"
    _write(folder, out)
    Image.new("RGB", (5, 5)).save(folder / "img99.png")
    with pytest.raises(ValueError, match=r"file list changed .*\(13 files "
                                         r"then, 14 now\)"):
        _write(folder, out)


def test_other_format_version_is_refused_by_writer_and_readers(folder,
                                                               tmp_path):
    out = tmp_path / "out"
    _write(folder, out)
    _edit_manifest(out, format_version=99, package_version="9.0")
    for call in (lambda: _write(folder, out), lambda: open_image_shards(out),
                 lambda: load_image_shards(out, 2)):
        with pytest.raises(ValueError, match="shard format version 99 .by "
                                             "keras_vae_layers '9.0'.") as info:
            call()
        assert "reads format version 1" in str(info.value)
    _write(folder, out, overwrite=True)
    assert open_image_shards(out).shape == (11, SIZE, SIZE, 3)


def test_unfinished_conversion_of_another_package_version_is_refused(
        folder, tmp_path):
    out = tmp_path / "out"
    _write(folder, out)
    _edit_manifest(out, complete=False, package_version="0.0.1")
    with pytest.raises(ValueError, match="unfinished conversion by "
                                         "keras_vae_layers '0.0.1'"):
        _write(folder, out)


@pytest.mark.parametrize("content, fragment", [
    ('{"format": "something-else", "shards": []}',
     "is not a keras_vae_layers image-shard manifest"),
    ("[1, 2]", "is not a keras_vae_layers image-shard manifest"),
    ("{not json", "is not a readable shard manifest"),
])
def test_a_foreign_manifest_is_refused_even_with_overwrite(folder, tmp_path,
                                                           content, fragment):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(content)
    (out / "shard-00000.npy").write_text("theirs")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=fragment):
            _write(folder, out, overwrite=overwrite)
    with pytest.raises(ValueError, match=fragment):
        open_image_shards(out)
    assert (out / "manifest.json").read_text() == content
    assert (out / "shard-00000.npy").read_text() == "theirs"


def test_out_dir_inside_the_folder_or_not_empty_is_refused(folder, tmp_path):
    for out in (folder, folder / "shards", folder / "sub" / "deeper"):
        with pytest.raises(ValueError, match="lies inside the image folder"):
            _write(folder, out)
    assert not (folder / "shards").exists()
    link = tmp_path / "link"
    os.symlink(folder, link)
    with pytest.raises(ValueError, match="lies inside the image folder"):
        _write(folder, link / "shards")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty and holds no "
                                         "manifest.json .found notes.txt."):
        _write(folder, busy)
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        _write(folder, afile)


def test_no_readable_image_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_text("nope")
    (folder / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="none of the 2 image files"):
        _write(folder, out)
    assert not out.exists()
    out.mkdir()
    with pytest.raises(ValueError, match="none of the 2 image files"):
        _write(folder, out)
    assert list(out.iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files in"):
        _write(empty, tmp_path / "out2")


@pytest.mark.parametrize("kwargs, fragment", [
    ({"images_per_shard": 0}, "`images_per_shard`"),
    ({"size": 0}, "`size[0]`"),
    ({"crop": "left"}, "`crop`"),
    ({"color_mode": "L"}, "`color_mode`"),
    ({"num_workers": 0}, "`num_workers`"),
    ({"extensions": ()}, "`extensions`"),
])
def test_writer_argument_errors(folder, tmp_path, kwargs, fragment):
    with pytest.raises(ValueError, match="write_image_shards") as info:
        _write(folder, tmp_path / "out", **kwargs)
    assert fragment in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _write(tmp_path / "missing", tmp_path / "out")


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


@pytest.fixture()
def shard_dir(folder, tmp_path):
    out = tmp_path / "out"
    _write(folder, out)
    return out


def _values(ds):
    """Every image of a dataset of 4x4x3 solid colours, as its red value."""
    batches = [b.numpy() for b in ds]
    return np.concatenate(batches)[:, 0, 0, 0], batches


def test_load_without_shuffle_streams_in_conversion_order(folder, shard_dir):
    ds = load_image_shards(shard_dir, batch_size=4, shuffle=False)
    batches = [b.numpy() for b in ds]
    assert [b.shape for b in batches] == [(4, SIZE, SIZE, 3)] * 2 + [
        (3, SIZE, SIZE, 3)]
    # The same float32 product as make_image_dataset and ImageBatches.
    reference = _reference(folder)
    np.testing.assert_array_equal(
        np.concatenate(batches),
        reference.astype(np.float32) * np.float32(1 / 255))


def test_load_shuffles_by_seed_reshuffles_per_epoch_and_repeats(shard_dir):
    ds = load_image_shards(shard_dir, batch_size=4, seed=7)
    epoch1, _ = _values(ds)
    epoch2, _ = _values(ds)
    in_order, _ = _values(load_image_shards(shard_dir, 4, shuffle=False))
    assert sorted(epoch1) == sorted(epoch2) == sorted(in_order)
    assert not np.array_equal(epoch1, in_order)
    assert not np.array_equal(epoch1, epoch2)
    again, _ = _values(load_image_shards(shard_dir, batch_size=4, seed=7))
    np.testing.assert_array_equal(again, epoch1)
    small, _ = _values(load_image_shards(shard_dir, 4, seed=1,
                                         shuffle_buffer=1))
    assert sorted(small) == sorted(in_order)
    dropped = load_image_shards(shard_dir, 4, seed=0, drop_remainder=True)
    assert dropped.element_spec.shape.as_list() == [4, SIZE, SIZE, 3]
    assert len(list(dropped)) == 2
    endless, batches = _values(load_image_shards(
        shard_dir, 4, seed=0, repeat=True, drop_remainder=True).take(8))
    assert len(batches) == 8  # 32 images from 11: the files came round again
    with pytest.raises(ValueError, match="load_image_shards: `shuffle_buffer`"):
        load_image_shards(shard_dir, 4, shuffle_buffer=0)
    with pytest.raises(ValueError, match="load_image_shards: `batch_size`"):
        load_image_shards(shard_dir, 0)


@pytest.mark.parametrize("policy", ["FILE", "AUTO"])
def test_auto_sharding_gives_each_worker_whole_disjoint_files(shard_dir,
                                                              policy):
    from tensorflow.python.data.experimental.ops.distribute import (
        _AutoShardDataset)

    manifest = _manifest(shard_dir)
    images = open_image_shards(shard_dir)
    by_file, start = {}, 0
    for entry in manifest["shards"]:
        by_file[entry["file"]] = set(
            images[start:start + entry["count"]][:, 0, 0, 0].tolist())
        start += entry["count"]
    seen = []
    for worker in range(2):
        # What tf.distribute does on each of two workers (seed None: each
        # worker shuffles its own files differently).
        ds = load_image_shards(shard_dir, batch_size=2)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = getattr(
            tf.data.experimental.AutoShardPolicy, policy)
        ds = _AutoShardDataset(ds.with_options(options), 2, worker)
        values, _ = _values(ds)
        red = sorted(np.round(values * 255).astype(int).tolist())
        files = [f for f, v in by_file.items() if v & set(red)]
        # Whole files: the worker's images are exactly those of its files.
        assert red == sorted(v for f in files for v in by_file[f])
        seen.append(set(files))
    assert seen[0].isdisjoint(seen[1])
    assert seen[0] | seen[1] == set(by_file)


def test_sharded_view_indexing_and_pickling(folder, shard_dir):
    reference = _reference(folder)
    images = open_image_shards(shard_dir, verify=True, size=SIZE,
                               crop="center", color_mode="rgb")
    assert isinstance(images, ShardedImages)
    assert len(images) == 11 and images.shape == (11, SIZE, SIZE, 3)
    assert images.dtype == np.uint8 and images.ndim == 4
    np.testing.assert_array_equal(images[4], reference[4])
    np.testing.assert_array_equal(images[-1], reference[-1])
    np.testing.assert_array_equal(images[1:10:3], reference[1:10:3])
    idx = np.array([10, 0, 5, 5, -2])
    np.testing.assert_array_equal(images[idx], reference[idx])
    assert images[[]].shape == (0, SIZE, SIZE, 3)
    with pytest.raises(IndexError, match="index 11 out of range"):
        images[11]
    with pytest.raises(IndexError, match="out of range for 11 images"):
        images[[0, 11]]
    with pytest.raises(TypeError, match="1-D integer array"):
        images[np.ones(11, bool)]
    with pytest.raises(TypeError, match="of shape .2, 2."):
        images[np.zeros((2, 2), int)]
    copy = pickle.loads(pickle.dumps(images))
    assert len(pickle.dumps(images)) < 4000  # paths, not the mapped data
    np.testing.assert_array_equal(copy[:], reference)


def _truncate(out):
    path = out / "shard-00002.npy"
    path.write_bytes(path.read_bytes()[:-5])


def _flip_byte(out):
    path = out / "shard-00002.npy"
    data = bytearray(path.read_bytes())
    data[200] ^= 1
    path.write_bytes(bytes(data))


def _other_header(out):
    # Same number of bytes, other shape: a different array.
    path = out / "shard-00002.npy"
    data = np.load(path)
    np.save(path, data.reshape(data.shape[0], SIZE, SIZE * 3, 1))


def _drop_key(out):
    manifest = _manifest(out)
    del manifest["shards"]
    (out / "manifest.json").write_text(json.dumps(manifest))


def _escape(out):
    manifest = _manifest(out)
    manifest["shards"][0]["file"] = "../elsewhere.npy"
    (out / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("damage, error, fragment", [
    (lambda out: (out / "manifest.json").unlink(), FileNotFoundError,
     "manifest.json' does not exist"),
    (lambda out: (out / "shard-00002.npy").unlink(), FileNotFoundError,
     "shard-00002.npy' listed in the manifest is missing"),
    (_truncate, ValueError, "shard-00002.npy' has 219 bytes, expected 224 (2 records)"),
    (_other_header, ValueError, "not the file the manifest lists"),
    (_drop_key, ValueError, "is malformed (KeyError: 'shards')"),
    (_escape, ValueError, "bad shard file name '../elsewhere.npy'"),
    (lambda out: _edit_manifest(out, complete=False), ValueError,
     "unfinished conversion"),
])
@pytest.mark.parametrize("reader", ["open", "load"])
def test_readers_refuse_damaged_directories(shard_dir, damage, error,
                                            fragment, reader):
    damage(shard_dir)
    read = open_image_shards if reader == "open" else (
        lambda out, **kw: load_image_shards(out, 2, **kw))
    with pytest.raises(error) as info:
        read(shard_dir)
    assert fragment in str(info.value)
    assert str(shard_dir) in str(info.value)


def test_checksums_are_verified_on_request(shard_dir):
    _flip_byte(shard_dir)
    assert len(open_image_shards(shard_dir)) == 11  # size and header fine
    for read in (lambda: open_image_shards(shard_dir, verify=True),
                 lambda: load_image_shards(shard_dir, 2, verify=True)):
        with pytest.raises(ValueError, match="shard-00002.npy' does not "
                                             "match its checksum"):
            read()


def test_readers_check_expected_settings(shard_dir, tmp_path):
    with pytest.raises(ValueError, match=r"written with size=\[4, 4\] "
                                         r"\(expected \[8, 8\]\)"):
        open_image_shards(shard_dir, size=8)
    with pytest.raises(ValueError, match="color_mode='rgb' .expected "
                                         "'grayscale'."):
        load_image_shards(shard_dir, 2, color_mode="grayscale")
    with pytest.raises(ValueError, match="open_image_shards: unknown `crop`"):
        open_image_shards(shard_dir, crop="left")
    with pytest.raises(FileNotFoundError, match="shard directory .* does not "
                                                "exist"):
        open_image_shards(tmp_path / "nowhere")
