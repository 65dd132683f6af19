"""KL annealing: the pure schedule, the callback on VAEModel and Functional
VAEs, per-step values, no retracing, argument errors."""

import copy
import math

import keras
import numpy as np
import pytest

from keras_vae_layers import KLDivergenceLayer
from keras_vae_layers import VAEModel
from keras_vae_layers.callbacks import KLAnnealing
from keras_vae_layers.callbacks import beta_schedule

from helpers import STEPS_ARE_TRACED
from helpers import TraceCounter
from helpers import binary_data
from helpers import dense_vae
from helpers import find_layer
from helpers import trace_mark

X = binary_data(32)


def vae_model(counter=None, beta=1.0):
    base = dense_vae(nested=True, counter=counter, kl_layer=False)
    vae = VAEModel(base.get_layer("encoder"), base.get_layer("decoder"),
                   beta=beta)
    vae.compile(optimizer="adam")
    return vae


def functional_vae(counter=None, nested=False):
    model = dense_vae(nested=nested, counter=counter)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


class BetaRecorder(keras.callbacks.Callback):
    """Reads `variable` at each epoch end and after each batch."""

    def __init__(self, read):
        super().__init__()
        self.read = read
        self.epochs = []
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        _ = self.model  # on JAX: sync the trainer state into the variables
        self.batches.append(self.read())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self.read())


def value(variable):
    return float(keras.ops.convert_to_numpy(variable))


# ----------------------------------------------------------------------------
# The pure schedule
# ----------------------------------------------------------------------------


def test_constant_schedule():
    assert [beta_schedule("constant", s, beta_max=0.3) for s in range(3)] == [
        0.3, 0.3, 0.3
    ]


def test_linear_schedule_values():
    got = [beta_schedule("linear", s, warmup=4) for s in range(7)]
    assert got == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    got = [beta_schedule("linear", s, warmup=2, beta_min=0.5, beta_max=1.5)
           for s in range(4)]
    assert got == [0.5, 1.0, 1.5, 1.5]


def test_cyclical_schedule_shape():
    got = [beta_schedule("cyclical", s, total=8, cycles=2, ratio=0.5)
           for s in range(8)]
    assert got == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    # Fu et al. (2019): 4 cycles, ratio 0.5 over 40 steps.
    got = np.array([beta_schedule("cyclical", s, total=40, cycles=4)
                    for s in range(40)])
    cycles = got.reshape(4, 10)
    for cycle in cycles:
        np.testing.assert_allclose(cycle, cycles[0])
        np.testing.assert_allclose(cycle[:5], np.arange(5) / 5)
        np.testing.assert_allclose(cycle[5:], 1.0)
    # ratio=1: a ramp over the whole cycle.
    got = [beta_schedule("cyclical", s, total=4, cycles=1, ratio=1.0,
                         beta_max=2.0) for s in range(4)]
    assert got == [0.0, 0.5, 1.0, 1.5]
    # Past the end the cycling continues.
    assert beta_schedule("cyclical", 9, total=8, cycles=2) == 0.5


