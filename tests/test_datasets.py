"""Tests for keras_vae_layers.datasets (no network: Keras loaders mocked)."""

import math
import os
import struct
import urllib.error
import warnings
import zlib

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from PIL import Image

from keras_vae_layers import datasets
from keras_vae_layers.datasets import SHAPE_NAMES
from keras_vae_layers.datasets import DatasetUnavailableError
from keras_vae_layers.datasets import load_fashion_mnist
from keras_vae_layers.datasets import load_image_folder
from keras_vae_layers.datasets import load_mnist
from keras_vae_layers.datasets import load_shapes
from keras_vae_layers.datasets import make_image_dataset
from keras_vae_layers.datasets import render_shapes


def _border(images):
    """All pixels of the outermost rows and columns, per image."""
    return np.concatenate(
        [images[:, 0, :, 0], images[:, -1, :, 0],
         images[:, :, 0, 0], images[:, :, -1, 0]], axis=1)


# ---------------------------------------------------------------------------
# load_shapes / render_shapes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_shapes_shape_and_dtype(size, dtype):
    images, factors = load_shapes(50, size=size, dtype=dtype)
    assert images.shape == (50, size, size, 1)
    assert images.dtype == np.dtype(dtype)
    top = 255 if dtype == "uint8" else 1.0
    assert images.min() == 0
    assert images.max() == top
    assert set(factors) == {"shape", "scale", "rotation", "x", "y"}
    for value in factors.values():
        assert isinstance(value, np.ndarray)
        assert value.shape == (50,)


def test_shapes_float32_is_uint8_scaled():
    as_int, f_int = load_shapes(40, size=32, seed=5)
    as_float, f_float = load_shapes(40, size=32, seed=5, dtype="float32")
    np.testing.assert_allclose(as_float, as_int / 255.0, atol=0.5 / 255 + 1e-6)
    for key in f_int:
        np.testing.assert_array_equal(f_int[key], f_float[key])


def test_shapes_deterministic_for_seed():
    a, fa = load_shapes(64, size=32, seed=123)
    b, fb = load_shapes(64, size=32, seed=123)
    c, fc = load_shapes(64, size=32, seed=124)
    np.testing.assert_array_equal(a, b)
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key])
    assert not np.array_equal(a, c)
    assert not np.array_equal(fa["x"], fc["x"])


def test_shapes_independent_of_chunking(monkeypatch):
    # Chunks rasterise in threads; the result must not depend on the split.
    reference, _ = load_shapes(100, size=16, seed=9)
    monkeypatch.setattr(datasets.shapes, "_PIXELS_PER_CHUNK", 16 * 16 * 7)
    chunked, _ = load_shapes(100, size=16, seed=9)
    np.testing.assert_array_equal(reference, chunked)


def test_shapes_factor_ranges_and_types():
    n = 2000
    _, f = load_shapes(n, size=32, seed=0, scale_range=(0.6, 0.9),
                       rotation_range=(-1.0, 2.0))
    assert np.issubdtype(f["shape"].dtype, np.integer)
    for key in ("scale", "rotation", "x", "y"):
        assert f[key].dtype == np.float32
    assert set(np.unique(f["shape"])) == {0, 1, 2}
    assert f["scale"].min() >= 0.6 and f["scale"].max() <= 0.9
    assert f["rotation"].min() >= -1.0 and f["rotation"].max() <= 2.0
    for key in ("x", "y"):
        assert f[key].min() >= 0.0 and f[key].max() <= 1.0
        # Uniform over [0, 1]: both ends get visited.
        assert f[key].min() < 0.05 and f[key].max() > 0.95
    # Roughly balanced classes.
    counts = np.bincount(f["shape"], minlength=3)
    assert counts.min() > n / 3 * 0.8


def test_shapes_defaults():
    _, f = load_shapes(3000, size=16)
    assert f["scale"].min() >= 0.5 and f["scale"].max() <= 1.0
    assert f["rotation"].min() >= 0.0
    assert f["rotation"].max() <= 2 * math.pi
    assert f["rotation"].max() > 6.0
    assert SHAPE_NAMES == ("square", "ellipse", "heart")


def test_shapes_subset_of_classes():
    _, f = load_shapes(300, size=16, shapes=("heart", "square"))
    # Ids index the global SHAPE_NAMES, whatever subset was asked for.
    assert set(np.unique(f["shape"])) == {0, 2}
    _, f = load_shapes(50, size=16, shapes="ellipse")
    assert set(np.unique(f["shape"])) == {1}


