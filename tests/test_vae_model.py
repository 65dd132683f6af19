import math

import keras
import numpy as np
import pytest
from keras import ops

from helpers import BACKEND, TraceCounter, binary_data, trace_mark
from keras_vae_layers import KLDivergenceLayer, SamplingLayer
from keras_vae_layers.models import VAEModel
from keras_vae_layers.latents import latent_points
from keras_vae_layers.models.vae import LOGGED_METRICS

DIM, LATENT = 12, 3


def make_encoder(kind="triple", kl_beta=None, regularizer=None, counter=None):
    x = keras.Input((DIM,))
    h = keras.layers.Dense(8, activation="tanh",
                           kernel_regularizer=regularizer)(x)
    if counter is not None:
        h = counter(h)
    mu = keras.layers.Dense(LATENT, name="mu")(h)
    logvar = keras.layers.Dense(LATENT, name="logvar")(h)
    if kl_beta is not None:
        mu, logvar = KLDivergenceLayer(beta=kl_beta, name="kl")([mu, logvar])
    if kind == "pair":
        return keras.Model(x, [mu, logvar], name="encoder")
    z = SamplingLayer(seed=3)([mu, logvar])
    if kind == "dict":
        return keras.Model(x, {"z": z, "mu": mu, "logvar": logvar},
                           name="encoder")
    return keras.Model(x, [z, mu, logvar], name="encoder")


def make_decoder(out_dim=DIM, sequential=False):
    if sequential:
        return keras.Sequential(
            [keras.Input((LATENT,)),
             keras.layers.Dense(out_dim, activation="sigmoid")],
            name="decoder",
        )
    z = keras.Input((LATENT,))
    return keras.Model(z, keras.layers.Dense(out_dim, activation="sigmoid")(z),
                       name="decoder")


