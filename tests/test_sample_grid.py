import copy
import glob
import os

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import binary_data, dense_vae
from keras_vae_layers import build_conv_encoder_decoder
from keras_vae_layers.callbacks.sample_grid import SampleGridLogger
from keras_vae_layers.callbacks.sample_grid import write_reconstruction_grid
from keras_vae_layers.callbacks.sample_grid import write_sample_grid
from keras_vae_layers.images import to_uint8
from keras_vae_layers.models import VAEModel
from keras_vae_layers.models.vae import latent_points

H, W, LATENT = 6, 5, 3


def image_decoder(channels=1, activation="sigmoid", latent=LATENT):
    z = keras.Input((latent,))
    h = keras.layers.Dense(H * W * channels, activation=activation)(z)
    return keras.Model(z, keras.layers.Reshape((H, W, channels))(h))


def load(path):
    with Image.open(path) as img:
        img.load()
        return img.mode, np.asarray(img)


def cell(grid, r, c, h, w, pad=1):
    y, x = pad + r * (h + pad), pad + c * (w + pad)
    return grid[y:y + h, x:x + w]


def tiny_conv_vae(from_logits=False, seed=0):
    encoder, decoder = build_conv_encoder_decoder(
        (8, 8, 1), z_dim=2, encoder_filters=(4,), encoder_kernel_sizes=3,
        encoder_strides=2, decoder_filters=(1,), decoder_kernel_sizes=3,
        decoder_strides=2, seed=seed, kl_layer=False,
        output_activation=None if from_logits else "sigmoid",
    )
    vae = VAEModel(encoder, decoder, from_logits=from_logits)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    return vae


def images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 8, 8, 1), "float32")
    for i in range(n):
        r, c = rng.integers(0, 5, size=2)
        x[i, r:r + 3, c:c + 3] = 1.0
    return x


# --------------------------------------------------------- write_sample_grid