def test_cyclical_non_integer_period():
    got = [beta_schedule("cyclical", s, total=10, cycles=3, ratio=0.5)
           for s in range(10)]
    period = 10 / 3
    expected = [min(math.fmod(s, period) / period / 0.5, 1.0)
                for s in range(10)]
    np.testing.assert_allclose(got, expected)
    assert got[0] == 0.0 and got[4] == pytest.approx(0.2 / 0.5 * 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "cosine"}, "unknown `kind` 'cosine'"),
        ({"kind": "linear", "warmup": None}, "needs `warmup`"),
        ({"kind": "linear", "warmup": 0}, "`warmup` must be an integer >= 1"),
        ({"kind": "cyclical", "total": None}, "needs `total`"),
        ({"kind": "cyclical", "total": 10, "cycles": 0},
         "`cycles` must be an integer >= 1"),
        ({"kind": "cyclical", "total": 10, "ratio": 0.0},
         "`ratio` must be > 0.0"),
        ({"kind": "cyclical", "total": 10, "ratio": 1.5},
         r"`ratio` must be in \(0, 1\]"),
        ({"kind": "constant", "beta_max": -1.0}, "`beta_max` must be >= 0"),
        ({"kind": "constant", "beta_min": float("nan")},
         "`beta_min` must be finite"),
        ({"kind": "constant", "beta_min": 2.0, "beta_max": 1.0},
         "`beta_min` must be <= `beta_max`"),
    ],
)
def test_beta_schedule_errors(kwargs, match):
    kwargs = dict(kwargs)
    kind = kwargs.pop("kind")
    kwargs.setdefault("warmup", 3)
    with pytest.raises(ValueError, match=match):
        beta_schedule(kind, 1, **kwargs)


def test_beta_schedule_rejects_negative_step():
    with pytest.raises(ValueError, match="`step` must be an integer >= 0"):
        beta_schedule("constant", -1)


# ----------------------------------------------------------------------------
# The callback
# ----------------------------------------------------------------------------


def test_linear_per_epoch_on_vae_model_history():
    vae = vae_model()
    anneal = KLAnnealing("linear", beta_max=1.0, warmup_epochs=4)
    history = vae.fit(X, epochs=6, batch_size=16, verbose=0,
                      callbacks=[anneal])
    expected = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert history.history["beta"] == pytest.approx(expected)
    assert value(vae.beta) == 1.0


def test_vae_model_logged_beta_is_the_value_used_in_each_step():
    vae = vae_model()

    class StepBeta(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_train_batch_end(self, batch, logs=None):
            # VAEModel.train_step logs the beta variable it used.
            self.values.append(float(logs["beta"]))

    steps = StepBeta()
    vae.fit(X, epochs=3, batch_size=16, verbose=0,
            callbacks=[KLAnnealing("linear", warmup_epochs=2), steps])
    assert steps.values == pytest.approx([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])


def test_per_step_linear_values():
    vae = vae_model()
    # 32 samples / batch 8 = 4 steps per epoch, 3 epochs.
    anneal = KLAnnealing("linear", warmup_steps=6, per="step", beta_max=0.6)
    recorder = BetaRecorder(lambda: value(vae.beta))
    history = vae.fit(X, epochs=3, batch_size=8, verbose=0,
                      callbacks=[anneal, recorder])
    expected = [0.6 * min(s / 6, 1.0) for s in range(12)]
    assert recorder.batches == pytest.approx(expected)
    # Epoch logs: the value of each epoch's last step.
    assert history.history["beta"] == pytest.approx(
        [expected[3], expected[7], expected[11]]
    )


def test_per_step_warmup_from_epochs():
    vae = vae_model()
    anneal = KLAnnealing("linear", warmup_epochs=2, per="step")
    recorder = BetaRecorder(lambda: value(vae.beta))
    vae.fit(X, epochs=3, batch_size=16, verbose=0,
            callbacks=[anneal, recorder])
    # 2 steps per epoch -> a 4-step ramp.
    assert recorder.batches == pytest.approx([0, .25, .5, .75, 1, 1])


def test_cyclical_per_step_shape():
    vae = vae_model()
    anneal = KLAnnealing("cyclical", cycles=2, ratio=0.5, per="step")
    recorder = BetaRecorder(lambda: value(vae.beta))
    vae.fit(X, epochs=4, batch_size=16, verbose=0,
            callbacks=[anneal, recorder])
    # 8 steps, 2 cycles of 4: ramp over 2 steps, hold for 2.
    assert recorder.batches == pytest.approx(
        [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0]
    )


def test_cyclical_per_epoch():
    vae = vae_model()
    history = vae.fit(
        X, epochs=6, batch_size=32, verbose=0,
        callbacks=[KLAnnealing("cyclical", cycles=2, ratio=1 / 3,
                               beta_max=0.9)],
    )
    assert history.history["beta"] == pytest.approx(
        [0.0, 0.9, 0.9, 0.0, 0.9, 0.9]
    )


def test_constant_and_callable_schedules():
    vae = vae_model(beta=0.0)
    history = vae.fit(X, epochs=2, batch_size=32, verbose=0,
                      callbacks=[KLAnnealing("constant", beta_max=0.7)])
    assert history.history["beta"] == pytest.approx([0.7, 0.7])
    history = vae.fit(X, epochs=3, batch_size=32, verbose=0,
                      callbacks=[KLAnnealing(lambda e: 0.1 * (e + 1))])
    assert history.history["beta"] == pytest.approx([0.1, 0.2, 0.3])


def test_resume_continues_the_schedule():
    vae = vae_model()
    anneal = KLAnnealing("linear", warmup_epochs=4)
    history = vae.fit(X, epochs=5, initial_epoch=2, batch_size=32,
                      verbose=0, callbacks=[anneal])
    assert history.history["beta"] == pytest.approx([0.5, 0.75, 1.0])


class StepIndex(keras.callbacks.Callback):
    """The schedule index each training step used, read back from the beta
    `VAEModel` logs (the schedule below is `beta = index / 100`)."""

    def __init__(self):
        super().__init__()
        self.indices = []
        self.epoch_starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_starts.append(
            int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))

    def on_train_batch_end(self, batch, logs=None):
        self.indices.append(round(float(logs["beta"]) * 100))


