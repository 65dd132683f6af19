"""A beta sweep on the built-in shapes set: likelihood versus disentanglement.

Trains the same conv VAE (one builder configuration, the demo's conv stack
with `z_dim` 10) on binary 32x32 sprites from `datasets.load_shapes` for
each `beta` in `--betas` (default 0.5, 1, 2, 4, 8) and each seed in
`--seeds`, then measures on held-out sprites, with
`keras_vae_layers.evaluation`:

* the test log-likelihood (importance-weighted, `--ll-samples` K per image,
  on `--n-ll` images; the images are binary, so it is a true
  log-probability in nats), and the ELBO terms (`reco_loss`, `kl_loss`,
  `neg_elbo` of `vae.evaluate`) and active units on the test set;
* MIG, DCI (disentanglement, completeness, informativeness) and SAP on the
  posterior means of `--n-test` test sprites against their factors (shape,
  scale, rotation, x, y; the continuous ones cut into 10 bins);
* the beta-VAE and FactorVAE scores from factor-conditioned batches
  (`datasets.sample_shapes_with_fixed_factor`).

Every metric is reported per beta as the mean +- half the range over seeds,
and a trend section says, metric by metric, whether the published trend
(higher beta: more disentanglement, worse reconstruction; Higgins et al.
2017, Locatello et al. 2019) is reproduced: the Spearman rank correlation
of the per-beta means with beta, and where the ordering breaks.

Optional runs (`--extras annealed,free_bits`) add, at `--extra-beta`, a
linear KL warm-up over the first third of the epochs (`KLAnnealing`) and a
free-bits floor of 0.5 nats per latent dimension.

Outputs in `--out` (default `benchmarks/results/`), written atomically:
`beta_sweep.json`, `beta_sweep.md` and, with matplotlib, `beta_sweep.png`.

Usage:

    python benchmarks/beta_sweep.py             # full sweep (<= 30 min, 2 cores)
    python benchmarks/beta_sweep.py --quick     # about 2 minutes
    python benchmarks/beta_sweep.py --betas 1,4 --seeds 0 --epochs 5
"""

import argparse
import functools
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # run as a script: only benchmarks/ is on it
    sys.path.insert(0, _ROOT)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._common import add_output_flags  # noqa: E402
from benchmarks._common import apply_preset  # noqa: E402
from benchmarks._common import loadavg  # noqa: E402
from benchmarks._common import log  # noqa: E402
from benchmarks._common import markdown_header  # noqa: E402
from benchmarks._common import require_positive  # noqa: E402
from benchmarks._common import run_meta  # noqa: E402
from benchmarks._common import split_csv  # noqa: E402
from benchmarks._common import write_png  # noqa: E402
from benchmarks._common import write_report  # noqa: E402
from keras_vae_layers import VAEModel  # noqa: E402
from keras_vae_layers import build_conv_encoder_decoder  # noqa: E402
from keras_vae_layers import datasets  # noqa: E402
from keras_vae_layers import diagnostics  # noqa: E402
from keras_vae_layers import evaluation  # noqa: E402
from keras_vae_layers.callbacks import KLAnnealing  # noqa: E402

DEFAULTS = dict(betas="0.5,1,2,4,8", seeds="0,1,2", epochs=15, n_train=8000,
                n_test=2000, n_ll=250, ll_samples=500, score_points=300,
                size=32, batch_size=64, z_dim=10)
QUICK = dict(betas="0.5,1,2,4,8", seeds="0", epochs=3, n_train=3000,
             n_test=500, n_ll=50, ll_samples=100, score_points=60)
EXTRAS = ("annealed", "free_bits")
FREE_BITS = 0.5

# (key, label, format, expected sign of the correlation with beta or None)
METRICS = (
    ("log_likelihood", "test log-lik (IWAE)", "{:.2f}", None),
    ("neg_elbo", "neg. ELBO", "{:.2f}", None),
    ("reco_loss", "reconstruction", "{:.2f}", +1),
    ("kl_loss", "KL", "{:.2f}", -1),
    ("active_units", "active units", "{:.1f}", -1),
    ("mig", "MIG", "{:.3f}", +1),
    ("dci_disentanglement", "DCI disentanglement", "{:.3f}", +1),
    ("dci_completeness", "DCI completeness", "{:.3f}", +1),
    ("dci_informativeness", "DCI informativeness", "{:.3f}", None),
    ("sap", "SAP", "{:.3f}", +1),
    ("beta_vae_score", "beta-VAE score", "{:.3f}", +1),
    ("factor_vae_score", "FactorVAE score", "{:.3f}", +1),
)
DISENTANGLEMENT = ("mig", "dci_disentanglement", "dci_completeness", "sap",
                   "beta_vae_score", "factor_vae_score")

