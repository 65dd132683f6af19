"""Tests for `keras_vae_layers.tuning` and `examples/tune_vae.py`.

keras-tuner swallows exceptions raised inside a trial (the trial is marked
FAILED/INVALID and the search "finishes"), so every search below asserts
the status of every trial.
"""

import importlib.util
import json
import os
import warnings

import keras
import keras_tuner as kt
import numpy as np
import pytest

from keras_vae_layers.datasets import load_shapes
from keras_vae_layers.models.vae import LOGGED_METRICS
from keras_vae_layers.models.vae import VAEModel
from keras_vae_layers.tuning import DEFAULT_OBJECTIVE
from keras_vae_layers.tuning import OBJECTIVE_NAMES
from keras_vae_layers.tuning import VAEHyperModel
from keras_vae_layers.tuning import completed_trials
from keras_vae_layers.tuning import vae_objective

SHAPE = (16, 16, 1)
# One tiny stride-2 conv layer each way: a trial takes about a second.
TINY = dict(encoder_filters=(4,), encoder_kernel_sizes=3, encoder_strides=2)
SEARCH = dict(z_dim=[2, 3], intermediate_dim=[None, 8], beta=(0.5, 2.0))

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples",
                       "tune_vae.py")


@pytest.fixture(scope="module")
def data():
    images, _ = load_shapes(48, size=16, seed=3, dtype="float32")
    return images[:32], images[32:]


def _hypermodel(**kwargs):
    return VAEHyperModel(SHAPE, **{**TINY, **SEARCH, **kwargs})


def _search(tuner, data, epochs=1):
    x_train, x_val = data
    tuner.search(x_train, epochs=epochs, batch_size=32,
                 validation_data=(x_val,), verbose=0)
    return [tuner.oracle.trials[k] for k in sorted(tuner.oracle.trials)]


def _assert_all_completed(trials, expected_count):
    statuses = {t.trial_id: t.status for t in trials}
    messages = "\n".join(t.message or "" for t in trials)
    assert len(trials) == expected_count, statuses
    assert set(statuses.values()) == {"COMPLETED"}, f"{statuses}\n{messages}"


def _space(hypermodel):
    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    return {p.name: p for p in hp.space}


# ---------------------------------------------------------------- objective


def test_default_objective_is_val_neg_elbo_min():
    hypermodel = _hypermodel()
    assert DEFAULT_OBJECTIVE == "val_neg_elbo"
    assert hypermodel.objective == kt.Objective("val_neg_elbo", "min")
    assert vae_objective() == kt.Objective("val_neg_elbo", "min")


def test_objective_alternatives_are_all_min():
    assert vae_objective("val_reco_loss") == kt.Objective(
        "val_reco_loss", "min")
    assert set(OBJECTIVE_NAMES) == set(LOGGED_METRICS) - {"beta"}
    for name in OBJECTIVE_NAMES:
        assert vae_objective(name).direction == "min"
    assert vae_objective(kt.Objective("neg_elbo", "min")).name == "neg_elbo"
    hypermodel = _hypermodel(objective="val_reco_loss")
    assert hypermodel.objective.name == "val_reco_loss"


def test_unknown_objective_lists_logged_metrics():
    with pytest.raises(ValueError, match="unknown objective 'val_accuracy'"
                       ".*val_reco_loss.*val_neg_elbo"):
        vae_objective("val_accuracy")
    with pytest.raises(ValueError, match="`beta` is a hyperparameter"):
        vae_objective("beta")
    with pytest.raises(ValueError, match="unknown objective 'val_elbo'"):
        _hypermodel(objective="val_elbo")
    with pytest.raises(ValueError, match="direction 'max'"):
        vae_objective(kt.Objective("val_neg_elbo", "max"))