def test_shapes_every_class_appears_nonblank_and_inside_frame():
    images, f = load_shapes(1500, size=28, seed=2)
    for shape_id in range(len(SHAPE_NAMES)):
        assert (f["shape"] == shape_id).sum() > 100
    area = images.astype(np.float64).sum(axis=(1, 2, 3)) / 255.0
    # Smallest shape: the ellipse at scale 0.5 (pi * 0.6 * 3.5**2 ~ 23 px).
    assert area.min() > 15
    assert (images.max(axis=(1, 2, 3)) == 255).all()
    assert _border(images).max() == 0


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from([0, 1, 2]),
    rotation=st.floats(-10.0, 10.0),
    x=st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0.0, 1.0),
    y=st.sampled_from([0.0, 1.0, 0.5]) | st.floats(0.0, 1.0),
    size=st.sampled_from([8, 9, 28, 32, 64]),
)
def test_shapes_never_touch_border_even_at_largest_scale(
        shape, rotation, x, y, size):
    images = render_shapes([shape], [1.0], [rotation], [x], [y], size=size)
    assert _border(images).max() == 0
    assert images.max() > 0


def test_shapes_area_matches_geometry():
    # Anti-aliased coverage integrates to the analytic area of each shape.
    size = 64
    r = 0.25 * size  # radius of the rotation-safe disc at scale 1
    k = 1 - 1 / math.sqrt(2)
    h = 1 / (1 + (0.5 - k * k) / (1 + 2 * k))  # heart half-diagonal
    expected = {
        0: 2.0 * r * r,  # square inscribed in the disc
        1: math.pi * 1.0 * 0.6 * r * r,
        2: (h * math.sqrt(2)) ** 2 * (1 + math.pi / 4) * r * r,
    }
    for shape_id, area in expected.items():
        img = render_shapes([shape_id] * 2, [1.0, 0.5], [0.3, 0.3],
                            [0.5, 0.5], [0.5, 0.5], size=size,
                            dtype="float32")
        measured = img.sum(axis=(1, 2, 3))
        assert measured[0] == pytest.approx(area, rel=0.03)
        assert measured[1] == pytest.approx(area / 4, rel=0.05)


def test_different_classes_give_different_masks():
    imgs = render_shapes([0, 1, 2], [0.8] * 3, [0.4] * 3, [0.3] * 3,
                         [0.6] * 3, size=64)
    masks = imgs[..., 0] > 127
    for i in range(3):
        for j in range(i + 1, 3):
            differing = np.logical_xor(masks[i], masks[j]).sum()
            assert differing > 0.15 * min(masks[i].sum(), masks[j].sum())


def test_render_accepts_names_and_matches_ids():
    by_name = render_shapes(["heart", "square"], [1, 1], [0, 0], [0.5, 0.5],
                            [0.5, 0.5], size=32)
    by_id = render_shapes([2, 0], [1, 1], [0, 0], [0.5, 0.5], [0.5, 0.5],
                          size=32)
    np.testing.assert_array_equal(by_name, by_id)


def test_rotation_is_counter_clockwise_in_radians():
    upright, rotated, flipped = render_shapes(
        [2, 2, 2], [1, 1, 1], [0.0, math.pi / 2, math.pi], [0.5] * 3,
        [0.5] * 3, size=64)[..., 0].astype(int)
    # np.rot90 turns an image counter-clockwise as displayed.
    assert np.abs(np.rot90(upright) - rotated).max() <= 1
    # The heart is mirror-symmetric, so a half turn is an upside-down flip.
    assert np.abs(upright[::-1] - flipped).max() <= 1
    # Upright: the lobes (top) carry more mass than the tip.
    rows = np.arange(64)[:, None]
    assert (upright * rows).sum() / upright.sum() < 31.5


def test_position_factors_move_the_shape():
    imgs = render_shapes([0, 0, 0, 0], [0.5] * 4, [0.0] * 4,
                         [0.0, 1.0, 0.5, 0.5], [0.5, 0.5, 0.0, 1.0],
                         size=32, dtype="float32")[..., 0]
    cols = np.arange(32)[None, :]
    rows = np.arange(32)[:, None]
    cx = [(im * cols).sum() / im.sum() for im in imgs]
    cy = [(im * rows).sum() / im.sum() for im in imgs]
    assert cx[0] < 12 and cx[1] > 19  # x=0 left, x=1 right
    assert cy[2] < 12 and cy[3] > 19  # y=0 top, y=1 bottom


