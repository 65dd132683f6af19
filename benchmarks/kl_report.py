"""The report of `kl_strategies.py`: targets, markdown tables, chart."""

import functools
import json

from benchmarks._common import markdown_header
from benchmarks._common import targets_table
from benchmarks._common import write_png
from benchmarks.encoder_params import markdown_table as params_table
from benchmarks.inference_switch import markdown_table as switch_table
from benchmarks.kl_variants import SHIPPED

TARGET_RATIO_TO_AE = 1.05
TARGET_SWITCH_MS = 1.0


def evaluate_targets(report):
    """The issue's targets, each `{"met": bool, "detail": str}`."""
    targets = {}
    for shape, res in report.get("speed", {}).items():
        if "ae" not in res:
            continue
        for name in SHIPPED:
            if name in res:
                ratio = res[name]["ratio_to_ae_min"]
                targets[f"{shape}: {name} <= {TARGET_RATIO_TO_AE}x ae"] = {
                    "met": ratio <= TARGET_RATIO_TO_AE,
                    "detail": f"{ratio:.3f}x (min over rounds); median "
                              f"{res[name]['ratio_to_ae_median']:.3f}x; "
                              f"CPU time "
                              f"{res[name]['cpu']['ratio_to_ae_min']:.3f}x",
                }
        if "train_step" in res and "reference" in res:
            ratio = res["train_step"]["min"] / res["reference"]["min"]
            med = res["train_step"]["median"] / res["reference"]["median"]
            cpu = (res["train_step"]["cpu"]["min"]
                   / res["reference"]["cpu"]["min"])
            targets[f"{shape}: train_step no slower than reference"] = {
                "met": ratio <= 1.0,
                "detail": f"{ratio:.3f}x (min over rounds); median "
                          f"{med:.3f}x; CPU time {cpu:.3f}x",
            }
    for shape, res in report.get("switch", {}).items():
        m = res["methods"]["eps_factor_assign"]
        targets[f"{shape}: sampling switch < {TARGET_SWITCH_MS} ms, "
                f"0 retraces"] = {
            "met": (m["switch_ms"]["median"] < TARGET_SWITCH_MS
                    and m["retraces_total"] == 0 and m["honoured"]),
            "detail": f"{m['switch_ms']['median'] * 1e3:.0f} us median, "
                      f"{m['retraces_total']} retraces, honoured: "
                      f"{m['honoured']}",
        }
    return targets


def markdown_report(report):
    """The report as markdown: environment, then one section per part."""
    meta = report["meta"]
    lines = markdown_header(
        "KL strategies benchmark", meta,
        f"{meta['machine']}, {meta['cpu_count']} CPUs, devices: "
        f"{', '.join(meta['devices'])}")
    lines += [
        f"- flags: `{json.dumps(meta['flags'], sort_keys=True)}`",
        f"- load average (1 min) at start / end: {meta['loadavg_start']} / "
        f"{meta.get('loadavg_end')}",
        "",
    ]
    if "parity" in report:
        lines += _parity_section(report["parity"], meta["flags"])
    if "speed" in report:
        lines += _speed_section(report["speed"], report["shapes"],
                                meta["flags"])
    if "switch" in report:
        lines += [
            "## Switching sampling on/off at inference time",
            "",
            switch_table(report["switch"]),
        ]
    if "encoder_params" in report:
        lines += [
            "## Encoder parameters with and without `intermediate_dim`",
            "",
            params_table(report["encoder_params"]),
        ]
    if report.get("targets"):
        lines += targets_table(report["targets"])
    return "\n".join(lines)


