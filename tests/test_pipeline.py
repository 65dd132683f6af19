"""Tests for the batch sources of keras_vae_layers.datasets.pipeline.

`ImageBatches` (a `keras.utils.PyDataset`) is checked here on TensorFlow
and, each in a fresh process, on the JAX and PyTorch backends;
`make_image_dataset`'s own tests live in test_datasets.py.
"""

import json
import os
import pickle
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_vae_layers import VAEModel
from keras_vae_layers import build_conv_encoder_decoder
from keras_vae_layers.datasets import ImageBatches
from keras_vae_layers.datasets import load_image_shards
from keras_vae_layers.datasets import load_shapes
from keras_vae_layers.datasets import make_image_dataset
from keras_vae_layers.datasets import open_image_shards
from keras_vae_layers.datasets import write_image_shards

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _images(n=10, shape=(4, 4, 3)):
    values = np.arange(n * int(np.prod(shape)), dtype=np.int64) % 256
    return values.astype(np.uint8).reshape((n,) + shape)


def _epoch(batches):
    return np.concatenate([batches[i] for i in range(len(batches))])


def _values(batches):
    """One epoch of 1x1x1 images, back as the integers 0..255."""
    return np.round(_epoch(batches).ravel() * 255).astype(int)


class _RecordingArray:
    """An array-like that records the indices each batch asks for."""

    def __init__(self, images):
        self.images = images
        self.shape, self.dtype = images.shape, images.dtype
        self.requests = []

    def __getitem__(self, idx):
        self.requests.append(np.array(idx))
        return self.images[idx]


def test_batches_equal_make_image_dataset_in_order():
    images = _images(10)
    batches = ImageBatches(images, batch_size=4, shuffle=False)
    assert len(batches) == 3
    assert [batches[i].shape for i in range(3)] == [(4, 4, 4, 3)] * 2 + [
        (2, 4, 4, 3)]
    reference = np.concatenate(
        [b.numpy() for b in make_image_dataset(images, 4, shuffle=False)])
    epoch = _epoch(batches)
    assert epoch.dtype == np.float32
    # The same float32 product as the tf.data pipeline, bit for bit.
    np.testing.assert_array_equal(epoch, reference)
    np.testing.assert_allclose(epoch, images / 255.0, rtol=1e-6)


def test_drop_remainder_grayscale_targets_and_properties():
    gray = _images(10, (5, 6))
    batches = ImageBatches(gray, batch_size=4, drop_remainder=True,
                           with_targets=True, seed=0)
    assert len(batches) == 2
    assert batches.num_images == 10 and batches.image_shape == (5, 6, 1)
    x, y = batches[1]
    assert x.shape == (4, 5, 6, 1) and y is x
    with pytest.raises(IndexError, match="batch index 2 out of range"):
        batches[2]


def test_shuffle_is_a_seeded_permutation_reshuffled_each_epoch():
    images = np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1)
    batches = ImageBatches(images, batch_size=8, seed=3)
    epoch1 = _values(batches)
    assert sorted(epoch1) == list(range(50))
    assert not np.array_equal(epoch1, np.sort(epoch1))
    assert batches.epoch == 0
    batches.on_epoch_end()
    epoch2 = _values(batches)
    assert batches.epoch == 1 and sorted(epoch2) == list(range(50))
    assert not np.array_equal(epoch1, epoch2)
    # The same seed gives the same orders; a drawn seed is fixed per object.
    again = ImageBatches(images, batch_size=8, seed=3)
    np.testing.assert_array_equal(_values(again), epoch1)
    unseeded = ImageBatches(images, batch_size=8)
    np.testing.assert_array_equal(_epoch(unseeded), _epoch(unseeded))
    other = ImageBatches(images, batch_size=8, seed=4)
    assert not np.array_equal(_values(other), epoch1)


def test_each_batch_reads_sorted_indices():
    source = _RecordingArray(_images(30))
    batches = ImageBatches(source, batch_size=8, seed=0)
    served = [batches[i] for i in range(len(batches))]
    assert len(source.requests) == 4
    for idx, batch in zip(source.requests, served):
        assert np.all(np.diff(idx) > 0)  # ascending: memmap / file order
        np.testing.assert_array_equal(np.round(batch * 255),
                                      source.images[idx])
    assert sorted(np.concatenate(source.requests)) == list(range(30))


def test_batches_pickle_with_their_order():
    batches = ImageBatches(_images(12), batch_size=5, seed=1)
    batches.on_epoch_end()
    copy = pickle.loads(pickle.dumps(batches))
    assert copy.epoch == 1
    np.testing.assert_array_equal(_epoch(copy), _epoch(batches))