def test_binary_mode():
    images, _ = load_shapes(20, size=32, antialias=False)
    assert set(np.unique(images)) == {0, 255}


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"n": 0}, "`n`"),
        ({"n": 2.5}, "`n`"),
        ({"n": True}, "`n`"),
        ({"n": 5, "size": 7}, "`size`"),
        ({"n": 5, "shapes": ("square", "star")}, "'star'"),
        ({"n": 5, "shapes": ()}, "`shapes`"),
        ({"n": 5, "dtype": "int16"}, "'int16'"),
        ({"n": 5, "dtype": "not-a-dtype"}, "`dtype`"),
        ({"n": 5, "scale_range": (0.0, 1.0)}, "`scale_range`"),
        ({"n": 5, "scale_range": (0.5, 1.5)}, "`scale_range`"),
        ({"n": 5, "scale_range": (0.9, 0.5)}, "`scale_range`"),
        ({"n": 5, "rotation_range": (0.0, float("nan"))}, "rotation_range"),
        ({"n": 5, "seed": "zero"}, "`seed`"),
    ],
)
def test_shapes_validation(kwargs, fragment):
    with pytest.raises(ValueError) as info:
        load_shapes(**kwargs)
    message = str(info.value)
    assert message.startswith("load_shapes")
    assert fragment in message


def test_shapes_fixed_scale_allowed():
    _, f = load_shapes(10, size=16, scale_range=(0.7, 0.7))
    np.testing.assert_allclose(f["scale"], 0.7)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (([3], [1], [0], [0.5], [0.5]), "`shape` ids"),
        ((["star"], [1], [0], [0.5], [0.5]), "'star'"),
        (([0], [1.2], [0], [0.5], [0.5]), "`scale`"),
        (([0], [0.0], [0], [0.5], [0.5]), "`scale`"),
        (([0], [1], [0], [1.5], [0.5]), "`x`"),
        (([0], [1], [0], [0.5], [-0.1]), "`y`"),
        (([0, 1], [1], [0, 0], [0.5, 0.5], [0.5, 0.5]), "`scale`"),
        (([], [], [], [], []), "`shape`"),
    ],
)
def test_render_validation(args, fragment):
    with pytest.raises(ValueError, match="render_shapes") as info:
        render_shapes(*args, size=16)
    assert fragment in str(info.value)


# ---------------------------------------------------------------------------
# MNIST / Fashion-MNIST (network never touched: the loaders are patched)
# ---------------------------------------------------------------------------


def _fake_keras_data():
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    x_train[0, 0, 0] = 255
    x_test = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    return (x_train, np.arange(6)), (x_test, np.arange(3))


@pytest.mark.parametrize(
    "module, loader",
    [("mnist", load_mnist), ("fashion_mnist", load_fashion_mnist)],
)
@pytest.mark.parametrize(
    "error",
    [urllib.error.URLError("no route to host"), OSError("offline"),
     Exception("Failed to fetch")],
)
def test_keras_loader_offline_error_names_load_shapes(
        monkeypatch, module, loader, error):
    def fail():
        raise error

    monkeypatch.setattr(getattr(keras.datasets, module), "load_data", fail)
    with pytest.raises(DatasetUnavailableError) as info:
        loader()
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, ConnectionError)
    assert info.value.__cause__ is error
    message = str(info.value)
    assert "keras_vae_layers.datasets.load_shapes(n, size=28)" in message
    assert f"keras.datasets.{module}.load_data()" in message


@pytest.mark.parametrize(
    "module, loader",
    [("mnist", load_mnist), ("fashion_mnist", load_fashion_mnist)],
)
def test_keras_loader_adds_channel_axis(monkeypatch, module, loader):
    monkeypatch.setattr(getattr(keras.datasets, module), "load_data",
                        _fake_keras_data)
    (x_train, y_train), (x_test, y_test) = loader()
    assert x_train.shape == (6, 28, 28, 1) and x_train.dtype == np.uint8
    assert x_test.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(y_train, np.arange(6))
    (xf, _), (xf_test, _) = loader(dtype="float32")
    assert xf.dtype == np.float32 and xf.max() == 1.0 and xf.min() >= 0.0
    np.testing.assert_allclose(xf * 255.0, x_train, atol=1e-4)
    with pytest.raises(ValueError, match="`dtype`"):
        loader(dtype="float16")