def index_schedule():
    return KLAnnealing(lambda step: step / 100, per="step")


def python_batches():
    # A Python generator: Keras does not know the epoch length.
    for start in range(0, len(X), 8):
        yield (X[start:start + 8],)


def iterations(model):
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def reload(vae, path):
    vae.save_weights(path)  # optimizer state included
    fresh = vae_model()
    fresh(X[:2])
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(path)
    assert iterations(fresh) == iterations(vae)
    return fresh


def test_per_step_schedule_resumes_on_data_of_unknown_length(tmp_path):
    vae = vae_model()
    runs = []
    for _ in range(2):  # two fit() calls on the same model
        runs.append(StepIndex())
        vae.fit(python_batches(), epochs=1, verbose=0,
                callbacks=[index_schedule(), runs[-1]])
    fresh = reload(vae, tmp_path / "vae.weights.h5")
    runs.append(StepIndex())
    fresh.fit(python_batches(), epochs=1, verbose=0,
              callbacks=[index_schedule(), runs[-1]])
    assert runs[0].indices == [0, 1, 2, 3]
    for run in runs:
        # Each fit() continues at the optimizer's step count (saved with
        # the weights), not at 0, and never skips a step within an epoch.
        start = run.epoch_starts[0]
        assert run.indices == list(range(start, start + 4))
    assert runs[1].epoch_starts[0] >= 4
    assert runs[2].epoch_starts[0] == iterations(vae) >= 8


def test_per_step_resume_equals_an_uninterrupted_run(tmp_path):
    import tensorflow as tf

    # filter() hides the length: the dataset's cardinality is unknown.
    ds = tf.data.Dataset.from_tensor_slices(X).filter(lambda x: True).batch(8)
    whole = StepIndex()
    vae_model().fit(ds, epochs=4, verbose=0, shuffle=False,
                    callbacks=[index_schedule(), whole])
    first, second = StepIndex(), StepIndex()
    vae = vae_model()
    vae.fit(ds, epochs=2, verbose=0, shuffle=False,
            callbacks=[index_schedule(), first])
    fresh = reload(vae, tmp_path / "vae.weights.h5")
    fresh.fit(ds, epochs=4, initial_epoch=2, verbose=0, shuffle=False,
              callbacks=[index_schedule(), second])
    assert first.indices + second.indices == whole.indices
    # Four real steps per epoch and no phantom step when an epoch of
    # unknown length runs dry: the global step runs 0..15 without a gap.
    assert whole.indices == list(range(16))
    assert iterations(fresh) == 16