# ----------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------


def build_vae(size, z_dim, beta, seed, free_bits=0.0):
    """The demo's conv stack (three stride-2 convs, Dense 128), any beta."""
    encoder, decoder = build_conv_encoder_decoder(
        (size, size, 1), z_dim=z_dim,
        encoder_filters=(32, 64, 64), encoder_kernel_sizes=4,
        encoder_strides=2, decoder_filters=(64, 32, 1),
        decoder_kernel_sizes=4, decoder_strides=2, intermediate_dim=128,
        kl_layer=False, seed=seed)
    vae = VAEModel(encoder, decoder, beta=beta, free_bits=free_bits,
                   seed=seed)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    return vae


def _epoch_logger(label, epochs):
    start = time.perf_counter()

    def on_epoch_end(epoch, logs):
        log(f"  {label} epoch {epoch + 1}/{epochs}: neg_elbo "
            f"{logs['neg_elbo']:.2f} reco {logs['reco_loss']:.2f} kl "
            f"{logs['kl_loss']:.2f} beta {float(logs['beta']):.3g} "
            f"({time.perf_counter() - start:.0f} s)")

    return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def run_one(data, args, beta, seed, variant):
    """Trains one model and measures every metric; returns a result dict."""
    label = f"beta={beta:g} seed={seed}" + (
        f" {variant}" if variant != "plain" else "")
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    vae = build_vae(args.size, args.z_dim, beta, seed,
                    FREE_BITS if variant == "free_bits" else 0.0)
    callbacks = [_epoch_logger(label, args.epochs)]
    if variant == "annealed":
        callbacks.insert(0, KLAnnealing(
            "linear", beta_max=beta,
            warmup_epochs=max(1, args.epochs // 3)))
    t0 = time.perf_counter()
    vae.fit(data["x_train"], epochs=args.epochs, batch_size=args.batch_size,
            verbose=0, callbacks=callbacks)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    x_test, factors = data["x_test"], data["factors_test"]
    terms = vae.evaluate(x_test, batch_size=256, verbose=0, return_dict=True)
    enc = diagnostics.encode_dataset(vae, x_test, batch_size=256)
    stats = diagnostics.compute_latent_statistics(enc["z"], enc["mu"],
                                                  enc["logvar"])
    mu = enc["mu"]
    t_ll = time.perf_counter()
    ll = evaluation.log_likelihood(vae, x_test[:args.n_ll],
                                   num_samples=args.ll_samples, seed=seed)
    ll_s = time.perf_counter() - t_ll
    t_dis = time.perf_counter()
    dci = evaluation.dci(mu, factors, seed=seed)
    sampler = functools.partial(datasets.sample_shapes_with_fixed_factor,
                                size=args.size, dtype="float32",
                                antialias=False)
    points = args.score_points
    beta_vae = evaluation.beta_vae_score(vae, sampler, num_train=points,
                                         num_eval=points // 2, seed=seed)
    factor_vae = evaluation.factor_vae_score(
        vae, sampler, num_train=points, num_eval=points // 2,
        num_variance_estimate=min(5000, 10 * points), seed=seed)
    metrics = {
        "log_likelihood": float(ll.mean()),
        "neg_elbo": float(terms["neg_elbo"]),
        "reco_loss": float(terms["reco_loss"]),
        "kl_loss": float(terms["kl_loss"]),
        "active_units": float(stats["active_units"]),
        "mig": evaluation.mutual_information_gap(mu, factors),
        "dci_disentanglement": dci["disentanglement"],
        "dci_completeness": dci["completeness"],
        "dci_informativeness": dci["informativeness"],
        "sap": evaluation.sap_score(mu, factors, seed=seed),
        "beta_vae_score": beta_vae["eval_accuracy"],
        "factor_vae_score": factor_vae["eval_accuracy"],
    }
    eval_s = time.perf_counter() - t0
    log(f"  {label}: test log-lik {metrics['log_likelihood']:.2f} "
        f"(K={args.ll_samples}, {ll_s:.0f} s), MIG {metrics['mig']:.3f}, "
        f"DCI-D {metrics['dci_disentanglement']:.3f}, beta-VAE "
        f"{metrics['beta_vae_score']:.3f}, FactorVAE "
        f"{metrics['factor_vae_score']:.3f} (disentanglement "
        f"{time.perf_counter() - t_dis:.0f} s); train {train_s:.0f} s, "
        f"eval {eval_s:.0f} s")
    return {"beta": beta, "seed": seed, "variant": variant,
            "metrics": metrics, "train_seconds": round(train_s, 1),
            "eval_seconds": round(eval_s, 1),
            "log_likelihood_seconds": round(ll_s, 1)}


# ----------------------------------------------------------------------------
# Summary and trend
# ----------------------------------------------------------------------------


def group_label(run):
    return f"{run['beta']:g}" + (
        f" ({run['variant']})" if run["variant"] != "plain" else "")


def summarise(runs):
    """Per group (beta, variant): mean and half-range of every metric."""
    groups = {}
    for run in runs:
        groups.setdefault(group_label(run), []).append(run)
    summary = {}
    for label, members in groups.items():
        entry = {"beta": members[0]["beta"],
                 "variant": members[0]["variant"], "seeds": len(members)}
        for key, *_ in METRICS:
            values = np.array([m["metrics"][key] for m in members])
            entry[key] = {"mean": float(values.mean()),
                          "spread": float((values.max() - values.min()) / 2)}
        summary[label] = entry
    return summary


def spearman(x, y):
    """Spearman rank correlation (average ranks for ties); 0 when either
    side is constant."""
    from scipy import stats

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(stats.spearmanr(x, y).statistic)


def trend(summary):
    """Metric by metric: the rank correlation of the plain runs' per-beta
    means with beta, and whether it has the published sign."""
    plain = sorted((e for e in summary.values() if e["variant"] == "plain"),
                   key=lambda e: e["beta"])
    betas = [e["beta"] for e in plain]
    out = {}
    if len(betas) < 3:
        return out
    for key, label, _, sign in METRICS:
        means = [e[key]["mean"] for e in plain]
        rho = spearman(betas, means)
        entry = {"label": label, "spearman": round(rho, 3),
                 "best_beta": betas[int(np.argmax(means))]
                 if key not in ("neg_elbo", "reco_loss") else
                 betas[int(np.argmin(means))]}
        if sign is not None:
            entry["expected"] = "increases" if sign > 0 else "decreases"
            entry["reproduced"] = bool(rho * sign >= 0.7)
            steps = np.sign(np.diff(means)) * sign
            entry["breaks"] = [f"{betas[i]:g} -> {betas[i + 1]:g}"
                               for i in np.flatnonzero(steps < 0)]
        out[key] = entry
    return out


def verdict(trends):
    """One paragraph: is the published trend reproduced, and where not."""
    if not trends:
        return "Too few beta values for a trend (need 3)."
    reco = trends["reco_loss"]
    dis = [trends[k] for k in DISENTANGLEMENT]
    held = [t["label"] for t in dis if t["reproduced"]]
    failed = [f"{t['label']} (rho {t['spearman']:+.2f}"
              + (f"; breaks at {', '.join(t['breaks'])}" if t["breaks"]
                 else "") + ")" for t in dis if not t["reproduced"]]
    lines = [
        "Reconstruction gets worse with beta: "
        + ("yes" if reco["reproduced"] else "no")
        + f" (rho {reco['spearman']:+.2f}"
        + (f"; breaks at {', '.join(reco['breaks'])}" if reco["breaks"]
           else "") + ").",
        f"Disentanglement grows with beta on {len(held)} of {len(dis)} "
        "metrics" + (f": {', '.join(held)}." if held else "."),
    ]
    if failed:
        lines.append("Not reproduced: " + "; ".join(failed) + ".")
    ll = trends["log_likelihood"]
    lines.append(f"The test log-likelihood is best at beta = "
                 f"{ll['best_beta']:g} (rho with beta {ll['spearman']:+.2f}).")
    return " ".join(lines)


# ----------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------


def markdown_report(report):
    """The report as markdown: environment, results, trend, notes."""
    meta, flags = report["meta"], report["meta"]["flags"]
    lines = markdown_header(
        "beta sweep on the built-in shapes set", meta,
        f"{meta['machine']}, {meta['cpu_count']} CPU cores, devices "
        f"{', '.join(meta['devices'])}; load average at start "
        f"{meta['loadavg_start']}, at end {meta.get('loadavg_end')}")
    lines += [
        f"- wall time: {meta.get('wall_seconds', 0):.0f} s",
        f"- data: {flags['n_train']} binary {flags['size']}x{flags['size']} "
        f"sprites for training, {flags['n_test']} held out (metrics), "
        f"IWAE on the first {flags['n_ll']} of them with K = "
        f"{flags['ll_samples']}; {flags['epochs']} epochs, batch "
        f"{flags['batch_size']}, z_dim {flags['z_dim']}; seeds "
        f"{flags['seeds']}; beta-VAE / FactorVAE scores from "
        f"{flags['score_points']} training points",
        "",
        "## Results (mean +- half the range over seeds)",
        "",
        "| beta | seeds | " + " | ".join(m[1] for m in METRICS) + " |",
        "|---|---:|" + "---:|" * len(METRICS),
    ]
    for label, entry in report["summary"].items():
        cells = [fmt.format(entry[key]["mean"]) + " +- "
                 + fmt.format(entry[key]["spread"])
                 for key, _, fmt, _ in METRICS]
        lines.append(f"| {label} | {entry['seeds']} | " + " | ".join(cells)
                     + " |")
    lines += ["", "## Trend", "", report["verdict"], ""]
    if report["trend"]:
        lines += ["| metric | expected with beta | Spearman rho | "
                  "reproduced | ordering breaks |", "|---|---|---:|---|---|"]
        for t in report["trend"].values():
            if "expected" not in t:
                continue
            lines.append(f"| {t['label']} | {t['expected']} | "
                         f"{t['spearman']:+.2f} | "
                         f"{'yes' if t['reproduced'] else 'no'} | "
                         f"{', '.join(t['breaks']) or '-'} |")
        lines.append("")
    lines += [
        "## Notes",
        "",
        "- Log-likelihoods are in nats per image (1,024 binary pixels); "
        "the neg. ELBO is an upper bound on -log p(x), the IWAE estimate "
        "a tighter one.",
        "- Rotation is only partly identifiable from the images (a square "
        "looks the same every 90 degrees, an ellipse every 180), which caps "
        "every metric's share for that factor, as for dSprites' "
        "orientation.",
        "- DCI uses random forests and SAP a per-latent histogram "
        "classifier (see `keras_vae_layers.evaluation`), and the "
        "beta-VAE / FactorVAE scores use fewer points than "
        "disentanglement_lib: compare trends, not absolute values, with "
        "published tables.",
        "- Reproduce: `python benchmarks/beta_sweep.py` (flags in the JSON "
        "under meta.flags).",
        "",
    ]
    return "\n".join(lines)


def plot_report(report, path):
    """Each metric against beta (log axis), mean with half-range bars.

    Returns the path written, or `None` when matplotlib is missing.
    """
    return write_png(path, functools.partial(_metric_charts, report),
                     dpi=90)


def _metric_charts(report, plt):
    plain = sorted((e for e in report["summary"].values()
                    if e["variant"] == "plain"), key=lambda e: e["beta"])
    others = [e for e in report["summary"].values()
              if e["variant"] != "plain"]
    cols = 4
    rows = -(-len(METRICS) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows),
                             squeeze=False)
    for ax, (key, label, _, _) in zip(axes.flat, METRICS):
        ax.errorbar([e["beta"] for e in plain],
                    [e[key]["mean"] for e in plain],
                    yerr=[e[key]["spread"] for e in plain], marker="o",
                    capsize=3, label="plain")
        for i, e in enumerate(others):
            ax.errorbar([e["beta"]], [e[key]["mean"]],
                        yerr=[e[key]["spread"]], marker="s", capsize=3,
                        linestyle="none", color=f"C{i + 1}",
                        label=e["variant"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("beta")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(METRICS):]:
        ax.axis("off")
    if others:
        axes.flat[0].legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------


def _non_negative(cast, what):
    """An argparse `type`: comma-separated non-negative `cast` values."""
    def parse(text):
        values = [cast(p) for p in split_csv(text)]
        if not values or any(v < 0 for v in values):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated non-negative {what}, got "
                f"{text!r}")
        return values
    return parse


_floats = _non_negative(float, "numbers")
_ints = _non_negative(int, "ints")


def _extras(text):
    values = split_csv(text)
    bad = [v for v in values if v not in EXTRAS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown extras {bad}; choose from {list(EXTRAS)}")
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="beta_sweep.py",
        description="Trains the same conv VAE on the built-in shapes set "
                    "for several beta values and seeds and reports test "
                    "log-likelihood, ELBO terms and disentanglement "
                    "metrics per beta.",
        epilog="See benchmarks/README.md.")
    parser.add_argument("--quick", action="store_true",
                        help="a ~2-minute look: one seed, 3 epochs, small "
                             "sets (explicit flags still win)")
    parser.add_argument("--betas", type=_floats, default=None,
                        help=f"default {DEFAULTS['betas']}")
    parser.add_argument("--seeds", type=_ints, default=None,
                        help=f"default {DEFAULTS['seeds']}")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None,
                        help="held-out sprites for the factor metrics")
    parser.add_argument("--n-ll", type=int, default=None,
                        help="held-out sprites for the IWAE estimate")
    parser.add_argument("--ll-samples", type=int, default=None,
                        help="importance samples K per image")
    parser.add_argument("--score-points", type=int, default=None,
                        help="training points of the beta-VAE / FactorVAE "
                             "scores (half as many for evaluation)")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--z-dim", type=int, default=None)
    parser.add_argument("--extras", type=_extras, default=[],
                        help=f"comma-separated subset of {list(EXTRAS)}, "
                             "run at --extra-beta for every seed")
    parser.add_argument("--extra-beta", type=float, default=4.0)
    parser.add_argument("--data-seed", type=int, default=0)
    add_output_flags(parser)
    args = parser.parse_args(argv)
    apply_preset(args, dict(DEFAULTS, **(QUICK if args.quick else {})))
    for key in ("betas", "seeds"):
        if isinstance(getattr(args, key), str):
            setattr(args, key, (_floats if key == "betas" else _ints)(
                getattr(args, key)))
    require_positive(parser, args, ("epochs", "n_train", "n_test", "n_ll",
                                    "ll_samples", "score_points", "size",
                                    "batch_size", "z_dim"))
    if args.n_ll > args.n_test:
        parser.error("--n-ll must not exceed --n-test")
    return args


def load_data(args):
    """Binary sprites: the Bernoulli likelihood is then exact."""
    n = args.n_train + args.n_test
    images, factors = datasets.load_shapes(n, size=args.size,
                                           seed=args.data_seed,
                                           dtype="float32", antialias=False)
    return {
        "x_train": images[:args.n_train],
        "x_test": images[args.n_train:],
        "factors_test": {k: v[args.n_train:] for k, v in factors.items()},
    }


def main(argv=None):
    """Runs the sweep and writes the reports; returns the exit status."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    import sklearn

    report = {"meta": run_meta(
        args, extra_versions={"scikit-learn": sklearn.__version__})}
    plan = [(beta, seed, "plain") for seed in args.seeds
            for beta in args.betas]
    plan += [(args.extra_beta, seed, extra) for seed in args.seeds
             for extra in args.extras]
    log(f"beta_sweep: {len(plan)} runs (betas {args.betas}, seeds "
        f"{args.seeds}, extras {args.extras or 'none'}), {args.epochs} "
        f"epochs on {args.n_train} sprites of {args.size}x{args.size}")
    data = load_data(args)
    runs = []
    for i, (beta, seed, variant) in enumerate(plan, 1):
        log(f"[run {i}/{len(plan)}] beta={beta:g} seed={seed} {variant}")
        runs.append(run_one(data, args, beta, seed, variant))
    report["runs"] = runs
    report["summary"] = summarise(runs)
    report["trend"] = trend(report["summary"])
    report["verdict"] = verdict(report["trend"])
    report["meta"]["loadavg_end"] = loadavg()
    report["meta"]["wall_seconds"] = round(time.perf_counter() - start, 1)
    write_report(args.out, "beta_sweep", report, markdown_report(report),
                 None if args.no_plot else plot_report)
    log(report["verdict"])
    log(f"total wall time {report['meta']['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