def _parity_section(parity_by_shape, flags):
    lines = [
        "## Parity with `train_step` (VAEModel)",
        "",
        f"Relative differences on one fixed batch, same weights; "
        f"pass when all are <= {flags['tolerance']:g}. Gradient columns: the "
        f"largest `|g - g_ref|` over all variables divided by the model's "
        f"largest `|g_ref|` entry; `per var.`: the largest ratio to each "
        f"variable's own largest entry (information only: float32 "
        f"summation order alone moves it towards 1e-5 for big sums "
        f"with cancellation such as a first-layer BN `gamma`; "
        f"numerically zero gradients, e.g. biases followed by "
        f"BatchNormalization, left out).",
        "",
    ]
    for shape, parity in parity_by_shape.items():
        lines += [
            f"### {shape}",
            "",
            "| variant | det. loss | det. grads | det. grads per var. | "
            "stoch. loss | stoch. grads | stoch. grads per var. | "
            "result |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, r in parity.items():
            det = r["deterministic"]
            sto = r.get("stochastic")
            ok = det["pass"] and (sto is None or sto["pass"])
            lines.append(
                f"| {name} | {det['loss_rel_diff']:.1e} | "
                f"{det['grad_rel_diff']:.1e} | "
                f"{det['grad_rel_diff_per_variable']:.1e} | "
                + (f"{sto['loss_rel_diff']:.1e} | "
                   f"{sto['grad_rel_diff']:.1e} | "
                   f"{sto['grad_rel_diff_per_variable']:.1e} | "
                   if sto else "n/a | n/a | n/a | ")
                + ("PASS" if ok else "FAIL") + " |"
            )
        notes = [f"`{n}`: {r['note']}" for n, r in parity.items()
                 if "note" in r]
        eps = [r["stochastic"].get("max_abs_eps") for r in
               parity.values() if "stochastic" in r]
        if eps and eps[0] is not None:
            notes.append(f"largest |eps| in the stochastic draw: "
                         f"{eps[0]:.2f} (our layers clamp at 5)")
        lines += [""] + [f"- {n}" for n in notes] + [""]
    return lines


def _speed_section(speed_by_shape, shapes, flags):
    lines = [
        "## Speed (ms per training step)",
        "",
        f"{flags['rounds']} interleaved rounds of {flags['steps']} "
        f"steps after {flags['warmup_steps']} warm-up steps, batch "
        f"{flags['batch_size']}, timing `{flags['timing']}`. Ratios are "
        f"to `ae` (the plain autoencoder, the speed floor): of the mins, "
        f"of the medians, and per round. Wall-clock ms unless marked "
        f"CPU: process CPU time (all threads) per step, which other "
        f"jobs on a shared machine disturb much less than wall time. "
        f"`step ops`: ops in the traced training step before grappler "
        f"(without Const/Identity/NoOp/Placeholder), a noise-free "
        f"measure of fixed per-step work.",
        "",
    ]
    nan = float("nan")
    for shape, res in speed_by_shape.items():
        cfg = shapes[shape]
        lines += [
            f"### {shape} ({'x'.join(map(str, cfg['input_shape']))}, "
            f"z_dim {cfg['z_dim']})",
            "",
            "| variant | min | median | / ae (min) | / ae (median) | "
            "per-round / ae | CPU min | CPU / ae (min) | "
            "CPU / ae (median) | step ops |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        ]
        for name, e in res.items():
            per = ", ".join(f"{r:.2f}" for r in e.get("ratios", []))
            c = e.get("cpu", {})
            lines.append(
                f"| {name} | {e['min']:.2f} | {e['median']:.2f} | "
                f"{e.get('ratio_to_ae_min', nan):.3f} | "
                f"{e.get('ratio_to_ae_median', nan):.3f} | "
                f"{per} | {c.get('min', nan):.2f} | "
                f"{c.get('ratio_to_ae_min', nan):.3f} | "
                f"{c.get('ratio_to_ae_median', nan):.3f} | "
                f"{e.get('step_graph_ops', {}).get('compute', '')} |"
            )
        lines.append("")
    return lines


def plot_report(report, path):
    """Bar chart of ms/step (min, with the median as a marker) per shape.

    Returns the path written, or `None` when matplotlib is missing.
    """
    return write_png(path, functools.partial(_speed_chart, report), dpi=110)


def _speed_chart(report, plt):
    speed = report["speed"]
    fig, axes = plt.subplots(1, len(speed), figsize=(6 * len(speed), 4.2),
                             squeeze=False)
    for ax, (shape, res) in zip(axes[0], speed.items()):
        names = list(res)
        mins = [res[n]["min"] for n in names]
        meds = [res[n]["median"] for n in names]
        colors = ["0.6" if n in ("ae", "reference") else "C0" for n in names]
        bars = ax.bar(range(len(names)), mins, color=colors, label="min")
        ax.scatter(range(len(names)), meds, color="C3", zorder=3,
                   label="median")
        for bar, n in zip(bars, names):
            ratio = res[n].get("ratio_to_ae_min")
            if ratio is not None:
                ax.annotate(f"{ratio:.2f}x", (bar.get_x() + bar.get_width()
                                              / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8,
                            xytext=(0, 2), textcoords="offset points")
        if "ae" in res:
            ax.axhline(res["ae"]["min"] * TARGET_RATIO_TO_AE, color="C2",
                       linestyle="--", linewidth=1,
                       label=f"{TARGET_RATIO_TO_AE}x ae (min)")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_ylabel("ms / training step")
        cfg = report["shapes"][shape]
        ax.set_title(f"{shape} {'x'.join(map(str, cfg['input_shape']))}, "
                     f"batch {report['meta']['flags']['batch_size']}")
        ax.set_ylim(0, max(mins + meds) * 1.25)
        ax.legend(fontsize=8, loc="upper center", ncol=3)
    return fig
