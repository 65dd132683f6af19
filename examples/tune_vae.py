"""Tune a conv VAE with keras-tuner on the built-in shapes set.

Searches the latent size `z_dim`, the intermediate Dense layer between
Flatten and the `mu`/`logvar` heads (including "none") and the KL weight
`beta` (log scale) with `VAEHyperModel`, minimising the unweighted
validation negative ELBO (`val_neg_elbo`, comparable across `beta`). Writes
into `--out` (default `runs/tune`):

* `best_samples.png`  - decoded N(0, I) samples from the best model
* `best_vae.keras`    - the best model (reloads with safe_mode=True)
* `summary.json`      - best hyperparameters and score, every trial's
                        status, hyperparameters and score, timings
* `kt/`               - keras-tuner's project folder (trial checkpoints)

The defaults finish in about two minutes on two CPU cores.

Run:  python examples/tune_vae.py [--tuner random|bayesian|hyperband]
                                  [--trials 8] [--epochs 6] [--out runs/tune]

`--tuner bayesian` needs scipy and scikit-learn (`keras-tuner[bayesian]`).
With `--tuner hyperband`, `--epochs` is Hyperband's `max_epochs` and the
number of trials follows from it (`--trials` is ignored).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only examples/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import keras_tuner  # noqa: E402

from examples._common import description  # noqa: E402
from examples._common import require_at_least  # noqa: E402
from keras_vae_layers.io import atomic_path  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402
from keras_vae_layers.images import save_grid  # noqa: E402
from keras_vae_layers.tuning import VAEHyperModel  # noqa: E402
from keras_vae_layers.tuning import completed_trials  # noqa: E402

TUNERS = ("random", "bayesian", "hyperband")


def make_tuner(kind, hypermodel, trials, epochs, directory, seed, overwrite):
    """Creates the keras-tuner tuner named `kind` for `hypermodel`."""
    common = dict(
        objective=hypermodel.objective,  # val_neg_elbo, direction "min"
        directory=directory,
        project_name=f"vae_{kind}",
        overwrite=overwrite,
        seed=seed,
    )
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=trials,
                                        **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=trials,
            num_initial_points=max(1, min(3, trials - 1)), **common)
    return keras_tuner.Hyperband(hypermodel, max_epochs=epochs, factor=3,
                                 hyperband_iterations=1, **common)


def _trial_row(trial):
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": trial.score,
        "best_step": trial.best_step,
        "hyperparameters": dict(trial.hyperparameters.values),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tuner", choices=TUNERS, default="random")
    parser.add_argument("--trials", type=int, default=8,
                        help="max trials (random / bayesian)")
    parser.add_argument("--epochs", type=int, default=6,
                        help="epochs per trial (hyperband: max_epochs)")
    parser.add_argument("--n", type=int, default=5000,
                        help="number of images (10%% for validation)")
    parser.add_argument("--size", type=int, default=28, help="image side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("runs", "tune"))
    parser.add_argument("--resume", action="store_true",
                        help="continue the search in --out instead of "
                             "starting over")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                        help="passed to tuner.search: 0 quiet, 1 progress "
                             "bars, 2 one line per epoch")
    args = parser.parse_args(argv)
    if args.size % 4:
        parser.error(f"--size must be a multiple of 4, got {args.size}")
    require_at_least(parser, args, 1, "trials", "epochs")
    require_at_least(parser, args, 20, "n")

    t_start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)

    images, _ = load_shapes(args.n, size=args.size, seed=args.seed,
                            dtype="float32")
    n_val = max(2, args.n // 10)
    x_train, x_val = images[n_val:], images[:n_val]
    print(f"data: {len(x_train)} train / {len(x_val)} val images of shape "
          f"{images.shape[1:]}")

    hypermodel = VAEHyperModel(
        (args.size, args.size, 1),
        z_dim=[2, 4, 8, 16],
        intermediate_dim=[None, 64, 128],
        beta=(0.25, 4.0),
        encoder_filters=(32, 64),
        seed=args.seed,
    )
    print("search space:\n  " + hypermodel.describe().replace("\n", "\n  "))
    print(f"objective: {hypermodel.objective}")

    tuner = make_tuner(args.tuner, hypermodel, args.trials, args.epochs,
                       os.path.join(args.out, "kt"), args.seed,
                       overwrite=not args.resume)
    fit_seconds = []

    class _Progress(keras.callbacks.Callback):
        # keras-tuner deep-copies callbacks for every trial; the list in
        # the enclosing scope is shared by all the copies.
        def on_train_begin(self, logs=None):
            self._t0 = time.perf_counter()

        def on_train_end(self, logs=None):
            fit_seconds.append(round(time.perf_counter() - self._t0, 3))

    t_search = time.perf_counter()
    tuner.search(
        x_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(x_val,),
        callbacks=[_Progress()],
        verbose=args.verbose,
    )
    search_s = time.perf_counter() - t_search

    trials = [tuner.oracle.trials[k] for k in sorted(tuner.oracle.trials)]
    completed = completed_trials(tuner)
    print(f"search: {len(completed)}/{len(trials)} trials completed in "
          f"{search_s:.1f}s")
    if not completed:
        # keras-tuner swallows trial errors: show them instead of a
        # silent "success".
        for trial in trials:
            print(f"trial {trial.trial_id}: {trial.status}\n"
                  f"{trial.message or ''}", file=sys.stderr)
        return 1

    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_hp = dict(best_trial.hyperparameters.values)
    print(f"best {tuner.oracle.objective.name} = {best_trial.score:.3f} "
          f"(trial {best_trial.trial_id})")
    print("best hyperparameters:")
    for key, value in best_hp.items():
        if not key.startswith("tuner/"):
            note = " (no intermediate layer)" if (
                key == "intermediate_dim" and value == 0) else ""
            print(f"  {key} = {value}{note}")

    best = tuner.get_best_models(1)[0]
    samples_path = save_grid(best.sample(32, seed=args.seed),
                             os.path.join(args.out, "best_samples.png"),
                             rows=4, cols=8)
    model_path = os.path.join(args.out, "best_vae.keras")
    with atomic_path(model_path) as tmp:
        best.save(tmp)

    summary = {
        "args": vars(args),
        "objective": {"name": tuner.oracle.objective.name,
                      "direction": tuner.oracle.objective.direction},
        "best": {"trial_id": best_trial.trial_id, "score": best_trial.score,
                 "hyperparameters": best_hp},
        "trials": [_trial_row(t) for t in trials],
        "completed": len(completed),
        "search_seconds": round(search_s, 3),
        "fit_seconds": fit_seconds,
        "total_seconds": round(time.perf_counter() - t_start, 3),
        "files": {"samples": samples_path, "model": model_path},
    }
    summary_path = os.path.join(args.out, "summary.json")
    write_json_atomic(summary_path, summary)
    print(f"wrote {samples_path}, {model_path} and {summary_path} "
          f"({summary['total_seconds']:.1f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