@pytest.mark.parametrize(
    "images, kwargs, fragment",
    [
        (np.zeros((4, 8, 8, 1), np.float32), {}, "dtype uint8"),
        (5, {}, "array-like"),
        (np.zeros((4, 8), np.uint8), {}, "rank 4"),
        (np.zeros((0, 8, 8, 1), np.uint8), {}, "empty"),
        (np.zeros((4, 8, 8, 1), np.uint8), {"batch_size": 0}, "batch_size"),
        (np.zeros((4, 8, 8, 1), np.uint8), {"seed": -1}, "seed"),
        (np.zeros((4, 8, 8, 1), np.uint8), {"workers": 0}, "workers"),
        (np.zeros((4, 8, 8, 1), np.uint8),
         {"batch_size": 8, "drop_remainder": True}, "leaves no batch"),
    ],
)
def test_batches_validation(images, kwargs, fragment):
    with pytest.raises(ValueError, match="ImageBatches") as info:
        ImageBatches(images, **kwargs)
    assert fragment in str(info.value)


def test_vae_model_fits_from_batches_with_worker_threads():
    images, _ = load_shapes(48, size=16, seed=0)
    encoder, decoder = build_conv_encoder_decoder(
        (16, 16, 1), 2, (4,), 3, 2, (1,), 3, 2, seed=0, kl_layer=False)
    vae = VAEModel(encoder, decoder, seed=0)
    vae.compile(optimizer="adam")
    batches = ImageBatches(images, batch_size=16, seed=0, workers=2)
    history = vae.fit(batches, epochs=2, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["neg_elbo"]))
    # Keras redrew the order after each epoch (and, on TensorFlow, once more
    # when the epoch iterator was set up).
    assert batches.epoch >= 2


def test_tf_pipelines_say_what_to_install_without_tensorflow(monkeypatch,
                                                             tmp_path):
    shard_dir = _shard_dir(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails
    for call in (lambda: make_image_dataset(_images(4)),
                 lambda: load_image_shards(shard_dir, 2)):
        with pytest.raises(ImportError) as info:
            call()
        message = str(info.value)
        assert "pip install tensorflow" in message
        assert "ImageBatches(" in message
        assert "open_image_shards(out_dir)" in message
    # The backend-neutral path needs no TensorFlow.
    batches = ImageBatches(open_image_shards(shard_dir), batch_size=8)
    assert batches[0].shape == (8, 8, 8, 1)


def _shard_dir(tmp_path, n=24):
    folder = tmp_path / "pngs"
    folder.mkdir()
    images, _ = load_shapes(n, size=8, seed=1)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(folder / f"{i:03d}.png")
    out = tmp_path / "shards"
    write_image_shards(folder, out, size=8, color_mode="grayscale",
                       images_per_shard=10, verbose=False)
    return out


@pytest.mark.parametrize(
    "backend, processes",
    [("tensorflow", False), ("jax", False), ("torch", True)],
)
def test_batches_train_a_keras_model_on_every_backend(tmp_path, backend,
                                                      processes):
    """A plain autoencoder (VAEModel is TensorFlow-only for now) fits from
    ImageBatches over an array and over a shard view, 2 epochs, in a fresh
    process per backend; on torch the batches come from 2 worker processes."""
    shard_dir = _shard_dir(tmp_path)
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=ROOT,
               TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_backend_batches.py"),
         str(shard_dir)] + (["--processes"] if processes else []),
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    for name, n, channels in (("array", 40, 1), ("shards", 24, 1)):
        run = result[name]
        expected_batches = -(-n // 16)
        assert run["batches"] == expected_batches
        assert run["steps"] == [expected_batches] * 2
        assert run["epoch"] >= 2
        assert len(run["loss"]) == 2 and all(np.isfinite(run["loss"]))
        shapes = [s[0] for s in run["served"]]
        assert shapes == [[16, 8, 8, channels]] * (n // 16) + (
            [[n % 16, 8, 8, channels]] if n % 16 else [])
        for _, dtype, low, high, same in run["served"]:
            assert dtype == "float32" and 0.0 <= low <= high <= 1.0
            assert same  # (x, x) for the autoencoder


def test_datasets_import_keras_only_when_a_batch_source_is_reached():
    """The loaders and the shard writer/readers import neither Keras nor
    TensorFlow; `ImageBatches` (a PyDataset) loads `pipeline` on access."""
    from keras_vae_layers import datasets

    assert {"ImageBatches", "make_image_dataset"} <= set(dir(datasets))
    assert datasets.ImageBatches is ImageBatches
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        datasets.nonexistent  # noqa: B018
    package = os.path.join(ROOT, "keras_vae_layers")
    code = (
        "import sys, types\n"
        "package = types.ModuleType('keras_vae_layers')\n"
        f"package.__path__ = [{package!r}]\n"
        "sys.modules['keras_vae_layers'] = package\n"
        "from keras_vae_layers.datasets import open_image_shards\n"
        "from keras_vae_layers.datasets import write_image_shards\n"
        "print('keras' in sys.modules, 'tensorflow' in sys.modules)\n"
        "from keras_vae_layers.datasets import ImageBatches\n"
        "print('keras' in sys.modules, ImageBatches.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND="numpy"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False", "True",
                                  "keras_vae_layers.datasets.pipeline"]