def test_per_step_known_length_follows_the_optimizer_across_fit_calls():
    vae = vae_model()
    anneal = KLAnnealing("linear", warmup_steps=6, per="step", beta_max=0.6)
    recorder = BetaRecorder(lambda: value(vae.beta))
    for _ in range(2):  # 4 steps per epoch: steps 0-3, then 4-7
        vae.fit(X, epochs=1, batch_size=8, verbose=0,
                callbacks=[anneal, recorder])
    assert recorder.batches == pytest.approx(
        [0.6 * min(s / 6, 1.0) for s in range(8)])


def test_functional_vae_kl_layers_are_written():
    model = functional_vae(nested=True)
    kl = find_layer(model, KLDivergenceLayer)
    recorder = BetaRecorder(lambda: value(kl.beta))
    history = model.fit(X, X, epochs=5, batch_size=16, verbose=0,
                        callbacks=[KLAnnealing("linear", warmup_epochs=3,
                                               beta_max=0.3), recorder])
    expected = [0.0, 0.1, 0.2, 0.3, 0.3]
    assert recorder.epochs == pytest.approx(expected)
    assert history.history["beta"] == pytest.approx(expected)


def test_every_kl_layer_is_written():
    x = keras.Input((4,))
    mu1, lv1 = KLDivergenceLayer(name="kl_a", metric_name="kl_a")(
        [keras.layers.Dense(2)(x), keras.layers.Dense(2)(x)])
    mu2, lv2 = KLDivergenceLayer(name="kl_b", metric_name="kl_b")(
        [keras.layers.Dense(2)(x), keras.layers.Dense(2)(x)])
    out = keras.layers.Dense(4)(keras.layers.Concatenate()([mu1, mu2]))
    model = keras.Model(x, out)
    model.compile(optimizer="sgd", loss="mse")
    data = np.ones((8, 4), "float32")
    model.fit(data, data, epochs=1, verbose=0,
              callbacks=[KLAnnealing("constant", beta_max=0.25)])
    for name in ("kl_a", "kl_b"):
        assert value(model.get_layer(name).beta) == 0.25


def test_target_by_name_writes_only_that_layer():
    model = functional_vae(nested=True)
    kl = find_layer(model, KLDivergenceLayer)
    model.fit(X, X, epochs=1, verbose=0,
              callbacks=[KLAnnealing("constant", beta_max=0.4,
                                     target="kl")])
    assert value(kl.beta) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="no `beta` variable"):
        model.fit(X, X, epochs=1, verbose=0,
                  callbacks=[KLAnnealing(target="mu")])
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.fit(X, X, epochs=1, verbose=0,
                  callbacks=[KLAnnealing(target="nope")])


def test_no_retrace_across_epochs():
    counter = TraceCounter()
    model = functional_vae(counter=counter)
    traces = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            traces.append(trace_mark(counter, self.model))

    model.fit(X, X, epochs=4, batch_size=16, verbose=0,
              callbacks=[KLAnnealing("linear", warmup_epochs=3, per="step"),
                         Count()])
    if STEPS_ARE_TRACED:
        assert traces[0] >= 1
    assert traces == [traces[0]] * 4

    counter = TraceCounter()
    vae = vae_model(counter=counter)
    traces.clear()
    vae.fit(X, epochs=4, batch_size=16, verbose=0,
            callbacks=[KLAnnealing("cyclical", cycles=2), Count()])
    assert traces == [traces[0]] * 4


def test_model_without_beta_raises_naming_it():
    x = keras.Input((4,))
    model = keras.Model(x, keras.layers.Dense(4)(x), name="plain_net")
    model.compile(optimizer="sgd", loss="mse")
    data = np.ones((4, 4), "float32")
    with pytest.raises(ValueError, match="model 'plain_net'.*neither"):
        model.fit(data, data, epochs=1, verbose=0, callbacks=[KLAnnealing()])


