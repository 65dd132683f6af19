"""Train one conv VAE with several worker processes (MultiWorkerMirroredStrategy).

Every worker runs this script; together they train a single model, data
parallel: each step every worker computes the gradients of its share of the
global batch (`--batch-size`), the gradients are all-reduced and every
worker applies the same update. Worker 0 is the chief: only it writes the
checkpoints (`checkpoints/`), the per-epoch sample grids (`samples/`) and
`summary.json` into `--out`. Rerunning the same command resumes every
worker from the chief's latest checkpoint.

On one machine (free ports are picked; each worker's output is shown with a
`[worker i]` prefix; if one worker fails the others are stopped):

    python examples/multiworker_train.py --local-workers 2 --epochs 5

On several machines, one command per machine with the same `--workers`
list (every `host:port` reachable from every other machine: open the ports
in the firewall) and each machine's own `--index`; `--out` must be storage
all workers can read (a shared file system), because every worker restores
the chief's checkpoint when resuming:

    host-a$ python examples/multiworker_train.py \\
                --workers host-a:23456,host-b:23456 --index 0 --out /shared/mw
    host-b$ python examples/multiworker_train.py \\
                --workers host-a:23456,host-b:23456 --index 1 --out /shared/mw

Without `--workers`, the `TF_CONFIG` environment variable is used (as set by
a cluster scheduler). A worker that dies makes the others fail within about
10 s (TensorFlow's coordination service) and at most `--collective-timeout`
seconds; a cluster that does not come up within `--startup-timeout` seconds
ends the waiting processes.
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

from examples._common import without_option  # noqa: E402
from examples._common import history_as_floats  # noqa: E402
from keras_vae_layers import VAEModel  # noqa: E402
from keras_vae_layers import build_conv_encoder_decoder  # noqa: E402
from keras_vae_layers import distribute  # noqa: E402
from keras_vae_layers.io import write_json_atomic  # noqa: E402
from keras_vae_layers.callbacks import SampleGridLogger  # noqa: E402
from keras_vae_layers.callbacks import VAECheckpoint  # noqa: E402
from keras_vae_layers.callbacks import restore_latest  # noqa: E402
from keras_vae_layers.datasets import load_shapes  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local-workers", type=int, metavar="N",
                       help="launch N workers on this machine")
    where.add_argument("--workers", metavar="HOST:PORT,...",
                       help="every worker's address, the same list on every "
                            "machine (default: the TF_CONFIG variable)")
    parser.add_argument("--index", type=int,
                        help="this worker's position in --workers")
    parser.add_argument("--out", default=os.path.join("runs", "multiworker"))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n", type=int, default=4096,
                        help="number of shapes images")
    parser.add_argument("--size", type=int, default=32,
                        help="image side (multiple of 4, >= 8)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="global batch (split across the workers)")
    parser.add_argument("--z-dim", type=int, default=8)
    parser.add_argument("--filters", default="32,64",
                        help="encoder conv filters (stride 2 each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--collective-timeout", type=float, default=300.0,
                        help="seconds one all-reduce may wait for the other "
                             "workers")
    parser.add_argument("--startup-timeout", type=float, default=300.0,
                        help="seconds to wait for the whole cluster to start")
    args = parser.parse_args(argv)
    try:
        args.filters = tuple(int(f) for f in args.filters.split(","))
    except ValueError:
        parser.error(f"--filters must be comma-separated ints, got "
                     f"{args.filters!r}")
    if args.size % 4 or args.size < 8:
        parser.error(f"--size must be a multiple of 4 and >= 8, got "
                     f"{args.size}")
    for name in ("epochs", "n", "batch_size", "z_dim"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.local_workers is not None:
        if args.local_workers < 1:
            parser.error(f"--local-workers must be >= 1, got "
                         f"{args.local_workers}")
        if args.index is not None:
            parser.error("--index belongs to --workers, not --local-workers")
    elif args.workers is not None:
        if args.index is None:
            parser.error("--workers needs --index (this worker's position "
                         "in the list)")
        try:
            config = distribute.tf_config(args.workers, args.index)
        except ValueError as error:
            parser.error(str(error).replace("`workers`", "--workers")
                         .replace("`index`", "--index"))
        os.environ["TF_CONFIG"] = json.dumps(config)
    elif args.index is not None:
        parser.error("--index needs --workers")
    else:
        try:
            distribute.read_tf_config()
        except ValueError as error:
            parser.error(f"{error} Or pass --workers and --index, or "
                         "--local-workers N.")
    if args.n < args.batch_size:
        parser.error(f"--n ({args.n}) must be >= --batch-size "
                     f"({args.batch_size})")
    return args


def launch_local(args, argv):
    """Starts `args.local_workers` copies of this script on this machine."""
    ports = distribute.free_ports(args.local_workers)
    workers = ",".join(f"localhost:{port}" for port in ports)
    base = without_option(argv, "--local-workers")
    commands = [
        [sys.executable, os.path.abspath(__file__), *base,
         "--workers", workers, "--index", str(i)]
        for i in range(args.local_workers)
    ]
    names = [f"worker {i}" for i in range(args.local_workers)]
    print(f"launching {args.local_workers} local workers: {workers}",
          flush=True)
    status = distribute.run_local_processes(commands, names)
    if status:
        print(f"multi-worker run failed (status {status}); rerun the same "
              "command to resume from the last checkpoint", file=sys.stderr)
    return 1 if status else 0


def make_dataset(x, batch_size, seed):
    """Shuffled global batches that `tf.distribute` splits by element.

    Every worker builds the same dataset (same seed, so the same order) and
    keeps its share of each global batch: `AutoShardPolicy.DATA` (in-memory
    data has no files to split). `drop_remainder` keeps the per-worker
    batches equal, so the averaged logs are the global means.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return (tf.data.Dataset.from_tensor_slices(x)
            .shuffle(len(x), seed=seed)
            .batch(batch_size, drop_remainder=True)
            .prefetch(2)
            .with_options(options))


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._t0, 4))


