"""What the benchmark scripts share (not part of the package).

* progress lines (`log`) and the run's environment report (`run_meta`:
  date, versions, machine, devices, flags, load average; `host_meta`: the
  part that needs no framework);
* the command line: comma-separated values, `--quick` presets, the `>= 1`
  checks;
* outputs: the JSON / markdown / PNG files of a report, each written
  atomically through `keras_vae_layers.io`;
* timing: milliseconds since a start, interleaved rounds (`A B C A B C
  ...`, so a slow drift of the machine hits every contender alike) and
  their min / median / max;
* the conv stack presets (`SHAPES`) of `kl_strategies.py` and
  `inference_switch.py`.

Importing this module imports no Keras backend (`backends.py` runs each
backend in a child process of its own): the writers import
`keras_vae_layers.io` when they write.

Every script puts the repository root on `sys.path` and imports this
module as `benchmarks._common`: the scripts run as `python
benchmarks/x.py` from any directory, and their modules never clash with
the examples' (`examples/_common.py`) in a process that loads both.
"""

import datetime
import os
import platform
import statistics
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
"""Default `--out` of every script (committed results live here)."""

_T0 = time.perf_counter()


def log(*args):
    """Progress line, prefixed with the seconds since the module loaded."""
    print(f"[{time.perf_counter() - _T0:7.1f}s]", *args, flush=True)


# ----------------------------------------------------------------------------
# Environment report
# ----------------------------------------------------------------------------


def loadavg():
    """The 1, 5 and 15 minute load averages, or `None` where unknown."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def display_path(path):
    """`path` relative to the repository when inside it (no local prefix
    in committed reports), else as given."""
    root = os.path.dirname(HERE)
    full = os.path.abspath(path)
    if os.path.commonpath([root, full]) == root:
        return os.path.relpath(full, root)
    return path


def host_meta(args, flags=None):
    """The parts of `run_meta` that need no framework: when and where.

    For a script that imports no Keras backend itself (`backends.py`, whose
    children each run one) and gathers the versions from elsewhere.

    Args:
        args: The parsed command line; stored under `flags`, with `out`
            relative to the repository.
        flags: What to store under `flags` instead of `args`.

    Returns:
        Dict with `date`, `machine`, `platform`, `cpu_count`, `flags` and
        `loadavg_start`.
    """
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "machine": f"{platform.system()} {platform.machine()} "
                   f"({platform.processor() or 'unknown processor'})",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "flags": (dict(vars(args), out=display_path(args.out))
                  if flags is None else flags),
        "loadavg_start": loadavg(),
    }


def run_meta(args, extra_versions=None, flags=None):
    """The `meta` block of a report: when, with what, where, how.

    Args:
        args: The parsed command line; stored under `flags`, with `out`
            relative to the repository.
        extra_versions: Further `{name: version}` entries for `versions`.
        flags: What to store under `flags` instead of `args`.

    Returns:
        Dict with `date`, `versions` (python, tensorflow when it is the
        backend, keras, backend, numpy, keras_vae_layers, the extras),
        `machine`, `platform`, `cpu_count`, `devices`, `flags` and
        `loadavg_start`.
    """
    import keras
    import numpy as np

    import keras_vae_layers

    backend = keras.backend.backend()
    versions = {"python": platform.python_version()}
    devices = ["CPU"]
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        devices = [d.device_type + ":" + d.name.split(":")[-1]
                   for d in tf.config.list_physical_devices()]
    versions.update({"keras": keras.__version__, "backend": backend,
                     "numpy": np.__version__,
                     "keras_vae_layers": keras_vae_layers.__version__})
    versions.update(extra_versions or {})
    host = host_meta(args, flags)
    return {"date": host.pop("date"), "versions": versions,
            **{k: host.pop(k) for k in ("machine", "platform", "cpu_count")},
            "devices": devices, **host}


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def split_csv(text):
    """`"a, b,,c"` -> `["a", "b", "c"]`."""
    return [p.strip() for p in str(text).split(",") if p.strip()]


def add_output_flags(parser, chart=True):
    """`--out` (default `benchmarks/results`) and, with `chart`,
    `--no-plot`."""
    parser.add_argument("--out", default=RESULTS_DIR,
                        help="output directory (default benchmarks/results)")
    if chart:
        parser.add_argument("--no-plot", action="store_true",
                            help="do not write the PNG chart")


def apply_preset(args, preset):
    """Fills every `None` attribute of `args` from `preset` (explicit flags
    win over `--quick` and the defaults)."""
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def require_positive(parser, args, names):
    """`parser.error` (exit status 2) for the first of `names` below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")


# ----------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------


def markdown_header(title, meta, machine):
    """The opening lines of a markdown report: the title, then the date,
    `machine` (the script's own wording of machine, devices, load) and the
    versions from `meta` (see `run_meta`)."""
    return [
        f"# {title}",
        "",
        f"- date: {meta['date']}",
        f"- machine: {machine}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in
                                    meta["versions"].items()),
    ]


def targets_table(targets, detail="measured"):
    """`## Targets` as a markdown table of `{name: {"met", "detail"}}`;
    `detail` is the heading of the last column."""
    lines = ["## Targets", "", f"| target | met | {detail} |", "|---|---|---|"]
    for name, t in targets.items():
        lines.append(f"| {name} | {'yes' if t['met'] else 'NO'} | "
                     f"{t['detail']} |")
    return lines + [""]