class SubclassedEncoder(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.mu = keras.layers.Dense(LATENT)
        self.logvar = keras.layers.Dense(LATENT)

    def call(self, x):
        h = self.hidden(x)
        return [self.mu(h), self.logvar(h)]


def np_bce_sum(x, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -(x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=1)


def np_kl(mu, lv):
    return 0.5 * (mu**2 + np.exp(lv) - 1 - lv).sum(axis=1)


def hand_terms(vae, x, beta):
    """Loss terms from numpy, with the model's own sub-models' outputs."""
    _, mu, lv = vae.encoder.predict(x, verbose=0)
    x_hat = vae.decoder.predict(mu, verbose=0)
    reco = np_bce_sum(x, x_hat).mean()
    kl = np_kl(mu, lv).mean()
    return reco, kl, reco + beta * kl


@pytest.fixture
def data():
    return binary_data(64, DIM)


def test_fit_logs_every_metric_including_validation(data):
    vae = VAEModel(make_encoder(), make_decoder(), beta=0.5)
    vae.compile(optimizer="adam")
    hist = vae.fit(data, epochs=2, batch_size=16, verbose=0,
                   validation_data=(data,))
    assert set(hist.history) == set(LOGGED_METRICS)
    h = hist.history
    for prefix in ("", "val_"):
        np.testing.assert_allclose(h[f"{prefix}loss"], h[f"{prefix}total_loss"],
                                   rtol=1e-6)
        np.testing.assert_allclose(
            h[f"{prefix}neg_elbo"],
            np.add(h[f"{prefix}reco_loss"], h[f"{prefix}kl_loss"]), rtol=1e-5)
    assert h["beta"] == [0.5, 0.5]


@pytest.mark.tf_only  # XLA must lift the optimizer's variables out of the step
def test_jit_compile_true_trains_like_the_default_step(data):
    """`jit_compile=True` on TensorFlow: the first step creates the
    optimizer's variables where XLA can lift them out of the compiled
    step, and the losses match those of the default (non-XLA) step."""
    histories = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        vae = VAEModel(make_encoder(), make_decoder(), seed=0)
        vae.set_deterministic(True)
        vae.compile(optimizer="adam", jit_compile=jit_compile)
        histories.append(vae.fit(data, epochs=2, batch_size=16, verbose=0,
                                 shuffle=False).history)
        assert vae.jit_compile is jit_compile
        assert int(vae.optimizer.iterations) == 2 * len(data) // 16
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"],
                               rtol=1e-4)


def test_loss_matches_hand_computation(data):
    vae = VAEModel(make_encoder(), make_decoder(), beta=0.25)
    vae.compile(optimizer="adam")
    vae.fit(data, epochs=1, batch_size=16, verbose=0)
    vae.set_deterministic(True)
    got = vae.evaluate(data, batch_size=64, verbose=0, return_dict=True)
    reco, kl, total = hand_terms(vae, data, 0.25)
    assert got["reco_loss"] == pytest.approx(reco, rel=1e-4)
    assert got["kl_loss"] == pytest.approx(kl, rel=1e-4)
    assert got["total_loss"] == pytest.approx(total, rel=1e-4)
    assert got["total_loss"] == pytest.approx(
        got["reco_loss"] + 0.25 * got["kl_loss"], rel=1e-5)


def test_regularization_losses_are_added(data):
    vae = VAEModel(make_encoder(regularizer=keras.regularizers.L2(0.1)),
                   make_decoder(), beta=1.0)
    vae.compile(optimizer="adam")
    vae.set_deterministic(True)
    got = vae.evaluate(data, batch_size=64, verbose=0, return_dict=True)
    kernel = vae.encoder.layers[1].kernel
    reg = 0.1 * float(np.sum(ops.convert_to_numpy(kernel) ** 2))
    assert reg > 0.01
    assert got["total_loss"] == pytest.approx(
        got["reco_loss"] + got["kl_loss"] + reg, rel=1e-4)


@pytest.mark.parametrize("kind", ["pair", "dict", "triple", "subclassed"])
def test_encoder_structures(kind, data):
    encoder = SubclassedEncoder() if kind == "subclassed" else make_encoder(kind)
    vae = VAEModel(encoder, make_decoder(sequential=(kind == "pair")))
    vae.compile(optimizer="adam")
    hist = vae.fit(data, epochs=1, batch_size=32, verbose=0)
    assert math.isfinite(hist.history["loss"][0])
    out = vae.predict(data[:5], verbose=0)
    assert set(out) == {"z", "mu", "logvar", "reconstruction"}
    assert out["z"].shape == (5, LATENT)
    assert out["reconstruction"].shape == (5, DIM)
    assert not np.allclose(out["z"], out["mu"])  # sampling happens
    assert ops.convert_to_numpy(vae(data[:5])).shape == (5, DIM)


def test_beta_assign_takes_effect_without_retrace(data):
    counter = TraceCounter()
    vae = VAEModel(make_encoder(counter=counter), make_decoder(), beta=1.0)
    vae.compile(optimizer="adam")
    vae.fit(data, epochs=1, batch_size=16, verbose=0)
    vae.set_deterministic(True)
    a = vae.evaluate(data, batch_size=64, verbose=0, return_dict=True)
    mark = trace_mark(counter, vae)  # the train and test steps are traced
    vae.beta.assign(4.0)
    b = vae.evaluate(data, batch_size=64, verbose=0, return_dict=True)
    assert b["total_loss"] - a["total_loss"] == pytest.approx(
        3.0 * a["kl_loss"], rel=1e-4)
    hist = vae.fit(data, epochs=2, batch_size=16, verbose=0)
    assert hist.history["beta"] == [4.0, 4.0]
    assert trace_mark(counter, vae) == mark


def test_set_deterministic_after_first_predict(data):
    vae = VAEModel(make_encoder("pair"), make_decoder())
    out = vae.predict(data, verbose=0)
    assert not np.allclose(out["z"], out["mu"])
    vae.set_deterministic(True)
    assert len(vae.sampling_layers) == 1
    out = vae.predict(data, verbose=0)
    np.testing.assert_array_equal(out["z"], out["mu"])
    vae.set_deterministic(False)
    out = vae.predict(data, verbose=0)
    assert not np.allclose(out["z"], out["mu"])


def test_convenience_methods(data):
    vae = VAEModel(make_encoder(), make_decoder())
    z, mu, lv = vae.encode(data, deterministic=True)
    np.testing.assert_array_equal(z, mu)
    z2, mu2, _ = vae.encode(data)
    assert not np.allclose(z2, mu2)
    np.testing.assert_allclose(mu2, mu, rtol=1e-6)
    rec = vae.reconstruct(data)
    np.testing.assert_allclose(rec, vae.decode(mu), rtol=1e-5)
    # reconstruct() restores the stochastic switch
    assert not vae.sampling_layers[0].deterministic
    assert vae.sample(7, seed=1).shape == (7, DIM)
    np.testing.assert_array_equal(vae.sample(4, seed=2), vae.sample(4, seed=2))
    uni = latent_points(500, LATENT, seed=0, distribution="uniform", limit=8.0)
    assert uni.min() >= -8.0 and uni.max() <= 8.0 and uni.max() > 7.0
    assert vae.sample(3, distribution="uniform", limit=8.0).shape == (3, DIM)
    with pytest.raises(ValueError, match="unknown `distribution` 'cauchy'"):
        vae.sample(3, distribution="cauchy")
    with pytest.raises(ValueError, match="`limit` must be > 0.0"):
        vae.sample(3, distribution="uniform", limit=0)


def test_sample_weight_weights_the_terms(data):
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    vae.set_deterministic(True)
    w = np.zeros(len(data), "float32")
    w[:8] = 1.0
    # Keras drops sample_weight when y is None, so pass the target too.
    weighted = vae.evaluate(data, data, sample_weight=w, batch_size=64,
                            verbose=0, return_dict=True)
    first = vae.evaluate(data[:8], batch_size=64, verbose=0, return_dict=True)
    assert weighted["reco_loss"] == pytest.approx(first["reco_loss"], rel=1e-5)


def test_explicit_target_is_the_reconstruction_target(data):
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    vae.set_deterministic(True)
    clean = vae.evaluate(data, data, batch_size=64, verbose=0,
                         return_dict=True)
    other = vae.evaluate(data, 1.0 - data, batch_size=64, verbose=0,
                         return_dict=True)
    reco_other = np_bce_sum(1.0 - data, vae.reconstruct(data)).mean()
    assert other["reco_loss"] == pytest.approx(reco_other, rel=1e-4)
    assert other["reco_loss"] != pytest.approx(clean["reco_loss"], rel=1e-3)


def test_keras_round_trip_and_weights(tmp_path, data):
    vae = VAEModel(make_encoder(), make_decoder(), beta=0.3,
                   reconstruction_loss="mse", element_reduction="mean",
                   free_bits=0.01)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(data, epochs=1, batch_size=16, verbose=0)
    vae.beta.assign(0.7)
    vae.set_deterministic(True)
    expected = vae.predict(data, verbose=0)
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, VAEModel)
    got = loaded.predict(data, verbose=0)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])
    assert float(ops.convert_to_numpy(loaded.beta)) == pytest.approx(0.7)
    assert loaded.reconstruction_loss == "mse"
    assert loaded.element_reduction == "mean"
    assert loaded.free_bits == 0.01
    hist = loaded.fit(data, epochs=1, batch_size=16, verbose=0)  # resumes
    assert math.isfinite(hist.history["loss"][0])

    wpath = tmp_path / "vae.weights.h5"
    vae.save_weights(wpath)
    fresh = VAEModel(make_encoder(), make_decoder())
    fresh(data[:2])
    fresh.load_weights(wpath)
    np.testing.assert_array_equal(
        fresh.predict(data, verbose=0)["reconstruction"],
        expected["reconstruction"])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_is_finite(policy, data):
    keras.config.set_dtype_policy(policy)
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    hist = vae.fit(data, epochs=2, batch_size=16, verbose=0)
    for key in ("loss", "reco_loss", "kl_loss"):
        assert all(math.isfinite(v) for v in hist.history[key])
    if policy == "mixed_float16":  # loss scaling on every backend
        assert isinstance(vae.optimizer,
                          keras.optimizers.LossScaleOptimizer)
    terms = vae.compute_loss_terms(data[:4])
    dtype = keras.backend.standardize_dtype
    for key in ("total_loss", "reco_loss", "kl_loss", "neg_elbo"):
        assert dtype(terms[key].dtype) == "float32"
    assert dtype(terms["reconstruction"].dtype) == policy.split("_")[1]


