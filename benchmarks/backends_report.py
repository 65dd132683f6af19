"""The report of `backends.py`: its targets, findings and markdown tables.
"""

from benchmarks._common import markdown_header
from benchmarks._common import targets_table

TARGET_VAE_OVER_AE = 1.05
"""`VAEModel` at most this many times the plain AE's ms/step (of the mins),
on every backend."""

_LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "torch"}


def _label(key):
    """`"tensorflow_xla"` -> `"TensorFlow (jit_compile=True)"`; cross-backend
    keys (`"jax/tensorflow_xla"`) likewise, per side."""
    if "/" in key:
        return "/".join(_label(k) for k in key.split("/"))
    backend, _, setting = key.partition("_")
    label = _LABELS.get(backend, backend)
    if setting:
        label += " (jit_compile=" + ("True" if setting == "xla" else "False") \
            + ")"
    return label


def evaluate_targets(report):
    """`{name: {"met", "detail"}}`: `VAEModel / AE <= 1.05x` (of the mins,
    wall clock) per backend and `jit_compile` setting."""
    targets = {}
    for key, r in report["speed"]["vae_over_ae"].items():
        targets[f"VAEModel <= {TARGET_VAE_OVER_AE}x AE: {_label(key)}"] = {
            "met": r["min"] <= TARGET_VAE_OVER_AE,
            "detail": f"{r['min']:.3f}x of the mins; median of the round "
                      f"ratios {r['median_of_round_ratios']:.3f}x; CPU "
                      f"{r['cpu']['min']:.3f}x / "
                      f"{r['cpu']['median_of_round_ratios']:.3f}x",
        }
    return targets


def _x(value):
    return f"{value:.3f}"


def _ms(value):
    return f"{value:.2f}"


def findings(report):
    """A few sentences stating what the numbers say (no judgement beyond
    the targets: the analysis belongs to whoever reads them)."""
    speed = report["speed"]
    meta = report["meta"]
    lines = []
    ratios = speed["vae_over_ae"]
    if ratios:
        held = [k for k, r in ratios.items() if r["min"] <= TARGET_VAE_OVER_AE]
        missed = [k for k in ratios if k not in held]
        parts = []
        if held:
            parts.append("held on " + ", ".join(
                f"{_label(k)} ({ratios[k]['min']:.3f}x)" for k in held))
        if missed:
            parts.append("MISSED on " + ", ".join(
                f"{_label(k)} ({ratios[k]['min']:.3f}x)" for k in missed))
        lines.append(f"- `VAEModel <= {TARGET_VAE_OVER_AE}x AE` (of the "
                     "mins): " + "; ".join(parts) + ". Median of the "
                     "per-round ratios: " + ", ".join(
                         f"{_label(k)} {r['median_of_round_ratios']:.3f}x"
                         for k, r in ratios.items()) + ".")
    for key, r in speed["cross_backend"].items():
        lines.append(
            f"- {_label(key)} ms/step (below 1: the first is faster): "
            f"VAEModel {r['vae']['min']:.2f}x of the mins "
            f"({r['vae']['median_of_round_ratios']:.2f}x median of round "
            f"ratios), AE {r['ae']['min']:.2f}x "
            f"({r['ae']['median_of_round_ratios']:.2f}x).")
    for model, r in speed["tensorflow_jit_on_over_off"].items():
        name = "VAEModel" if model == "vae" else "AE"
        lines.append(f"- TensorFlow `jit_compile=True` / `False`, {name}: "
                     f"{r['min']:.2f}x of the mins "
                     f"({r['median_of_round_ratios']:.2f}x median of round "
                     "ratios).")
    imports = report["imports"]
    if imports:
        lines.append("- `import keras_vae_layers` (median, fresh "
                     "interpreter): " + ", ".join(
                         f"{_label(b)} {e['import_s']['median']:.2f} s "
                         f"(TensorFlow imported: "
                         f"{'yes' if e['tensorflow_imported'] else 'no'})"
                         for b, e in imports.items()) + ".")
    after = report["frameworks_after_training"]
    if after:
        lines.append("- Backend packages imported in each child after "
                     "training: " + "; ".join(
                         f"{_label(b)}: {', '.join(names)}"
                         for b, names in after.items()) + ".")
    start, end = meta.get("loadavg_start"), meta.get("loadavg_end")
    if start and end:
        lines.append(
            f"- Load average (1 min) {start[0]} at the start, {end[0]} at "
            f"the end, on {meta['cpu_count']} CPUs: anything above about 1 "
            "means other jobs ran alongside (wall-clock figures carry their "
            "noise; the process-CPU ones much less; interleaving protects "
            "the per-round ratios from slow drifts, not from bursts).")
    for backend, why in report["skipped"].items():
        lines.append(f"- {_label(backend)} skipped: {why}")
    for backend, why in report["failed"].items():
        # The last line of a child's traceback names the error.
        lines.append(f"- {backend} FAILED: {why.strip().splitlines()[-1]}")
    return lines