def test_beta_weighted_objective_warns_only_when_beta_is_searched():
    with pytest.warns(UserWarning, match="smaller beta"):
        _hypermodel(objective="val_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _hypermodel(objective="val_loss", beta=1.0)


# ------------------------------------------------------------- search space


def test_search_space_holds_exactly_the_named_hyperparameters():
    space = _space(_hypermodel())
    assert list(space) == ["z_dim", "intermediate_dim", "beta"]
    assert isinstance(space["z_dim"], kt.engine.hyperparameters.Choice)
    assert list(space["z_dim"].values) == [2, 3]
    # "none" is stored as 0 so the choice stays numeric and ordered.
    assert list(space["intermediate_dim"].values) == [0, 8]
    assert space["intermediate_dim"].ordered
    beta = space["beta"]
    assert isinstance(beta, kt.engine.hyperparameters.Float)
    assert (beta.min_value, beta.max_value, beta.sampling) == (0.5, 2.0,
                                                               "log")


def test_learning_rate_joins_the_space_only_when_searched():
    assert "learning_rate" not in _space(_hypermodel(learning_rate=3e-4))
    space = _space(_hypermodel(learning_rate=(1e-4, 1e-2)))
    assert list(space) == ["z_dim", "intermediate_dim", "beta",
                           "learning_rate"]
    assert space["learning_rate"].sampling == "log"
    hp = kt.HyperParameters()
    hp.Fixed("learning_rate", 0.005)
    vae = _hypermodel(learning_rate=[0.001, 0.005]).build(hp)
    assert float(vae.optimizer.learning_rate.numpy()) == pytest.approx(0.005)


def test_range_forms():
    space = _space(_hypermodel(z_dim=(2, 9),
                               intermediate_dim={"min": 8, "max": 32,
                                                 "step": 8},
                               beta={"min": 0.1, "max": 1.0,
                                     "sampling": "linear"}))
    z_dim, inter, beta = space["z_dim"], space["intermediate_dim"], \
        space["beta"]
    assert isinstance(z_dim, kt.engine.hyperparameters.Int)
    assert (z_dim.min_value, z_dim.max_value) == (2, 9)
    assert (inter.min_value, inter.max_value, inter.step) == (8, 32, 8)
    assert beta.sampling == "linear"
    # Choice lists are sorted for BayesianOptimization; the first listed
    # value stays the default.
    choice = _space(_hypermodel(z_dim=[8, 2, 4]))["z_dim"]
    assert list(choice.values) == [2, 4, 8] and choice.default == 8
    # A tuple holding None can only be a set of choices.
    inter = _space(_hypermodel(intermediate_dim=(None, 16)))[
        "intermediate_dim"]
    assert list(inter.values) == [0, 16]


def test_pinned_values_are_fixed_and_respected():
    hypermodel = _hypermodel(z_dim=3, intermediate_dim=None, beta=0.25)
    space = _space(hypermodel)
    assert list(space) == ["z_dim", "intermediate_dim", "beta"]
    assert all(isinstance(p, kt.engine.hyperparameters.Fixed)
               for p in space.values())
    assert hypermodel.searched_hyperparameters == ()
    hp = kt.HyperParameters()
    vae = hypermodel.build(hp)
    assert hp.values == {"z_dim": 3, "intermediate_dim": 0, "beta": 0.25}
    assert vae.z_dim == 3
    assert "encoder_dense" not in [layer.name
                                   for layer in vae.encoder.layers]
    assert float(vae.beta.numpy()) == pytest.approx(0.25)

    pinned = _hypermodel(z_dim=5, intermediate_dim=7, beta=(0.5, 2.0))
    assert pinned.searched_hyperparameters == ("beta",)
    vae = pinned.build(kt.HyperParameters())
    assert vae.z_dim == 5
    assert vae.encoder.get_layer("encoder_dense").units == 7
    # `min == max` and single-entry lists pin as well.
    space = _space(_hypermodel(z_dim=(4, 4), intermediate_dim=[16]))
    assert space["z_dim"].value == 4
    assert space["intermediate_dim"].value == 16


def test_build_returns_compiled_built_model_with_hp_values():
    hypermodel = _hypermodel()
    hp = kt.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update({"z_dim": 3, "intermediate_dim": 8, "beta": 1.5})
    vae = hypermodel.build(hp)
    assert isinstance(vae, VAEModel) and vae.built and vae.compiled
    assert vae.get_build_config() == {"input_shape": (None,) + SHAPE}
    assert vae.optimizer.built  # checkpoints restore the slots too
    assert vae.z_dim == 3
    assert vae.encoder.get_layer("encoder_dense").units == 8
    assert float(vae.beta.numpy()) == pytest.approx(1.5)
    out = vae.predict(np.zeros((2,) + SHAPE, "float32"), verbose=0)
    assert out["reconstruction"].shape == (2,) + SHAPE


def test_optimizer_name_or_callable():
    hp = kt.HyperParameters()
    vae = _hypermodel(optimizer="rmsprop", learning_rate=0.01).build(hp)
    assert isinstance(vae.optimizer, keras.optimizers.RMSprop)
    assert float(vae.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    vae = _hypermodel(
        optimizer=lambda lr: keras.optimizers.Adam(lr, clipnorm=1.0),
    ).build(kt.HyperParameters())
    assert vae.optimizer.clipnorm == 1.0


def test_decoder_defaults_mirror_the_encoder():
    hypermodel = VAEHyperModel((16, 16, 3), encoder_filters=(4, 8),
                               encoder_strides=(2, 2))
    assert hypermodel.builder_kwargs["decoder_filters"] == (4, 3)
    vae = hypermodel.build(kt.HyperParameters())
    assert vae.decoder.output.shape[1:] == (16, 16, 3)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    ({"z_dim": []}, "`z_dim` is an empty list"),
    ({"z_dim": ()}, "`z_dim` is an empty range"),
    ({"z_dim": (16, 8)}, "min > max"),
    ({"z_dim": {"min": 16, "max": 8}}, "min > max"),
    ({"z_dim": {"min": 4}}, "needs both 'min' and 'max'"),
    ({"z_dim": {"min": 4, "max": 8, "stride": 2}}, "unknown key"),
    ({"z_dim": (2, 4, 8)}, r"\(min, max\) pair"),
    ({"z_dim": 0}, "`z_dim` must be an int >= 1"),
    ({"z_dim": None}, "`z_dim` must be an int >= 1"),
    ({"z_dim": 2.5}, "`z_dim` must be an int >= 1"),
    ({"z_dim": [2, 2]}, "more than once"),
    ({"intermediate_dim": []}, "`intermediate_dim` is an empty list"),
    ({"intermediate_dim": (0, 64)}, "a range cannot include 'none'"),
    ({"intermediate_dim": (128, 64)}, "min > max"),
    ({"intermediate_dim": -1}, "`intermediate_dim` must be an int >= 1"),
    ({"intermediate_dim": [None, "none"]}, "more than once"),
    ({"beta": (0.0, 1.0)}, "bounds must be > 0"),
    ({"beta": (-1.0, 1.0)}, "bounds must be > 0"),
    ({"beta": (2.0, 1.0)}, "min > max"),
    ({"beta": []}, "`beta` is an empty list"),
    ({"beta": -0.5}, "`beta` must be >= 0"),
    ({"beta": float("nan")}, "`beta` must be finite"),
    ({"beta": "big"}, "`beta` must be a number"),
    ({"learning_rate": 0.0}, "`learning_rate` must be > 0"),
    ({"learning_rate": (0.0, 1e-3)}, "bounds must be > 0"),
    ({"optimizer": "adamm"}, "unknown `optimizer` 'adamm'"),
    ({"optimizer": keras.optimizers.Adam()}, "not an optimizer instance"),
    ({"optimizer": lambda lr: "adam"}, "must return a keras.optimizers"),
    ({"compile_kwargs": {"loss": "mse"}}, "may not set"),
    ({"reconstruction_loss": "l1"}, "unknown `reconstruction_loss`"),
    ({"encoder_filters": ()}, "`encoder_filters` must not be empty"),
    ({"decoder_filters": (4, 2)}, "last entry of `decoder_filters`"),
])
def test_bad_input_raises_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _hypermodel(**kwargs)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="`input_shape` must be a"):
        VAEHyperModel((16, 16))