# ---------------------------------------------------------------------------
# load_image_folder
# ---------------------------------------------------------------------------

COLOURS = {
    "a_wide.png": ((120, 80), (255, 0, 0)),
    "b_tall.jpg": ((60, 200), (0, 255, 0)),
    "c_big.jpeg": ((300, 240), (0, 0, 255)),
    "d_small.bmp": ((20, 30), (255, 255, 0)),
    "e_anim.gif": ((64, 64), (0, 255, 255)),
}


@pytest.fixture()
def image_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, (wh, colour) in COLOURS.items():
        img = Image.new("RGB", wh, colour)
        if name.endswith(".gif"):
            img = img.convert("P")
        img.save(folder / name, quality=95)
    Image.new("L", (50, 50), 128).save(folder / "f_gray.png")
    Image.new("RGBA", (40, 40), (10, 20, 30, 255)).save(folder / "g_rgba.png")
    # A PNG cut short and a "JPEG" that is text: both must be skipped.
    good = folder / "a_wide.png"
    (folder / "h_corrupt.png").write_bytes(good.read_bytes()[:60])
    (folder / "i_fake.jpg").write_text("not an image at all")
    # No image extension: ignored silently.
    (folder / "notes.txt").write_text("hello")
    sub = folder / "sub"
    sub.mkdir()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(sub / "z_nested.png")
    return folder


def _load_quiet(*args, **kwargs):
    kwargs.setdefault("verbose", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_image_folder(*args, **kwargs)


def test_image_folder_loads_good_files_and_warns_about_bad(image_folder):
    with pytest.warns(UserWarning, match="skipped 2 unreadable") as record:
        images = load_image_folder(image_folder, verbose=False)
    message = str(record[0].message)
    assert "h_corrupt.png" in message and "i_fake.jpg" in message
    assert "notes.txt" not in message
    assert images.shape == (7, 96, 96, 3)
    assert images.dtype == np.uint8
    # Sorted file order; solid colours survive crop + resize (JPEG: roughly).
    means = images.reshape(7, -1, 3).mean(axis=1)
    expected = [c for _, c in COLOURS.values()] + [(128,) * 3, (10, 20, 30)]
    np.testing.assert_allclose(means, expected, atol=4)


def test_image_folder_custom_size_grayscale_and_recursive(image_folder):
    images = _load_quiet(image_folder, size=(32, 48))
    assert images.shape == (7, 32, 48, 3)
    gray = _load_quiet(image_folder, size=20, color_mode="grayscale")
    assert gray.shape == (7, 20, 20, 1) and gray.dtype == np.uint8
    nested = _load_quiet(image_folder, size=16, recursive=True)
    assert nested.shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(nested[-1].reshape(-1, 3)[0], (1, 2, 3))
    only_png = _load_quiet(image_folder, size=16, extensions=(".PNG",))
    assert only_png.shape == (3, 16, 16, 3)


def test_image_folder_center_crop(tmp_path):
    # Three vertical bands: a centred square crop keeps only the middle one.
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, :100, 0] = 255
    arr[:, 100:200, 1] = 255
    arr[:, 200:, 2] = 255
    Image.fromarray(arr).save(tmp_path / "bands.png")
    cropped = _load_quiet(tmp_path, size=30)[0]
    assert cropped.shape == (30, 30, 3)
    assert cropped[..., 1].min() >= 250
    assert cropped[..., 0].max() <= 5 and cropped[..., 2].max() <= 5
    squashed = _load_quiet(tmp_path, size=30, crop="none")[0]
    assert squashed[:, 2, 0].min() >= 250  # red band on the left
    assert squashed[:, -3, 2].min() >= 250  # blue band on the right
    # Crop to the target's own aspect ratio when it is not square.
    wide = _load_quiet(tmp_path, size=(10, 30))[0]
    assert wide[:, 1, 0].min() >= 250 and wide[:, -2, 2].min() >= 250


