"""Distributed hyperparameter search with keras-tuner's chief/worker mode.

keras-tuner's own distributed mode: one process, the chief, runs the oracle
(here a `RandomSearch` oracle) as a gRPC server and trains nothing; each
worker asks it for a trial, trains it and reports the score back, until the
oracle has handed out `--trials` trials. The search covers `z_dim`,
`intermediate_dim` and `beta` of `VAEHyperModel` on the built-in shapes
set, minimising `val_neg_elbo`. Each trial writes its `VAECheckpoint`
files into its own folder, `kt/vae_distributed/trial_<id>/checkpoints/`
(keras-tuner's trial folder), so trials never share a checkpoint directory.
When the search is over the chief writes into `--out`:

* `best_vae.keras` - the best model (reloads with safe_mode=True)
* `summary.json`   - every trial's status, score, hyperparameters, the
                     worker that ran it and its checkpoint folder

On one machine (a free port is picked; each process's output is shown with
a `[chief]` / `[tuner<i>]` prefix; if one fails the others are stopped):

    python examples/tune_distributed.py --local-workers 2 --trials 8

On several machines keras-tuner reads three environment variables; run the
same command (without `--local-workers`) everywhere, `--out` on storage all
machines share (workers write the trial checkpoints the chief reloads):

    chief$   KERASTUNER_TUNER_ID=chief KERASTUNER_ORACLE_IP=0.0.0.0 \\
             KERASTUNER_ORACLE_PORT=8000 python examples/tune_distributed.py
    worker$  KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=<chief-host> \\
             KERASTUNER_ORACLE_PORT=8000 python examples/tune_distributed.py

(the chief listens on KERASTUNER_ORACLE_IP: `0.0.0.0` means every
interface; the port must be open in its firewall; each worker needs its own
KERASTUNER_TUNER_ID). A worker whose oracle does not answer within
`--oracle-timeout` seconds stops with an error naming the address.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only examples/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import keras_tuner  # noqa: E402

from examples._common import without_option  # noqa: E402
from keras_vae_layers import distribute  # noqa: E402
from keras_vae_layers.io import atomic_path  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.callbacks import VAECheckpoint  # noqa: E402
from keras_vae_layers.callbacks import list_checkpoints  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402
from keras_vae_layers.tuning import VAEHyperModel  # noqa: E402
from keras_vae_layers.tuning import completed_trials  # noqa: E402

PROJECT = "vae_distributed"
WORKER_FILE = "worker.json"
"""Written into each trial folder: which worker ran the trial."""


class CheckpointedRandomSearch(keras_tuner.RandomSearch):
    """`RandomSearch` whose trials checkpoint into their own folders.

    keras-tuner deep-copies the `search()` callbacks for every trial, so a
    `VAECheckpoint` passed there would give every trial (on every worker)
    the same directory; its run ids keep their files apart, but the
    directory's index would be rewritten by several processes. Here each
    trial gets a fresh callback on its own folder inside keras-tuner's
    trial folder (trial ids come from the chief's oracle, so they are
    unique across workers), and the folder records which worker ran it.
    """

    def run_trial(self, trial, *args, **kwargs):
        folder = self.get_trial_dir(trial.trial_id)
        write_json_atomic(os.path.join(folder, WORKER_FILE),
                          {"tuner_id": self.tuner_id,
                           "trial_id": trial.trial_id})
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [
            VAECheckpoint(os.path.join(folder, "checkpoints"),
                          monitor=self.oracle.objective.name, keep_last=1)]
        return super().run_trial(trial, *args, **kwargs)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--local-workers", type=int, metavar="N",
                        help="run the chief and N workers on this machine")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per trial")
    parser.add_argument("--n", type=int, default=2000,
                        help="number of images (10%% for validation)")
    parser.add_argument("--size", type=int, default=28,
                        help="image side (multiple of 4)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--filters", default="32,64",
                        help="encoder conv filters (stride 2 each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join("runs",
                                                      "tune_distributed"))
    parser.add_argument("--resume", action="store_true",
                        help="continue the search in --out (chief)")
    parser.add_argument("--oracle-timeout", type=float, default=120.0,
                        help="seconds a worker waits for the chief's oracle")
    args = parser.parse_args(argv)
    try:
        args.filters = tuple(int(f) for f in args.filters.split(","))
    except ValueError:
        parser.error(f"--filters must be comma-separated ints, got "
                     f"{args.filters!r}")
    if args.size % 4 or args.size < 8:
        parser.error(f"--size must be a multiple of 4 and >= 8, got "
                     f"{args.size}")
    for name in ("trials", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.n < 20:
        parser.error(f"--n must be >= 20, got {args.n}")
    if args.oracle_timeout <= 0:
        parser.error("--oracle-timeout must be > 0")
    if args.local_workers is not None and args.local_workers < 1:
        parser.error(f"--local-workers must be >= 1, got "
                     f"{args.local_workers}")
    return args


def launch_local(args, argv):
    """Starts the chief and `args.local_workers` workers on this machine."""
    port = distribute.free_ports(1)[0]
    command = [sys.executable, os.path.abspath(__file__),
               *without_option(argv, "--local-workers")]
    names = ["chief"] + [f"tuner{i}" for i in range(args.local_workers)]
    envs = [{"KERASTUNER_TUNER_ID": name, "KERASTUNER_ORACLE_IP": "127.0.0.1",
             "KERASTUNER_ORACLE_PORT": str(port)}
            for name in names]
    print(f"launching the chief (oracle on 127.0.0.1:{port}) and "
          f"{args.local_workers} worker(s)", flush=True)
    status = distribute.run_local_processes(
        [command] * len(names), names, envs=envs)
    return 1 if status else 0


def make_tuner(args):
    hypermodel = VAEHyperModel(
        (args.size, args.size, 1),
        z_dim=[2, 4, 8],
        intermediate_dim=[None, 32, 64],
        beta=(0.25, 4.0),
        encoder_filters=args.filters,
        seed=args.seed,
    )
    settings = distribute.keras_tuner_settings()
    return CheckpointedRandomSearch(
        hypermodel, objective=hypermodel.objective, max_trials=args.trials,
        directory=os.path.join(args.out, "kt"), project_name=PROJECT,
        seed=args.seed,
        # Only the chief may clear the project: a worker's overwrite would
        # delete the folders of trials other workers are running.
        overwrite=settings["chief"] and not args.resume,
    )


def run_worker(args, tuner_id):
    keras.utils.set_random_seed(args.seed)
    images, _ = load_shapes(args.n, size=args.size, seed=args.seed,
                            dtype="float32")
    n_val = max(2, args.n // 10)
    tuner = make_tuner(args)
    tuner.search(images[n_val:], validation_data=(images[:n_val],),
                 epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    print(f"{tuner_id}: no more trials, done", flush=True)
    return 0


def _trial_row(tuner, trial):
    folder = tuner.get_trial_dir(trial.trial_id)
    worker_file = os.path.join(folder, WORKER_FILE)
    tuner_id = None
    if os.path.isfile(worker_file):
        with open(worker_file, encoding="utf-8") as f:
            tuner_id = json.load(f)["tuner_id"]
    checkpoints = os.path.join(folder, "checkpoints")
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": trial.score,
        "hyperparameters": dict(trial.hyperparameters.values),
        "tuner_id": tuner_id,
        "checkpoint_dir": checkpoints,
        "checkpoints": len(list_checkpoints(checkpoints)),
    }


def run_chief(args):
    t_start = time.perf_counter()
    tuner = make_tuner(args)
    print(f"chief: oracle serving {args.trials} trial(s)", flush=True)
    tuner.search()  # serves the workers until every trial has ended
    trials = [tuner.oracle.trials[k] for k in sorted(tuner.oracle.trials)]
    rows = [_trial_row(tuner, trial) for trial in trials]
    for row in rows:
        print(f"chief: trial {row['trial_id']} {row['status']} "
              f"score={row['score']} by {row['tuner_id']}", flush=True)
    summary = {"args": vars(args), "trials": rows,
               "completed": len(completed_trials(tuner))}
    if summary["completed"]:
        best_trial = tuner.oracle.get_best_trials(1)[0]
        best = tuner.get_best_models(1)[0]
        model_path = os.path.join(args.out, "best_vae.keras")
        with atomic_path(model_path) as tmp:
            best.save(tmp)
        summary["best"] = {"trial_id": best_trial.trial_id,
                           "score": best_trial.score, "model": model_path}
        print(f"chief: best {tuner.oracle.objective.name} = "
              f"{best_trial.score:.3f} (trial {best_trial.trial_id}); "
              f"wrote {model_path}", flush=True)
    summary["total_seconds"] = round(time.perf_counter() - t_start, 3)
    write_json_atomic(os.path.join(args.out, "summary.json"), summary)
    if summary["completed"] < len(trials) or not trials:
        # keras-tuner swallows trial errors: make them visible.
        for trial in trials:
            if trial.status != "COMPLETED":
                print(f"chief: trial {trial.trial_id} {trial.status}:\n"
                      f"{trial.message or ''}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.local_workers is not None:
        return launch_local(args, argv)
    try:
        settings = distribute.keras_tuner_settings()
        if settings is None:
            raise ValueError(
                "KERASTUNER_ORACLE_IP is not set: pass --local-workers N, or "
                "set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
                "KERASTUNER_ORACLE_PORT in every process (see --help).")
        if not settings["chief"]:
            distribute.wait_for_oracle(args.oracle_timeout)
    except (ValueError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ValueError) else 1
    os.makedirs(args.out, exist_ok=True)
    if settings["chief"]:
        return run_chief(args)
    return run_worker(args, settings["tuner_id"])


if __name__ == "__main__":
    sys.exit(main())