# ------------------------------------------------------------------ search


@pytest.fixture(scope="module")
def random_search(data, tmp_path_factory):
    keras.utils.set_random_seed(0)
    hypermodel = _hypermodel()
    tuner = kt.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=2, seed=1,
        directory=str(tmp_path_factory.mktemp("kt")), project_name="random",
        overwrite=True,
    )
    trials = _search(tuner, data)
    return tuner, trials


def test_random_search_completes_both_trials(random_search):
    tuner, trials = random_search
    _assert_all_completed(trials, 2)
    assert len(completed_trials(tuner)) == 2
    assert tuner.oracle.objective == kt.Objective("val_neg_elbo", "min")
    for trial in trials:
        assert np.isfinite(trial.score)
        assert trial.metrics.exists("val_neg_elbo")
        assert set(trial.hyperparameters.values) == {
            "z_dim", "intermediate_dim", "beta"}
    space = tuner.oracle.get_space()
    assert [p.name for p in space.space] == ["z_dim", "intermediate_dim",
                                             "beta"]


def test_best_model_reloads_and_predicts(random_search, data):
    tuner, trials = random_search
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_trial.score == min(t.score for t in trials)
    best_hp = tuner.get_best_hyperparameters(1)[0]
    assert best_hp.values == best_trial.hyperparameters.values

    best = tuner.get_best_models(1)[0]
    assert isinstance(best, VAEModel)
    assert best.z_dim == best_hp["z_dim"]
    fresh = tuner.hypermodel.build(best_hp)
    # The checkpoint's weights were loaded (not a fresh initialisation).
    assert any(not np.allclose(a, b) for a, b in
               zip(best.get_weights(), fresh.get_weights()))
    _, x_val = data
    logs = best.evaluate(x_val, batch_size=32, verbose=0, return_dict=True)
    assert logs["neg_elbo"] == pytest.approx(best_trial.score, rel=0.05)
    out = best.predict(x_val[:4], verbose=0)
    assert out["reconstruction"].shape == (4,) + SHAPE
    assert np.all(np.isfinite(out["reconstruction"]))
    assert best.sample(3, seed=0).shape == (3,) + SHAPE