def test_image_folder_errors(tmp_path, image_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(empty, verbose=False)
    missing = tmp_path / "does_not_exist"
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        load_image_folder(missing, verbose=False)
    with pytest.raises(ValueError, match="not a folder"):
        load_image_folder(image_folder / "notes.txt", verbose=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.warns(UserWarning, match="skipped 1"):
        with pytest.raises(ValueError, match="none of the 1 image files"):
            load_image_folder(broken, verbose=False)
    for kwargs, fragment in [({"size": 0}, "size"),
                             ({"size": (1, 2, 3)}, "`size`"),
                             ({"crop": "top"}, "`crop`"),
                             ({"color_mode": "cmyk"}, "`color_mode`"),
                             ({"num_workers": 0}, "`num_workers`")]:
        with pytest.raises(ValueError, match="load_image_folder") as info:
            load_image_folder(image_folder, verbose=False, **kwargs)
        assert fragment in str(info.value)


def test_image_folder_cache_written_then_reused(tmp_path, image_folder):
    cache = tmp_path / "cache" / "faces.npy"
    first = _load_quiet(image_folder, size=24, cache=cache)
    assert cache.exists()
    # Exactly the requested path: no ".npz" appended, no temp files left.
    assert os.listdir(cache.parent) == ["faces.npy"]
    for path in sorted(image_folder.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    image_folder.rmdir()
    second = load_image_folder(image_folder, size=24, cache=cache,
                               verbose=False)
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.uint8
    # Other settings make the cache stale; the folder is then needed again.
    with pytest.raises(FileNotFoundError):
        load_image_folder(image_folder, size=32, cache=cache, verbose=False)
    with pytest.raises(FileNotFoundError):
        load_image_folder(image_folder, size=24, color_mode="grayscale",
                          cache=cache, verbose=False)


def test_image_folder_stale_cache_is_rebuilt(tmp_path, image_folder, capsys):
    cache = tmp_path / "c.npz"
    _load_quiet(image_folder, size=16, cache=cache)
    bigger = _load_quiet(image_folder, size=20, cache=cache, verbose=True)
    assert bigger.shape[1:] == (20, 20, 3)
    assert "rebuilding" in capsys.readouterr().err
    # The cache now holds the new settings: it is used without the folder.
    again = load_image_folder(tmp_path / "gone", size=20, cache=cache,
                              verbose=False)
    np.testing.assert_array_equal(again, bigger)


def test_image_folder_unreadable_cache_is_rebuilt(tmp_path, image_folder):
    cache = tmp_path / "c.npz"
    cache.write_bytes(b"garbage, not a zip")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        images = load_image_folder(image_folder, size=8, cache=cache,
                                   verbose=False)
    messages = [str(w.message) for w in record]
    assert any("unreadable cache file" in m for m in messages)
    with np.load(cache) as data:
        np.testing.assert_array_equal(data["images"], images)


def test_image_folder_cache_never_half_written(tmp_path, image_folder,
                                               monkeypatch):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache = cache_dir / "imgs.npy"

    def crash_midway(file, *args, **kwargs):
        file.write(b"PK\x03\x04 partial archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        _load_quiet(image_folder, size=8, cache=cache)
    assert not cache.exists()
    assert os.listdir(cache_dir) == []  # the temp file was cleaned up
    monkeypatch.undo()

    # A failed rewrite leaves the previous good cache intact.
    good = _load_quiet(image_folder, size=8, cache=cache)
    before = cache.read_bytes()
    monkeypatch.setattr(np, "savez", crash_midway)
    with pytest.raises(OSError):
        _load_quiet(image_folder, size=12, cache=cache)
    assert cache.read_bytes() == before
    assert os.listdir(cache_dir) == ["imgs.npy"]
    monkeypatch.undo()
    np.testing.assert_array_equal(
        _load_quiet(tmp_path / "gone", size=8, cache=cache), good)


def test_image_folder_progress_output(image_folder, capsys):
    _load_quiet(image_folder, size=8, verbose=True, progress_every=3)
    err = capsys.readouterr().err
    assert "reading 9 files" in err
    assert "3/9 files" in err and "9/9 files" in err
    _load_quiet(image_folder, size=8, verbose=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def _write_png16(path, samples):
    """Writes a 16-bit PNG by hand (Pillow cannot write 16-bit colour).

    `samples`: uint16 array (h, w) for greyscale, (h, w, 3) RGB, (h, w, 4)
    RGBA.
    """
    arr = np.asarray(samples, dtype=">u2")
    if arr.ndim == 2:
        arr = arr[..., None]
    h, w, c = arr.shape
    color_type = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# A 0..65535 ramp with the values where 8-bit scaling goes wrong.
RAMP16 = np.concatenate([
    np.array([0, 255, 256, 257, 511, 32767, 32768, 65280, 65534, 65535]),
    np.linspace(0, 65535, 54).astype(np.int64),
]).astype(np.uint16).reshape(8, 8)


def test_image_folder_16_bit_greyscale_png_is_scaled_not_saturated(tmp_path):
    Image.fromarray(RAMP16).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode == "I;16"
    expected = (RAMP16 >> 8).astype(np.uint8)
    gray = _load_quiet(tmp_path, size=8, color_mode="grayscale")
    np.testing.assert_array_equal(gray[0, ..., 0], expected)
    rgb = _load_quiet(tmp_path, size=8)
    np.testing.assert_array_equal(rgb[0], np.repeat(expected[..., None], 3,
                                                    axis=-1))
    # The symptom reported: a full ramp loaded with mean 254 (saturated).
    assert abs(float(rgb.mean()) - float(expected.mean())) < 1e-9
    assert 120 < rgb.mean() < 135


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_png_matches_16_bit_greyscale(tmp_path, channels):
    # Pillow reduces 16-bit RGB(A) PNGs itself (high byte); greyscale must
    # follow the same rule so both kinds of file in one set agree.
    samples = np.repeat(RAMP16[..., None], channels, axis=-1)
    if channels == 4:
        samples[..., 3] = 65535
    _write_png16(tmp_path / "colour.png", samples)
    _write_png16(tmp_path / "gray.png", RAMP16)
    colour = datasets.decode_image(tmp_path / "colour.png", size=8)
    gray = datasets.decode_image(tmp_path / "gray.png", size=8)
    expected = np.repeat((RAMP16 >> 8).astype(np.uint8)[..., None], 3, -1)
    np.testing.assert_array_equal(colour, expected)
    np.testing.assert_array_equal(gray, expected)


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_decode_image_other_wide_greyscale_modes(tmp_path, mode):
    # "I;16B": big-endian 16-bit (TIFF); "I": 32-bit, which Pillow uses for
    # 16-bit PGM files. Both are read as 16-bit samples.
    if mode == "I":
        Image.fromarray(RAMP16.astype(np.int32)).save(tmp_path / "ramp.pgm")
        file = tmp_path / "ramp.pgm"
    else:
        Image.frombytes(mode, (8, 8), RAMP16.astype(">u2").tobytes()).save(
            tmp_path / "ramp.tif")
        file = tmp_path / "ramp.tif"
    assert Image.open(file).mode == mode
    got = datasets.decode_image(file, size=8, color_mode="grayscale")
    np.testing.assert_array_equal(got[..., 0], RAMP16 >> 8)
    # Out-of-range 32-bit values clip to the 16-bit range.
    if mode == "I":
        wide = np.array([[-5, 70000]], np.int32).repeat(2, axis=0)
        Image.fromarray(wide).save(tmp_path / "wide.tif")
        got = datasets.decode_image(tmp_path / "wide.tif", size=(2, 2),
                                    crop="none", color_mode="grayscale")
        np.testing.assert_array_equal(got[..., 0], [[0, 255], [0, 255]])


@pytest.fixture()
def symlink_folder(tmp_path):
    folder = tmp_path / "links"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (10, 10), (50, 60, 70)).save(folder / "a_good.png")
    os.symlink("b_loop.png", folder / "b_loop.png")  # points at itself
    os.symlink("missing.png", folder / "c_broken.png")
    os.symlink("a_good.png", folder / "d_alias.png")  # a valid link: read
    os.symlink("sub", folder / "e_dir_link.png")  # a folder: not a file
    Image.new("RGB", (10, 10), (1, 2, 3)).save(folder / "sub" / "g_deep.png")
    os.symlink("../b_loop.png", folder / "sub" / "h_loop2.png")
    return folder


@pytest.mark.parametrize("recursive", [False, True])
def test_image_folder_skips_looping_and_broken_symlinks(symlink_folder,
                                                        recursive):
    with pytest.warns(UserWarning, match="skipped") as record:
        images = load_image_folder(symlink_folder, size=4, verbose=False,
                                   recursive=recursive)
    message = str(record[0].message)
    assert "b_loop.png" in message and "c_broken.png" in message
    assert "e_dir_link" not in message
    if recursive:
        assert "skipped 3 unreadable" in message and "h_loop2.png" in message
        assert images.shape == (3, 4, 4, 3)
    else:
        assert "skipped 2 unreadable" in message
        assert images.shape == (2, 4, 4, 3)  # a_good.png and its alias
    np.testing.assert_array_equal(images[0, 0, 0], (50, 60, 70))
    np.testing.assert_array_equal(images[1], images[0])


def test_list_image_files_rules(symlink_folder):
    # Opening a FIFO blocks until a writer appears, so a listed FIFO would
    # hang the load (it did in recursive mode): FIFOs are never listed.
    os.mkfifo(symlink_folder / "f_fifo.png")
    os.mkfifo(symlink_folder / "sub" / "i_fifo.png")
    names = [os.path.relpath(f, symlink_folder)
             for f in datasets.list_image_files(symlink_folder)]
    # Regular files and links to them, plus the broken / looping links
    # (listed so the load reports them); no FIFO, no folder link.
    assert names == ["a_good.png", "b_loop.png", "c_broken.png",
                     "d_alias.png"]
    deep = [os.path.relpath(f, symlink_folder) for f in
            datasets.list_image_files(symlink_folder, recursive=True,
                                      extensions=".PNG")]
    assert deep == names + [os.path.join("sub", "g_deep.png"),
                            os.path.join("sub", "h_loop2.png")]
    assert datasets.list_image_files(symlink_folder, extensions=".jpg") == []
    with pytest.raises(FileNotFoundError, match="list_image_files.*nowhere"):
        datasets.list_image_files(symlink_folder / "nowhere")
    with pytest.raises(ValueError, match="list_image_files.*not a folder"):
        datasets.list_image_files(symlink_folder / "a_good.png")
    for bad in ((), [".png", 3], 5):
        with pytest.raises(ValueError,
                           match="list_image_files: `extensions`"):
            datasets.list_image_files(symlink_folder, extensions=bad)


def test_listing_and_decoding_on_their_own_match_the_folder_load(
        image_folder):
    loaded = _load_quiet(image_folder, size=(12, 20), color_mode="grayscale")
    rows = []
    for file in datasets.list_image_files(image_folder):
        try:
            rows.append(datasets.decode_image(file, size=(12, 20),
                                              color_mode="grayscale"))
        except OSError:
            assert os.path.basename(file) in ("h_corrupt.png", "i_fake.jpg")
    np.testing.assert_array_equal(np.stack(rows), loaded)
    # A binary file object works as well as a path.
    with open(image_folder / "f_gray.png", "rb") as f:
        from_file = datasets.decode_image(f, size=(12, 20),
                                          color_mode="grayscale")
    np.testing.assert_array_equal(from_file, loaded[5])
    for kwargs, fragment in [({"size": 0}, "size"),
                             ({"crop": "top"}, "`crop`"),
                             ({"color_mode": "L"}, "`color_mode`")]:
        with pytest.raises(ValueError, match="decode_image") as info:
            datasets.decode_image(image_folder / "f_gray.png", **kwargs)
        assert fragment in str(info.value)


# ---------------------------------------------------------------------------
# make_image_dataset
# ---------------------------------------------------------------------------


def _collect(ds):
    return [b.numpy() for b in ds]


def test_dataset_yields_scaled_float_batches_in_order():
    images = np.arange(10 * 4 * 4 * 3, dtype=np.int64).reshape(10, 4, 4, 3)
    images = (images % 256).astype(np.uint8)
    batches = _collect(make_image_dataset(images, batch_size=4,
                                          shuffle=False))
    assert [b.shape for b in batches] == [(4, 4, 4, 3), (4, 4, 4, 3),
                                         (2, 4, 4, 3)]
    for b in batches:
        assert b.dtype == np.float32
        assert b.min() >= 0.0 and b.max() <= 1.0
    np.testing.assert_allclose(np.concatenate(batches), images / 255.0,
                               rtol=1e-6)


def test_dataset_shuffle_is_a_permutation_and_seeded():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1) * 5
    ds = make_image_dataset(images, batch_size=8, seed=3)
    epoch1 = np.concatenate(_collect(ds)).ravel()
    epoch2 = np.concatenate(_collect(ds)).ravel()
    expected = np.sort(images.ravel() / 255.0).astype(np.float32)
    np.testing.assert_allclose(np.sort(epoch1), expected, rtol=1e-6)
    np.testing.assert_allclose(np.sort(epoch2), expected, rtol=1e-6)
    assert not np.array_equal(epoch1, np.sort(epoch1))
    assert not np.array_equal(epoch1, epoch2)  # reshuffled every epoch
    again = make_image_dataset(images, batch_size=8, seed=3)
    np.testing.assert_array_equal(np.concatenate(_collect(again)).ravel(),
                                  epoch1)


def test_dataset_drop_remainder_repeat_and_grayscale():
    images, _ = load_shapes(10, size=8)
    gray = images[..., 0]  # rank 3 gets a channel axis back
    ds = make_image_dataset(gray, batch_size=4, drop_remainder=True)
    assert ds.element_spec.shape.as_list() == [4, 8, 8, 1]
    assert len(_collect(ds)) == 2
    endless = make_image_dataset(images, batch_size=4, repeat=True)
    batches = _collect(endless.take(7))
    assert len(batches) == 7
    assert all(b.shape == (4, 8, 8, 1) for b in batches)


def test_dataset_feeds_keras_fit():
    images, _ = load_shapes(64, size=8, seed=0)
    ds = make_image_dataset(images, batch_size=16, seed=0)
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Reshape((8, 8, 1))(
        keras.layers.Dense(64, activation="sigmoid")(
            keras.layers.Flatten()(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(ds.map(lambda x: (x, x)), epochs=1, verbose=0,
                        shuffle=False)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize(
    "images, kwargs, fragment",
    [
        (np.zeros((4, 8, 8, 1), np.float32), {}, "uint8"),
        ([[0]], {}, "numpy array"),
        (np.zeros((4, 8), np.uint8), {}, "rank 4"),
        (np.zeros((0, 8, 8, 1), np.uint8), {}, "empty"),
        (np.zeros((4, 8, 8, 1), np.uint8), {"batch_size": 0}, "batch_size"),
        (np.zeros((4, 8, 8, 1), np.uint8), {"buffer_size": 0}, "buffer_size"),
    ],
)
def test_dataset_validation(images, kwargs, fragment):
    with pytest.raises(ValueError, match="make_image_dataset") as info:
        make_image_dataset(images, **kwargs)
    assert fragment in str(info.value)


def test_load_dataset_by_name_and_unknown_names(monkeypatch):
    from keras_vae_layers.datasets import load_dataset

    images, factors = load_dataset("shapes", n=12, size=16, seed=3)
    assert images.shape == (12, 16, 16, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, datasets.load_shapes(12, size=16, seed=3)[0])
    with pytest.raises(ValueError, match="unknown dataset name 'cifar10'; expected one of 'shapes', 'mnist', 'fashion_mnist'"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="`size` must be 28 or 32"):
        load_dataset("mnist", size=64)

    fake = (np.full((5, 28, 28), 7, np.uint8), np.arange(5))
    monkeypatch.setattr(keras.datasets.mnist, "load_data",
                        lambda: (fake, fake))
    x, y = load_dataset("mnist", n=3, size=32)
    assert x.shape == (3, 32, 32, 1)
    assert x[:, :2].max() == 0 and x[:, 2:30, 2:30].min() == 7  # padded
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_image_folder_max_images_decodes_only_a_prefix(tmp_path):
    from PIL import Image

    for i in range(6):
        Image.fromarray(np.full((10, 10, 3), 40 * i, np.uint8)).save(
            tmp_path / f"{i:02d}.png")
    got = datasets.load_image_folder(tmp_path, size=(8, 8), max_images=4,
                               verbose=False)
    assert got.shape == (4, 8, 8, 3)
    assert [int(img.mean()) for img in got] == [0, 40, 80, 120]
    cache = tmp_path / "c.npz"
    datasets.load_image_folder(tmp_path, size=(8, 8), max_images=2, cache=cache,
                         verbose=False)
    # a different limit is a different cache key: not served the 2 images
    assert len(datasets.load_image_folder(tmp_path, size=(8, 8), cache=cache,
                                    verbose=False)) == 6
    with pytest.raises(ValueError, match="`max_images` must be an integer >= 1"):
        datasets.load_image_folder(tmp_path, max_images=0)