def train(args):
    """One worker's part of the run; returns the process exit status."""
    t_start = time.perf_counter()
    strategy = distribute.multi_worker_strategy(
        collective_timeout=args.collective_timeout,
        startup_timeout=args.startup_timeout)
    with strategy.scope():
        chief = distribute.is_chief()
    task = distribute.read_tf_config()["task"]
    me = f"{task['type']} {task['index']}"
    print(f"{me}: {strategy.num_replicas_in_sync} replicas in sync"
          f"{' (chief: writes the files)' if chief else ''}", flush=True)

    keras.utils.set_random_seed(args.seed)
    x, _ = load_shapes(args.n, size=args.size, seed=args.seed,
                       dtype="float32")
    steps = args.n // args.batch_size
    ckpt_dir = os.path.join(args.out, "checkpoints")
    with strategy.scope():
        encoder, decoder = build_conv_encoder_decoder(
            (args.size, args.size, 1), z_dim=args.z_dim,
            encoder_filters=args.filters, encoder_kernel_sizes=3,
            encoder_strides=2,
            decoder_filters=args.filters[-2::-1] + (1,),
            decoder_kernel_sizes=3, decoder_strides=2,
            intermediate_dim=64, kl_layer=False, seed=args.seed)
        vae = VAEModel(encoder, decoder, seed=args.seed)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        # Every worker restores the same (chief's) checkpoint; variables
        # and optimizer slots must be created inside the scope.
        initial_epoch = restore_latest(vae, ckpt_dir)
    if initial_epoch >= args.epochs:
        print(f"{me}: the checkpoints in {ckpt_dir} reach epoch "
              f"{initial_epoch} >= --epochs {args.epochs}; nothing to do")
        return 0
    if initial_epoch:
        print(f"{me}: resuming from the checkpoint of epoch {initial_epoch}",
              flush=True)

    timer = _EpochTimer()
    callbacks = [
        VAECheckpoint(ckpt_dir, monitor="loss", keep_last=2),
        SampleGridLogger(os.path.join(args.out, "samples"), rows=4, cols=8,
                         seed=args.seed),
        timer,
    ]
    # shuffle=False: the dataset shuffles itself, in the same order on every
    # worker (the split by element needs it).
    history = vae.fit(make_dataset(x, args.batch_size, args.seed),
                      epochs=args.epochs, initial_epoch=initial_epoch,
                      callbacks=callbacks, verbose=2 if chief else 0,
                      shuffle=False)
    if chief:
        # Epochs after the first: the first one includes tracing.
        later = timer.seconds[1:] or timer.seconds
        summary = {
            "args": vars(args),
            "workers": strategy.num_replicas_in_sync,
            "initial_epoch": initial_epoch,
            "epochs_trained": len(timer.seconds),
            "history": history_as_floats(history.history),
            "steps_per_epoch": steps,
            "epoch_seconds": timer.seconds,
            "step_seconds": round(sum(later) / len(later) / steps, 5),
            "total_seconds": round(time.perf_counter() - t_start, 3),
        }
        path = os.path.join(args.out, "summary.json")
        write_json_atomic(path, summary)
        print(f"{me}: {summary['step_seconds'] * 1e3:.1f} ms per step of "
              f"{args.batch_size} images over {summary['workers']} "
              f"worker(s); wrote {path}", flush=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.local_workers is not None:
        return launch_local(args, argv)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