@pytest.mark.parametrize("channels,mode", [(1, "L"), (3, "RGB")])
def test_grid_size_mode_and_content(tmp_path, channels, mode):
    decoder = image_decoder(channels)
    path = write_sample_grid(decoder, tmp_path / "g.png", rows=3, cols=4,
                             padding=2)
    assert path == str(tmp_path / "g.png")
    got_mode, grid = load(path)
    assert got_mode == mode
    assert grid.shape[:2] == (3 * H + 4 * 2, 4 * W + 5 * 2)
    assert grid.std() > 0
    # Each cell is the decoded latent point, clipped and converted to uint8.
    z = latent_points(12, LATENT, 0, "normal", 3.0)
    expected = to_uint8(decoder.predict_on_batch(z))
    for i in (0, 5, 11):
        got = cell(grid, i // 4, i % 4, H, W, pad=2)
        np.testing.assert_array_equal(
            got.reshape(H, W, channels), expected[i])
    assert os.listdir(tmp_path) == ["g.png"]


def test_same_seed_same_grid_and_explicit_z(tmp_path):
    decoder = image_decoder()
    a = load(write_sample_grid(decoder, tmp_path / "a.png", seed=7))[1]
    b = load(write_sample_grid(decoder, tmp_path / "b.png", seed=7))[1]
    c = load(write_sample_grid(decoder, tmp_path / "c.png", seed=8))[1]
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
    z = latent_points(32, LATENT, 7, "normal", 3.0)
    d = load(write_sample_grid(decoder, tmp_path / "d.png", z=z))[1]
    np.testing.assert_array_equal(a, d)
    u = latent_points(6, LATENT, 1, "uniform", 2.0)
    e = load(write_sample_grid(decoder, tmp_path / "e.png", n=6, rows=2,
                               cols=3, distribution="uniform", limit=2.0,
                               seed=1))[1]
    f = load(write_sample_grid(decoder, tmp_path / "f.png", z=u, rows=2,
                               cols=3))[1]
    np.testing.assert_array_equal(e, f)
    # Fewer samples than cells: the rest stays at the padding value.
    g = load(write_sample_grid(decoder, tmp_path / "g.png", n=5, rows=2,
                               cols=3))[1]
    assert np.all(cell(g, 1, 2, H, W) == 255)


def test_logits_get_a_sigmoid(tmp_path):
    decoder = image_decoder(activation=None)
    z = latent_points(4, LATENT, 0)
    grid = load(write_sample_grid(decoder, tmp_path / "l.png", z=z, rows=1,
                                  cols=4, from_logits=True))[1]
    logits = decoder.predict_on_batch(z).astype("float64")
    expected = to_uint8(1.0 / (1.0 + np.exp(-logits)))
    np.testing.assert_allclose(cell(grid, 0, 3, H, W).astype(int),
                               expected[3, ..., 0].astype(int), atol=1)
    raw = load(write_sample_grid(decoder, tmp_path / "r.png", z=z, rows=1,
                                 cols=4))[1]
    assert np.any(raw != grid)


def test_sharpening_changes_pixels(tmp_path):
    decoder = image_decoder()
    plain = load(write_sample_grid(decoder, tmp_path / "p.png"))[1]
    ident = load(write_sample_grid(decoder, tmp_path / "i.png", sharpen=1))[1]
    sharp = load(write_sample_grid(decoder, tmp_path / "s.png", sharpen=5))[1]
    np.testing.assert_array_equal(plain, ident)
    assert np.any(plain != sharp)
    assert plain.shape == sharp.shape


def test_flat_decoder_outputs(tmp_path):
    z_in = keras.Input((2,))
    square = keras.Model(z_in, keras.layers.Dense(16)(z_in))
    grid = load(write_sample_grid(square, tmp_path / "sq.png", rows=2,
                                  cols=2))[1]
    assert grid.shape == (2 * 4 + 3, 2 * 4 + 3)
    odd = keras.Model(z_in, keras.layers.Dense(12)(z_in))
    with pytest.raises(ValueError, match=r"image_shape="):
        write_sample_grid(odd, tmp_path / "odd.png")
    grid = load(write_sample_grid(odd, tmp_path / "odd.png", rows=1, cols=2,
                                  image_shape=(3, 4)))[1]
    assert grid.shape == (3 + 2, 2 * 4 + 3)


def test_write_sample_grid_errors(tmp_path):
    decoder = image_decoder()
    path = tmp_path / "x.png"
    with pytest.raises(ValueError, match=r"rows=2 x cols=3 holds 6 .* 7"):
        write_sample_grid(decoder, path, n=7, rows=2, cols=3)
    with pytest.raises(ValueError, match=r"size 4 but the decoder expects "
                                         r"inputs of size 3"):
        write_sample_grid(decoder, path, z=np.zeros((8, 4)))
    with pytest.raises(ValueError, match=r"`n`=3 does not match the 8"):
        write_sample_grid(decoder, path, n=3, z=np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"unknown `distribution` 'cauchy'"):
        write_sample_grid(decoder, path, distribution="cauchy")
    with pytest.raises(ValueError, match=r"`limit` must be > 0"):
        write_sample_grid(decoder, path, limit=0)
    with pytest.raises(ValueError, match=r"`sharpen` must be >= 0"):
        write_sample_grid(decoder, path, sharpen=-1)
    with pytest.raises(ValueError, match=r"`decoder` must be a Keras"):
        write_sample_grid("decoder", path)
    assert not path.exists()


def test_reconstruction_grid_function(tmp_path):
    vae = tiny_conv_vae()
    x = images(5)
    vae.build((None, 8, 8, 1))
    path = write_reconstruction_grid(vae, x, tmp_path / "r.png", cols=3)
    grid = load(path)[1]
    # 2 * ceil(5 / 3) = 4 rows of 3 columns.
    assert grid.shape == (4 * 8 + 5, 3 * 8 + 4)
    expected = to_uint8(vae.reconstruct(x))
    for i in range(5):
        r, c = divmod(i, 3)
        np.testing.assert_array_equal(cell(grid, 2 * r, c, 8, 8),
                                      to_uint8(x[i])[..., 0])
        np.testing.assert_allclose(cell(grid, 2 * r + 1, c, 8, 8).astype(int),
                                   expected[i, ..., 0].astype(int), atol=1)
    assert np.all(cell(grid, 2, 2, 8, 8) == 255)
    assert np.all(cell(grid, 3, 2, 8, 8) == 255)


# ------------------------------------------------------------- the callback


def test_callback_writes_fixed_latent_points_each_epoch(tmp_path):
    vae = tiny_conv_vae()
    vae.decoder.trainable = False  # the grids can only differ by z
    cb = SampleGridLogger(tmp_path / "grids", rows=2, cols=3, seed=4)
    vae.fit(images(), epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    files = sorted(os.listdir(tmp_path / "grids"))
    assert files == ["samples_epoch0001.png", "samples_epoch0002.png"]
    mode, one = load(tmp_path / "grids" / files[0])
    two = load(tmp_path / "grids" / files[1])[1]
    assert mode == "L"
    assert one.shape == (2 * 8 + 3, 3 * 8 + 4)
    assert one.std() > 0
    np.testing.assert_array_equal(one, two)
    ref = load(write_sample_grid(vae.decoder, tmp_path / "ref.png", rows=2,
                                 cols=3, seed=4))[1]
    np.testing.assert_array_equal(one, ref)
    assert cb.last_paths == {
        "samples": str(tmp_path / "grids" / "samples_epoch0002.png")}


def test_every_n_epochs_and_changing_weights(tmp_path):
    vae = tiny_conv_vae()
    cb = SampleGridLogger(tmp_path, every_n_epochs=2, rows=1, cols=4,
                          distribution="uniform", limit=2.0,
                          filename_pattern="s{epoch}.png")
    vae.fit(images(), epochs=4, batch_size=8, verbose=0, callbacks=[cb])
    assert sorted(os.listdir(tmp_path)) == ["s2.png", "s4.png"]
    # The decoder trains, so the same points decode differently.
    assert np.any(load(tmp_path / "s2.png")[1] != load(tmp_path / "s4.png")[1])


def test_reconstructions_and_tensorboard(tmp_path):
    import tensorflow as tf

    vae = tiny_conv_vae()
    x = images()
    cb = SampleGridLogger(tmp_path / "g", rows=2, cols=4, sharpen=3,
                          reconstruction_images=x[:4],
                          log_dir=tmp_path / "tb")
    vae.fit(x, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    assert cb._writer is None  # closed at the end of training
    grid = load(tmp_path / "g" / "reconstructions_epoch0001.png")[1]
    assert grid.shape == (2 * 8 + 3, 4 * 8 + 5)
    for i in range(4):
        np.testing.assert_array_equal(cell(grid, 0, i, 8, 8),
                                      to_uint8(x[i])[..., 0])
    assert grid[9:].std() > 0
    # The model's sampling switches were not touched.
    assert all(not layer.deterministic for layer in vae.sampling_layers)
    events = glob.glob(str(tmp_path / "tb" / "events.out.tfevents*"))
    assert len(events) == 1
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            tags.add(value.tag)
    assert {"samples", "reconstructions"} <= tags


def test_logits_vae_grid_matches_write_sample_grid(tmp_path):
    vae = tiny_conv_vae(from_logits=True)
    vae.decoder.trainable = False
    cb = SampleGridLogger(tmp_path, rows=2, cols=2)
    vae.fit(images(), epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    got = load(tmp_path / "samples_epoch0001.png")[1]
    ref = load(write_sample_grid(vae, tmp_path / "ref.png", rows=2,
                                 cols=2))[1]
    np.testing.assert_array_equal(got, ref)
    raw = load(write_sample_grid(vae.decoder, tmp_path / "raw.png", rows=2,
                                 cols=2))[1]
    assert np.any(raw != got)


def test_functional_nested_vae(tmp_path):
    vae = dense_vae(nested=True)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    x = binary_data(32)
    cb = SampleGridLogger(tmp_path, reconstruction_images=x[:3])
    vae.fit(x, x, epochs=1, batch_size=16, verbose=0, callbacks=[cb])
    grid = load(tmp_path / "samples_epoch0001.png")[1]
    assert grid.shape == (4 * 4 + 5, 8 * 4 + 9)  # 16 outputs -> 4x4 images
    recon = load(tmp_path / "reconstructions_epoch0001.png")[1]
    assert recon.shape == (2 * 4 + 3, 3 * 4 + 4)
    np.testing.assert_array_equal(cell(recon, 0, 1, 4, 4),
                                  to_uint8(x[1].reshape(4, 4)))
    # The functions accept the whole VAE and find its decoder sub-model.
    via_vae = load(write_sample_grid(vae, tmp_path / "v.png"))[1]
    via_decoder = load(write_sample_grid(vae.get_layer("decoder"),
                                         tmp_path / "d.png"))[1]
    np.testing.assert_array_equal(via_vae, via_decoder)
    again = load(write_reconstruction_grid(vae, x[:3], tmp_path / "r.png"))[1]
    np.testing.assert_array_equal(again, recon)


def test_flat_vae_needs_an_explicit_decoder(tmp_path):
    vae = dense_vae(nested=False)
    vae.compile(optimizer="adam", loss="binary_crossentropy")
    x = binary_data(16)
    with pytest.raises(ValueError, match=r"SampleGridLogger.*decoder="):
        vae.fit(x, x, epochs=1, verbose=0,
                callbacks=[SampleGridLogger(tmp_path)])
    z_in = keras.Input((2,))
    decoder = keras.Model(z_in, keras.layers.Dense(16)(z_in))
    cb = SampleGridLogger(tmp_path, decoder=decoder, rows=1, cols=2,
                          reconstruction_images=x[:2])
    vae.fit(x, x, epochs=1, verbose=0, callbacks=[cb])
    assert sorted(os.listdir(tmp_path)) == ["reconstructions_epoch0001.png",
                                            "samples_epoch0001.png"]


def test_latent_size_mismatch_is_reported(tmp_path):
    vae = tiny_conv_vae()
    cb = SampleGridLogger(tmp_path, decoder=image_decoder(latent=5),
                          reconstruction_images=images(2))
    with pytest.raises(ValueError, match=r"latents of size 2 but the decoder "
                                         r"expects inputs of size 5"):
        vae.fit(images(), epochs=1, verbose=0, callbacks=[cb])


def test_deepcopy_before_and_after_training(tmp_path):
    vae = tiny_conv_vae()
    decoder = vae.decoder
    cb = SampleGridLogger(tmp_path / "a", reconstruction_images=images(2),
                          log_dir=tmp_path / "tb")
    explicit = SampleGridLogger(tmp_path / "b", decoder=decoder)
    before = copy.deepcopy([cb, explicit])
    assert before[0].model is None
    assert before[1].decoder is decoder  # shared, not copied
    vae.fit(images(), epochs=1, batch_size=8, verbose=0,
            callbacks=[cb, explicit])
    after = copy.deepcopy(cb)
    assert after.model is None and after._z is None
    assert after._writer is None and after._decoder is None
    assert after.reconstruction_images is not cb.reconstruction_images
    np.testing.assert_array_equal(after.reconstruction_images,
                                  cb.reconstruction_images)
    after.directory = str(tmp_path / "c")
    vae.fit(images(), epochs=1, batch_size=8, verbose=0,
            callbacks=[after, before[1]])
    assert sorted(os.listdir(tmp_path / "c")) == [
        "reconstructions_epoch0001.png", "samples_epoch0001.png"]


def test_config_round_trip():
    cb = SampleGridLogger("out", every_n_epochs=3, rows=2, cols=5,
                          distribution="uniform", limit=1.5, seed=9,
                          sharpen=4, reconstruction_images=np.ones((2, 4)),
                          image_shape=(2, 2))
    config = cb.get_config()
    clone = SampleGridLogger.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(clone.reconstruction_images, np.ones((2, 4)))
    assert keras.saving.get_registered_name(SampleGridLogger) == \
        "keras_vae_layers>SampleGridLogger"


@pytest.mark.parametrize("kwargs,match", [
    ({"every_n_epochs": 0}, r"`every_n_epochs` must be an integer >= 1"),
    ({"rows": 0}, r"`rows`"),
    ({"distribution": "cauchy"}, r"unknown `distribution` 'cauchy'"),
    ({"limit": 0.0}, r"`limit` must be > 0"),
    ({"limit": -2}, r"`limit` must be > 0"),
    ({"sharpen": -0.5}, r"`sharpen` must be >= 0"),
    ({"seed": 1.5}, r"`seed` must be an int"),
    ({"filename_pattern": "s{step}.png"}, r"format with only `epoch`"),
    ({"reconstruction_images": np.zeros((0, 4))}, r"non-empty batch"),
    ({"decoder": "dec"}, r"`decoder` must be a Keras"),
    ({"image_shape": (2, 2, 2)}, r"1 or 3 channels"),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=r"SampleGridLogger: .*" + match):
        SampleGridLogger("out", **kwargs)


def test_atomic_files_get_umask_permissions(tmp_path):
    import stat

    from keras_vae_layers.images import save_grid

    old = os.umask(0o022)
    try:
        path = save_grid(np.ones((2, 4, 4)), tmp_path / "g.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


class SubclassedImageDecoder(keras.Model):
    """A decoder with no declared input shape (subclassed)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(H * W, activation="sigmoid")
        self.reshape = keras.layers.Reshape((H, W, 1))

    def call(self, z):
        return self.reshape(self.dense(z))


def test_vae_with_subclassed_decoder(tmp_path):
    x_in = keras.Input((H, W, 1))
    h = keras.layers.Flatten()(x_in)
    encoder = keras.Model(x_in, [keras.layers.Dense(LATENT)(h),
                                 keras.layers.Dense(LATENT)(h)])
    vae = VAEModel(encoder, SubclassedImageDecoder())
    vae.compile(optimizer="adam")
    x = np.random.default_rng(0).uniform(size=(16, H, W, 1)).astype("float32")
    logger = SampleGridLogger(tmp_path, rows=2, cols=3,
                              reconstruction_images=x[:3])
    vae.fit(x, epochs=1, batch_size=8, verbose=0, callbacks=[logger])
    mode, grid = load(tmp_path / "samples_epoch0001.png")
    assert grid.shape == (2 * H + 3, 3 * W + 4)
    assert os.path.isfile(tmp_path / "reconstructions_epoch0001.png")
    path = write_sample_grid(vae, tmp_path / "direct.png", rows=2, cols=3)
    assert load(path)[1].shape == grid.shape