def test_hyperband_completes_and_resumes_from_checkpoints(data, tmp_path):
    hypermodel = _hypermodel()
    tuner = kt.Hyperband(
        hypermodel, objective=hypermodel.objective, max_epochs=2, factor=2,
        hyperband_iterations=1, seed=2, directory=str(tmp_path),
        project_name="hyperband", overwrite=True,
    )
    trials = _search(tuner, data, epochs=2)
    # Bracket 1: two 1-epoch trials, the best continued for a second epoch
    # from its checkpoint; bracket 0: two 2-epoch trials.
    _assert_all_completed(trials, 5)
    resumed = [t for t in trials
               if "tuner/trial_id" in t.hyperparameters.values]
    assert resumed, "no trial resumed from a checkpoint"
    assert tuner.get_best_models(1)[0].built


def test_bayesian_optimization_completes(data, tmp_path):
    # keras-tuner's BayesianOptimization imports scipy and scikit-learn;
    # the package depends on keras-tuner[bayesian], so they must be there.
    for module in ("scipy", "sklearn"):
        assert importlib.util.find_spec(module) is not None, module
    hypermodel = _hypermodel(learning_rate=(1e-3, 1e-2))
    tuner = kt.BayesianOptimization(
        hypermodel, objective=hypermodel.objective, max_trials=2,
        num_initial_points=1, seed=3, directory=str(tmp_path),
        project_name="bayesian", overwrite=True,
    )
    trials = _search(tuner, data)
    _assert_all_completed(trials, 2)
    assert tuner.get_best_models(1)[0].built


@pytest.mark.tf_only  # tf.distribute
def test_distribution_strategy(data, tmp_path):
    import tensorflow as tf

    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    hypermodel = _hypermodel(z_dim=3)  # pinned: must hold in the trial
    tuner = kt.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=1, seed=4,
        directory=str(tmp_path), project_name="distributed", overwrite=True,
        distribution_strategy=strategy,
    )
    trials = _search(tuner, data)
    _assert_all_completed(trials, 1)
    assert trials[0].hyperparameters.values["z_dim"] == 3
    best = tuner.get_best_models(1)[0]
    assert best.distribute_strategy is strategy
    assert best.z_dim == 3
    assert best.predict(data[1][:2], verbose=0)["z"].shape[0] == 2


def test_missing_validation_data_fails_the_search_loudly(data, tmp_path):
    hypermodel = _hypermodel()
    tuner = kt.RandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=1,
        directory=str(tmp_path), project_name="noval", overwrite=True,
    )
    with pytest.raises(ValueError, match="validation_data"):
        tuner.search(data[0], epochs=1, verbose=0)


def test_missing_tuner_objective_fails_the_search_loudly(data, tmp_path):
    tuner = kt.RandomSearch(
        _hypermodel(), max_trials=1, directory=str(tmp_path),
        project_name="noobj", overwrite=True,
    )
    with pytest.raises(ValueError, match="objective=hypermodel.objective"):
        tuner.search(data[0], epochs=1, validation_data=(data[1],),
                     verbose=0)


# ----------------------------------------------------------------- example


def test_example_runs_with_tiny_settings(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("tune_vae", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "tune"
    code = module.main(["--trials", "2", "--epochs", "1", "--n", "64",
                        "--size", "16", "--batch-size", "32",
                        "--out", str(out), "--verbose", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "best hyperparameters:" in printed and "z_dim = " in printed
    assert (out / "best_samples.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == {"name": "val_neg_elbo",
                                    "direction": "min"}
    assert summary["completed"] == 2
    assert [t["status"] for t in summary["trials"]] == ["COMPLETED"] * 2
    assert set(summary["best"]["hyperparameters"]) == {
        "z_dim", "intermediate_dim", "beta"}
    reloaded = keras.saving.load_model(out / "best_vae.keras")
    assert reloaded.z_dim == summary["best"]["hyperparameters"][
        "z_dim"]