def _imports_section(imports):
    lines = ["## Import time", "",
             "`import keras_vae_layers` in a fresh interpreter per sample "
             "(Keras and the backend first, as a user's import does), "
             "samples interleaved across backends; seconds.", "",
             "| backend | min | median | `import keras` (median) | package "
             "after Keras (median) | whole interpreter (median) | "
             "TensorFlow imported | backend packages loaded (by `import "
             "keras` alone) | samples |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|"]
    for backend, e in imports.items():
        lines.append(
            f"| {_label(backend)} | {e['import_s']['min']:.2f} | "
            f"{e['import_s']['median']:.2f} | {e['keras_s']['median']:.2f} | "
            f"{e['package_s']['median']:.2f} | "
            f"{e['process_s']['median']:.2f} | "
            f"{'yes' if e['tensorflow_imported'] else 'no'} | "
            f"{', '.join(e['frameworks_loaded'])} "
            f"({', '.join(e['frameworks_by_keras'])}) | "
            f"{len(e['import_s']['samples'])} |")
    return lines + [""]


def _steps_section(per_backend, config):
    lines = ["## Training step", "",
             f"ms per step, {config['rounds']} interleaved rounds of "
             f"{config['steps']} steps (each after one untimed step) over "
             "every backend and variant, after "
             f"{config['warmup_steps']} warm-up steps. CPU: process CPU time "
             "of the child (all threads) per step.", "",
             "| backend | variant | model | jit_compile | params | min | "
             "median | CPU min | CPU median | per round |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for backend, variants in per_backend.items():
        for name, v in variants.items():
            lines.append(
                f"| {_label(backend)} | `{name}` | {v['model']} | "
                f"{v['jit_compile']} | {v['params']:,} | "
                f"{_ms(v['wall_ms']['min'])} | "
                f"{_ms(v['wall_ms']['median'])} | "
                f"{_ms(v['cpu_ms']['min'])} | {_ms(v['cpu_ms']['median'])} "
                f"| {', '.join(f'{t:.1f}' for t in v['wall_ms']['per_round'])}"
                " |")
    return lines + [""]


def _ratio_row(label, r):
    return (f"| {label} | {_x(r['min'])} | "
            f"{_x(r['median_of_round_ratios'])} | {_x(r['cpu']['min'])} | "
            f"{_x(r['cpu']['median_of_round_ratios'])} | "
            f"{', '.join(f'{v:.2f}' for v in r['per_round'])} |")


_RATIO_HEADER = ("| {what} | min / min | median of round ratios | CPU min / "
                 "min | CPU median of round ratios | per round |",
                 "|---|---:|---:|---:|---:|---|")


def _vae_over_ae_section(ratios):
    lines = ["## VAEModel / AE", "",
             f"Per backend; target <= {TARGET_VAE_OVER_AE}x of the mins "
             "(wall clock).", "",
             _RATIO_HEADER[0].format(what="backend"), _RATIO_HEADER[1]]
    lines += [_ratio_row(_label(k), r) for k, r in ratios.items()]
    return lines + [""]


def _cross_section(cross):
    lines = ["## Across backends", "",
             "ms/step of one backend over TensorFlow's, same model, round by "
             "round (below 1: faster than TensorFlow).", "",
             _RATIO_HEADER[0].format(what="ratio"), _RATIO_HEADER[1]]
    for key, models in cross.items():
        for model, r in models.items():
            name = "VAEModel" if model == "vae" else "AE"
            lines.append(_ratio_row(f"{_label(key)}, {name}", r))
    return lines + [""]


def _jit_section(tf_jit):
    lines = ["## TensorFlow `jit_compile`", "",
             "`jit_compile=True` (XLA) over `False`, same model.", "",
             _RATIO_HEADER[0].format(what="model"), _RATIO_HEADER[1]]
    for model, r in tf_jit.items():
        name = "VAEModel" if model == "vae" else "AE"
        lines.append(_ratio_row(f"{name} (`{r['on']}` / `{r['off']}`)", r))
    return lines + [""]


def markdown_report(report):
    """The report as markdown: environment, findings, one section per
    measurement, targets."""
    meta, config = report["meta"], report["config"]
    preset = config["preset"]
    devices = "; ".join(f"{_label(b)} {', '.join(d)}"
                        for b, d in meta["devices"].items())
    lines = markdown_header(
        "Backends: VAEModel against a plain autoencoder on TensorFlow, JAX "
        "and PyTorch", meta,
        f"{meta['machine']}, {meta['cpu_count']} CPUs"
        + (f", devices: {devices}" if devices else ""))
    lines += [
        f"- load average (1, 5, 15 min) at start / end: "
        f"{meta['loadavg_start']} / {meta.get('loadavg_end')}",
        f"- settings: preset `{config['shape']}` "
        f"({'x'.join(map(str, preset['input_shape']))}, encoder filters "
        f"{preset['encoder_filters']}, decoder filters "
        f"{preset['decoder_filters']}, z_dim {config['z_dim']}, batch norm "
        f"{preset['batch_norm']}), batch {config['batch_size']}, "
        f"{config['rounds']} rounds x {config['steps']} steps, "
        f"{config['warmup_steps']} warm-up steps; backends "
        f"{', '.join(report['backends'])}",
        "", "## Findings", "", *findings(report), ""]
    speed = report["speed"]
    if report["imports"]:
        lines += _imports_section(report["imports"])
    if speed["per_backend"]:
        lines += _steps_section(speed["per_backend"], config)
        lines += _vae_over_ae_section(speed["vae_over_ae"])
    if speed["cross_backend"]:
        lines += _cross_section(speed["cross_backend"])
    if speed["tensorflow_jit_on_over_off"]:
        lines += _jit_section(speed["tensorflow_jit_on_over_off"])
    if report["targets"]:
        lines += targets_table(report["targets"])
    return "\n".join(lines)