# ------------------------------------------------------------- bad input


def test_encoder_with_wrong_output_count_fails_at_construction():
    x = keras.Input((DIM,))
    enc = keras.Model(x, keras.layers.Dense(LATENT)(x))
    with pytest.raises(ValueError, match=r"received 1 output of shape \(None, 3\)"):
        VAEModel(enc, make_decoder())
    enc4 = keras.Model(x, [keras.layers.Dense(LATENT)(x)] * 4)
    with pytest.raises(ValueError, match=r"received 4 output\(s\)"):
        VAEModel(enc4, make_decoder())


def test_subclassed_encoder_wrong_structure_fails_at_first_call(data):
    class Bad(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(LATENT)

        def call(self, x):
            return self.d(x)

    vae = VAEModel(Bad(), make_decoder())
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"received 1 output of shape"):
        vae.fit(data, epochs=1, verbose=0)


def test_decoder_output_shape_mismatch(data):
    vae = VAEModel(make_encoder(), make_decoder(out_dim=DIM + 1))
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"decoder output shape \(None, 13\) does not match the data shape \(None, 12\)"):
        vae.fit(data, epochs=1, verbose=0)


def test_data_shape_mismatch():
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"data of shape \(None, 5\) does not match the encoder input shape \(None, 12\)"):
        vae.fit(np.zeros((8, 5), "float32"), epochs=1, verbose=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reconstruction_loss": "l1"}, "unknown `reconstruction_loss` 'l1'"),
        ({"element_reduction": "max"}, "unknown `element_reduction` 'max'"),
        ({"beta": -0.1}, "`beta` must be >= 0.0, received -0.1"),
        ({"beta": float("nan")}, "`beta` must be finite"),
        ({"encoder": "enc"}, "`encoder` must be a Keras model or layer, received 'enc'"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = {"encoder": make_encoder(), "decoder": make_decoder()}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        VAEModel(**args)


def test_encoder_with_a_kl_layer_is_refused_with_the_fix_named():
    # VAEModel owns the KL term; a KL layer in the encoder would add a second
    # one with its own beta.
    with pytest.raises(ValueError, match=r"contains KLDivergenceLayer\(s\) "
                       r"\['kl'\].*counted twice.*kl_layer=False"):
        VAEModel(make_encoder(kl_beta=2.0), make_decoder())
    # Also when the layer is nested one model deeper.
    inner = make_encoder(kl_beta=1.0)
    x = keras.Input((DIM,))
    outer = keras.Model(x, inner(x), name="outer")
    with pytest.raises(ValueError, match="KLDivergenceLayer"):
        VAEModel(outer, make_decoder())


def test_deprecated_spellings_still_work_and_warn():
    with pytest.warns(DeprecationWarning, match="`reduction` is deprecated"):
        vae = VAEModel(make_encoder(), make_decoder(), reduction="mean")
    assert vae.element_reduction == "mean" == vae.reduction
    with pytest.raises(ValueError, match="both `element_reduction`='mean' "
                       "and its deprecated spelling `reduction`='sum'"):
        VAEModel(make_encoder(), make_decoder(), element_reduction="mean",
                 reduction="sum")
    vae.build((None, DIM))
    assert vae.z_dim == LATENT
    with pytest.warns(DeprecationWarning, match="use the `z_dim` property"):
        assert vae.latent_dim() == LATENT


class SubclassedDecoder(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.out = keras.layers.Dense(DIM)

    def call(self, z):
        return self.out(z)  # logits


@pytest.mark.skipif(
    BACKEND == "torch",
    reason="Keras 3.15 cannot export subclassed models on torch: "
           "torch.export rejects the input structure (a two-line "
           "keras.Model subclass fails identically)")
def test_export_works_after_fit_and_after_reload(tmp_path, data):
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    vae.fit(data, epochs=1, batch_size=32, verbose=0)
    vae.export(str(tmp_path / "exported"))  # no explicit vae(x) needed
    assert (tmp_path / "exported" / "saved_model.pb").is_file()
    vae.save(tmp_path / "vae.keras")
    loaded = keras.saving.load_model(tmp_path / "vae.keras")
    loaded.export(str(tmp_path / "exported2"))
    assert (tmp_path / "exported2" / "saved_model.pb").is_file()


def test_from_logits_reconstructions_are_probabilities_everywhere(data):
    vae = VAEModel(make_encoder("pair"), SubclassedDecoder(), from_logits=True)
    vae.compile(optimizer="adam")
    vae.fit(data, epochs=1, batch_size=32, verbose=0)
    vae.set_deterministic(True)
    predicted = vae.predict(data, verbose=0)["reconstruction"]
    called = ops.convert_to_numpy(vae(data))
    reconstructed = vae.reconstruct(data)
    decoded = vae.decode(predicted_mu := vae.encode(data, True)[1])
    assert predicted.min() >= 0.0 and predicted.max() <= 1.0
    np.testing.assert_allclose(predicted, called, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predicted, reconstructed, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predicted, decoded, rtol=1e-5, atol=1e-6)
    assert predicted_mu.shape == (len(data), LATENT)
    assert vae.z_dim == LATENT  # known from the build, not the decoder


def test_compile_refuses_a_loss_or_metrics_it_would_ignore():
    vae = VAEModel(make_encoder(), make_decoder())
    with pytest.raises(ValueError, match="`loss` must be None, received 'mse'.*reconstruction_loss="):
        vae.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="`metrics` must be None"):
        vae.compile(optimizer="adam", metrics=["mae"])


def test_bad_from_logits_and_sampler_arguments_name_vae_model():
    with pytest.raises(ValueError, match="`from_logits` must be True or False, received 'no'"):
        VAEModel(make_encoder(), make_decoder(), from_logits="no")
    with pytest.raises(ValueError, match="^VAEModel: .*`eps_clip` must be > 0.0"):
        VAEModel(make_encoder(), make_decoder(), eps_clip=0)


# ------------------------------------------------- training-data mistakes


class StepCounter(keras.callbacks.Callback):
    """Counts the training steps that ran."""

    def __init__(self):
        super().__init__()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


class Batches(keras.utils.PyDataset):
    """A `keras.utils.PyDataset` over `x` (and an optional target `y`)."""

    def __init__(self, x, y=None, batch_size=16):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.y is None:
            return self.x[rows]
        return self.x[rows], self.y[rows]


def as_data(kind, x, y=None, batch_size=16):
    """`x` (and `y`) as fit() input of the given kind, dynamic batch size
    for the dataset and the generator."""
    import tensorflow as tf

    if kind == "array":
        return x if y is None else (x, y)
    if kind == "dataset":
        items = x if y is None else (x, y)
        return (tf.data.Dataset.from_tensor_slices(items)
                .batch(batch_size),)
    if kind == "pydataset":
        return (Batches(x, y, batch_size),)

    def generator():
        for start in range(0, len(x), batch_size):
            rows = slice(start, start + batch_size)
            yield (x[rows],) if y is None else (x[rows], y[rows])

    return (generator(),)


def fit_args(kind, x, y=None):
    data = as_data(kind, x, y)
    if kind == "array":
        return (data,) if y is None else data, {"batch_size": 16}
    return data, {}


DATA_KINDS = ["array", "dataset", "pydataset", "generator"]


@pytest.mark.parametrize("kind", DATA_KINDS)
def test_unscaled_uint8_images_with_bce_raise_before_training(kind, data):
    images = (data * 255).astype("uint8")
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    steps = StepCounter()
    args, kwargs = fit_args(kind, images)
    with pytest.raises(ValueError, match=(
            r"target.* has integer dtype uint8, but "
            r"reconstruction_loss='bce' needs float values in \[0, 1\].*"
            r"1/255.*make_image_dataset")):
        vae.fit(*args, epochs=1, verbose=0, callbacks=[steps], **kwargs)
    assert steps.steps == 0


@pytest.mark.parametrize("kind", ["array", "dataset", "pydataset"])
def test_float_targets_outside_unit_interval_with_bce_raise(kind, data):
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    steps = StepCounter()
    args, kwargs = fit_args(kind, data * 255.0)
    with pytest.raises(ValueError, match=(
            r"needs targets in \[0, 1\], but the first batch of the training "
            r"data \(`x`, the target\) has values in \[0, 255\].*1/255")):
        vae.fit(*args, epochs=1, verbose=0, callbacks=[steps], **kwargs)
    # Denoising: the explicit target `y` is what must lie in [0, 1].
    args, kwargs = fit_args(kind, data, data - 0.5)
    with pytest.raises(ValueError, match=(
            r"the target `y`\) has values in \[-0.5, 0.5\]")):
        vae.fit(*args, epochs=1, verbose=0, callbacks=[steps], **kwargs)
    assert steps.steps == 0
    with pytest.raises(ValueError, match=r"first batch of the evaluation "
                                         r"data .* values in \[0, 255\]"):
        vae.evaluate(*fit_args(kind, data * 255.0)[0], verbose=0)


def test_bce_accepts_integer_inputs_with_a_float_target(data):
    # An encoder that rescales its uint8 input itself is fine: the check is
    # on the target.
    x = keras.Input((DIM,), dtype="uint8")
    h = keras.layers.Rescaling(1 / 255)(x)
    mu = keras.layers.Dense(LATENT)(h)
    encoder = keras.Model(x, [mu, keras.layers.Dense(LATENT)(h)])
    vae = VAEModel(encoder, make_decoder())
    vae.compile(optimizer="adam")
    hist = vae.fit((data * 255).astype("uint8"), data, batch_size=16,
                   epochs=1, verbose=0)
    assert math.isfinite(hist.history["loss"][0])


def test_mse_with_integer_targets_warns_and_trains(data):
    vae = VAEModel(make_encoder(), make_decoder(), reconstruction_loss="mse")
    vae.compile(optimizer="adam")
    with pytest.warns(UserWarning, match=(
            r"integer dtype uint8 with reconstruction_loss='mse'.*1/255")):
        hist = vae.fit((data * 255).astype("uint8"), batch_size=16,
                       epochs=1, verbose=0)
    assert math.isfinite(hist.history["loss"][0])


@pytest.mark.parametrize("kind", DATA_KINDS)
@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_labels_as_targets_raise_naming_both_shapes(kind, loss, data):
    # "generator" cannot be read ahead: it exercises the trace-time check,
    # where Keras gives the batch dimension as None.
    labels = np.arange(len(data)) % 10
    vae = VAEModel(make_encoder(), make_decoder(), reconstruction_loss=loss)
    vae.compile(optimizer="adam")
    steps = StepCounter()
    args, kwargs = fit_args(kind, data, labels)
    with pytest.raises(ValueError, match=(
            r"reconstruction target.* has shape \(None,\), but the "
            r"reconstruction has shape \(None, 12\).*labels are not "
            r"targets")):
        vae.fit(*args, epochs=1, verbose=0, callbacks=[steps], **kwargs)
    assert steps.steps == 0


@pytest.mark.parametrize("case", [
    "x_shape", "x_shape_subclassed", "labels", "uint8", "dataset_shape",
    "pydataset_range",
])
def test_wrong_validation_data_fails_before_the_first_epoch(case, data):
    import tensorflow as tf

    encoder = SubclassedEncoder() if case == "x_shape_subclassed" \
        else make_encoder()
    vae = VAEModel(encoder, make_decoder())
    vae.compile(optimizer="adam")
    wrong = np.zeros((16, DIM + 1), "float32")
    validation, match = {
        "x_shape": ((wrong,), r"data of shape \(None, 13\) does not match "
                              r"the encoder input shape \(None, 12\)"),
        "x_shape_subclassed": ((wrong,), r"the validation data has inputs "
                                         r"of shape \(None, 13\), but the "
                                         r"model takes inputs of shape "
                                         r"\(None, 12\)"),
        "labels": ((data, np.zeros(len(data))),
                   r"target of the validation data has shape \(None,\)"),
        "uint8": (((data * 255).astype("uint8"),),
                  r"target of the validation data has integer dtype uint8"),
        "dataset_shape": (tf.data.Dataset.from_tensor_slices(wrong).batch(8),
                          r"data of shape \(None, 13\)"),
        "pydataset_range": (Batches(data * 2.0),
                            r"first batch of the validation data .*values "
                            r"in \[0, 2\]"),
    }[case]
    steps = StepCounter()
    with pytest.raises(ValueError, match=match):
        vae.fit(data, batch_size=16, epochs=1, verbose=0,
                validation_data=validation, callbacks=[steps])
    assert steps.steps == 0


def test_first_batch_checks_do_not_consume_the_data(data):
    import tensorflow as tf

    reads = []

    def generator():
        for start in range(0, len(data), 16):
            reads.append(start)
            yield data[start:start + 16]

    ds = tf.data.Dataset.from_generator(
        generator, output_signature=tf.TensorSpec((None, DIM), tf.float32))
    vae = VAEModel(make_encoder(), make_decoder())
    vae.compile(optimizer="adam")
    steps = StepCounter()
    vae.fit(ds, epochs=1, verbose=0, callbacks=[steps],
            validation_data=Batches(data))
    # Training sees all 4 batches, from a fresh iterator.
    assert steps.steps == len(data) // 16
    assert reads[-4:] == [0, 16, 32, 48]
    if BACKEND == "tensorflow":
        # Before it, the check read one batch from an iterator of its own.
        assert reads == [0, 0, 16, 32, 48]
    else:
        # Keras' JAX/torch trainers also read ahead to build the model
        # (how far depends on prefetching) and restart at 0.
        assert reads[:2] == [0, 0]