def test_callable_returning_bad_value():
    vae = vae_model()
    with pytest.raises(ValueError, match=r"returned -1\.0 at epoch 0"):
        vae.fit(X, epochs=1, verbose=0,
                callbacks=[KLAnnealing(lambda e: -1.0)])
    with pytest.raises(ValueError, match="returned nan"):
        vae.fit(X, epochs=1, verbose=0,
                callbacks=[KLAnnealing(lambda e: float("nan"))])


def test_per_step_needs_known_epoch_length():
    import tensorflow as tf

    vae = vae_model()

    def gen():
        for _ in range(2):
            yield X[:16]

    ds = tf.data.Dataset.from_generator(
        gen, output_signature=tf.TensorSpec((None, 16), tf.float32)
    )
    with pytest.raises(ValueError, match="steps_per_epoch"):
        vae.fit(ds, epochs=1, verbose=0, shuffle=False,
                callbacks=[KLAnnealing("cyclical", per="step")])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta_max": -0.1}, "KLAnnealing: `beta_max` must be >= 0"),
        ({"beta_min": -1.0}, "KLAnnealing: `beta_min` must be >= 0"),
        ({"beta_max": float("inf")}, "`beta_max` must be finite"),
        ({"beta_min": 0.5, "beta_max": 0.1}, "`beta_min` must be <="),
        ({"warmup_epochs": 0}, "`warmup_epochs` must be an integer >= 1"),
        ({"warmup_steps": 0, "per": "step"},
         "`warmup_steps` must be an integer >= 1"),
        ({"warmup_steps": 10}, "`warmup_steps` needs per='step'"),
        ({"cycles": 0}, "`cycles` must be an integer >= 1"),
        ({"ratio": 0.0}, "`ratio` must be > 0.0"),
        ({"ratio": 1.01}, r"`ratio` must be in \(0, 1\]"),
        ({"schedule": "cosine"}, "unknown `schedule` 'cosine'"),
        ({"schedule": 3}, "must be one of"),
        ({"per": "batch"}, "unknown `per` 'batch'"),
        ({"target": 3.0}, "each `target` entry"),
        ({"target": []}, "must not be an empty list"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KLAnnealing(**kwargs)


@keras.saving.register_keras_serializable(package="tests")
def tenth_of_epoch(epoch):
    return 0.1 * epoch


def test_callable_schedule_config_round_trip():
    anneal = KLAnnealing(tenth_of_epoch)
    config = anneal.get_config()
    assert isinstance(config["schedule"], dict)
    clone = KLAnnealing.from_config(config)
    assert clone.schedule is tenth_of_epoch
    vae = vae_model()
    history = vae.fit(X, epochs=2, verbose=0, callbacks=[clone])
    assert history.history["beta"] == pytest.approx([0.0, 0.1])


def test_config_round_trip_and_deepcopy():
    anneal = KLAnnealing("cyclical", beta_max=0.5, cycles=3, ratio=0.25,
                         per="step", target=["kl"])
    config = anneal.get_config()
    assert config["target"] == ["kl"]
    clone = KLAnnealing.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(anneal)
    )
    assert isinstance(restored, KLAnnealing)
    assert restored.get_config() == config

    vae = vae_model()
    anneal = KLAnnealing("linear", warmup_epochs=2)
    before = copy.deepcopy(anneal)
    vae.fit(X, epochs=1, verbose=0, callbacks=[anneal])
    after = copy.deepcopy(anneal)
    assert after._model is None and after._variables is None
    other = vae_model()
    for cb in (before, after):
        history = other.fit(X, epochs=2, verbose=0, callbacks=[cb])
        assert history.history["beta"] == pytest.approx([0.0, 0.5])
    assert value(vae.beta) == 0.0  # the copies never touched the first model