def write_text_atomic(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    from keras_vae_layers.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_png(path, draw, dpi):
    """Draws a chart and writes it as PNG atomically.

    Args:
        path: Destination.
        draw: `draw(pyplot)` -> the matplotlib figure to save.
        dpi: Resolution.

    Returns:
        `path`, or `None` (with a message) when matplotlib, the optional
        `[plot]` extra, is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: skipping the PNG chart "
            "(pip install matplotlib, or the [plot] extra).")
        return None
    from keras_vae_layers.io import atomic_path

    fig = draw(plt)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def write_report(out_dir, stem, report, markdown, plot=None):
    """Writes `<stem>.json` and `<stem>.md` and, when `plot` is given,
    `<stem>.png` through `plot(report, path)` (which returns `None` when it
    writes nothing, as `write_png` does); logs every file written."""
    from keras_vae_layers.io import write_json_atomic

    json_path = os.path.join(out_dir, f"{stem}.json")
    md_path = os.path.join(out_dir, f"{stem}.md")
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, markdown)
    log(f"wrote {json_path}")
    log(f"wrote {md_path}")
    if plot is not None:
        png = plot(report, os.path.join(out_dir, f"{stem}.png"))
        if png:
            log(f"wrote {png}")


# ----------------------------------------------------------------------------
# Timing and statistics
# ----------------------------------------------------------------------------


def ms_since(t0):
    """Milliseconds of wall-clock time since `t0 = time.perf_counter()`."""
    return (time.perf_counter() - t0) * 1e3


def interleaved(jobs, rounds, after_round=None):
    """Runs every job of `{name: job}` once per round, in order, for
    `rounds` rounds (`A B C A B C ...`), and returns `{name: [result of
    each round]}`. `after_round(round_index, results)` is called after each
    round (progress lines)."""
    results = {name: [] for name in jobs}
    for r in range(rounds):
        for name, job in jobs.items():
            results[name].append(job())
        if after_round is not None:
            after_round(r, results)
    return results


def min_median(values):
    """`{"min": ..., "median": ...}` of a non-empty list."""
    return {"min": min(values), "median": statistics.median(values)}


def stats(values):
    """`{"min", "median", "max", "n"}` of a non-empty list of floats."""
    return {"min": float(min(values)),
            "median": float(statistics.median(values)),
            "max": float(max(values)), "n": len(values)}


# ----------------------------------------------------------------------------
# Conv stack presets (kl_strategies.py, inference_switch.py)
# ----------------------------------------------------------------------------


SHAPES = {
    # MNIST-like, the conv stack of the Keras example (28 -> 14 -> 7 -> 28).
    # ReLU as in the example (with leaky_relu and no BN, TF's grappler
    # remapper fails on the `ae` graph -- "remapper failed: ... LeakyReluGrad
    # ... missing node BiasAdd" -- and runs it unfused, skewing the ratios).
    "digits": dict(input_shape=(28, 28, 1), encoder_filters=(32, 64),
                   encoder_strides=2, decoder_filters=(64, 32, 1),
                   decoder_strides=(2, 2, 1), batch_norm=False, z_dim=16,
                   activation="relu"),
    # CelebA-like faces: four stride-2 convs with BatchNormalization.
    "faces": dict(input_shape=(64, 64, 3),
                  encoder_filters=(32, 64, 128, 256), encoder_strides=2,
                  decoder_filters=(128, 64, 32, 3), decoder_strides=2,
                  batch_norm=True, z_dim=128),
    "faces96": dict(input_shape=(96, 96, 3),
                    encoder_filters=(32, 64, 128, 256), encoder_strides=2,
                    decoder_filters=(128, 64, 32, 3), decoder_strides=2,
                    batch_norm=True, z_dim=256),
    # faces with 0.1's decoder (BN and activation after the decoder's Dense,
    # now opt-in): the floor the faces ratios were measured against before
    # the builder's default became the original architecture.
    "faces-v01": dict(input_shape=(64, 64, 3),
                      encoder_filters=(32, 64, 128, 256), encoder_strides=2,
                      decoder_filters=(128, 64, 32, 3), decoder_strides=2,
                      batch_norm=True, z_dim=128,
                      decoder_dense_batch_norm=True,
                      decoder_dense_activation=True),
    # Tiny shapes for smoke tests (seconds, not minutes).
    "tiny-digits": dict(input_shape=(16, 16, 1), encoder_filters=(4, 8),
                        encoder_strides=2, decoder_filters=(8, 4, 1),
                        decoder_strides=(2, 2, 1), batch_norm=False, z_dim=4,
                        activation="relu"),
    "tiny-faces": dict(input_shape=(16, 16, 3), encoder_filters=(4, 8),
                       encoder_strides=2, decoder_filters=(4, 3),
                       decoder_strides=2, batch_norm=True, z_dim=4),
}


def build_kwargs(spec, z_dim, intermediate_dim=None):
    """`build_conv_encoder_decoder` arguments for a `SHAPES` entry."""
    return dict(
        input_shape=spec["input_shape"], z_dim=int(z_dim),
        encoder_filters=spec["encoder_filters"], encoder_kernel_sizes=3,
        encoder_strides=spec["encoder_strides"],
        decoder_filters=spec["decoder_filters"], decoder_kernel_sizes=3,
        decoder_strides=spec["decoder_strides"],
        batch_norm=spec["batch_norm"], intermediate_dim=intermediate_dim,
        activation=spec.get("activation", "leaky_relu"),
        decoder_dense_batch_norm=spec.get("decoder_dense_batch_norm", False),
        decoder_dense_activation=spec.get("decoder_dense_activation", False),
    )
