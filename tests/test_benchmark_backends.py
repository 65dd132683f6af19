"""Smoke tests of `benchmarks/backends.py`: its `--quick` run.

The parent runs in-process; it starts one child process per backend
(TensorFlow, plus JAX and torch where installed), whatever backend this
test process runs on. The tests check the report's structure, that every
requested backend has both models with positive finite timings, that the
ratios follow from the reported per-round numbers, the import-time facts
that do not depend on the machine (TensorFlow not imported on JAX and
torch), the files written, and the errors for bad input; never the
timings themselves.
"""

import importlib.util
import json
import math
import os
import statistics
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `benchmarks` is a folder of the repository
    sys.path.insert(0, ROOT)

from benchmarks import backends  # noqa: E402
from benchmarks import backends_report  # noqa: E402

REQUESTED = ["tensorflow"] + [name for name in ("jax", "torch")
                              if importlib.util.find_spec(name) is not None]
ROUNDS = 2  # --quick


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("backends_bench")
    status = backends.main(["--quick", "--backends", ",".join(REQUESTED),
                            "--out", str(out)])
    report = json.loads((out / "backends.json").read_text(encoding="utf-8"))
    return status, report, out


def positive_finite(values):
    return all(math.isfinite(v) and v > 0 for v in values)


def check_ratio(r, a, b):
    """`r` is `backends.ratio(a, b)` with its CPU twin: recomputed from
    the per-round lists of the two variants."""
    for clock, sub in (("wall_ms", r), ("cpu_ms", r["cpu"])):
        x, y = a[clock]["per_round"], b[clock]["per_round"]
        assert sub["min"] == pytest.approx(min(x) / min(y))
        assert sub["median"] == pytest.approx(
            statistics.median(x) / statistics.median(y))
        per_round = [p / q for p, q in zip(x, y)]
        assert sub["per_round"] == pytest.approx(per_round)
        assert sub["median_of_round_ratios"] == pytest.approx(
            statistics.median(per_round))


def test_quick_run_writes_the_report(quick_run):
    status, report, out = quick_run
    assert status == 0
    assert report["failed"] == {} and report["skipped"] == {}
    # Written atomically: no temporary files left behind.
    assert sorted(p.name for p in out.iterdir()) == ["backends.json",
                                                     "backends.md"]
    md = (out / "backends.md").read_text(encoding="utf-8")
    for heading in ("## Findings", "## Import time", "## Training step",
                    "## VAEModel / AE", "## TensorFlow `jit_compile`",
                    "## Targets"):
        assert heading in md
    assert ("## Across backends" in md) is (len(REQUESTED) > 1)


def test_meta_records_versions_machine_and_load(quick_run):
    meta = quick_run[1]["meta"]
    assert set(meta) >= {"date", "versions", "machine", "platform",
                         "cpu_count", "devices", "flags", "loadavg_start",
                         "loadavg_end", "child_env"}
    expected = {"python", "keras", "numpy", "keras_vae_layers", "tensorflow"}
    expected |= {"jax", "jaxlib"} if "jax" in REQUESTED else set()
    expected |= {"torch"} if "torch" in REQUESTED else set()
    assert set(meta["versions"]) == expected
    assert sorted(meta["devices"]) == sorted(REQUESTED)
    assert meta["flags"]["quick"] is True
    assert meta["flags"]["backends"] == REQUESTED
    assert meta["child_env"]["OMP_WAIT_POLICY"]


def tf_suffix(report):
    """TensorFlow's second setting of `jit_compile`: `_xla` (on) where
    "auto" resolved to off (no GPU), else `_noxla`."""
    auto = report["speed"]["per_backend"]["tensorflow"]["vae"]["jit_compile"]
    return "_noxla" if auto else "_xla"


def test_every_backend_has_both_models_with_positive_timings(quick_run):
    report = quick_run[1]
    per_backend = report["speed"]["per_backend"]
    assert sorted(per_backend) == sorted(REQUESTED)  # JSON sorts the keys
    suffix = tf_suffix(report)
    for backend, variants in per_backend.items():
        names = ["ae", "vae"] + (["ae" + suffix, "vae" + suffix]
                                 if backend == "tensorflow" else [])
        assert sorted(variants) == sorted(names)
        for name, v in variants.items():
            assert v["model"] == ("VAEModel" if name.startswith("vae")
                                  else "Functional")
            for clock in ("wall_ms", "cpu_ms"):
                values = v[clock]["per_round"]
                assert len(values) == ROUNDS and positive_finite(values)
                assert v[clock]["min"] == min(values)
                assert v[clock]["median"] == statistics.median(values)
            assert math.isfinite(v["last_loss"]) and v["last_loss"] > 0
        # The VAE has the logvar head on top of the AE's layers.
        assert variants["vae"]["params"] > variants["ae"]["params"]
    tf = per_backend["tensorflow"]
    for model in ("ae", "vae"):  # one with XLA, one without
        assert tf[model]["jit_compile"] is not tf[model + suffix][
            "jit_compile"]
    if "jax" in per_backend:  # "auto" resolves to jit on JAX, eager on torch
        assert per_backend["jax"]["vae"]["jit_compile"] is True
    if "torch" in per_backend:
        assert per_backend["torch"]["vae"]["jit_compile"] is False


def test_ratios_follow_from_the_reported_rounds(quick_run):
    report = quick_run[1]
    speed = report["speed"]
    per_backend = speed["per_backend"]
    suffixes = ["", tf_suffix(report)]
    expected = REQUESTED + ["tensorflow" + suffixes[1]]
    assert sorted(speed["vae_over_ae"]) == sorted(expected)
    for key, r in speed["vae_over_ae"].items():
        backend, _, setting = key.partition("_")
        suffix = "_" + setting if setting else ""
        check_ratio(r, per_backend[backend]["vae" + suffix],
                    per_backend[backend]["ae" + suffix])
    others = [b for b in REQUESTED if b != "tensorflow"]
    assert sorted(speed["cross_backend"]) == sorted(
        f"{o}/tensorflow{s}" for o in others for s in suffixes)
    for key, models in speed["cross_backend"].items():
        other, _, ref = key.partition("/")
        suffix = ref[len("tensorflow"):]
        assert sorted(models) == ["ae", "vae"]
        for model, r in models.items():
            check_ratio(r, per_backend[other][model],
                        per_backend["tensorflow"][model + suffix])
    jit = speed["tensorflow_jit_on_over_off"]
    assert sorted(jit) == ["ae", "vae"]
    for model, r in jit.items():
        pair = [model + suffixes[1], model]
        assert [r["on"], r["off"]] == (pair if suffixes[1] == "_xla"
                                       else pair[::-1])
        check_ratio(r, per_backend["tensorflow"][r["on"]],
                    per_backend["tensorflow"][r["off"]])
    targets = report["targets"]
    assert len(targets) == len(speed["vae_over_ae"])
    for key, r in speed["vae_over_ae"].items():
        target = targets[f"VAEModel <= 1.05x AE: "
                         f"{backends_report._label(key)}"]
        assert target["met"] is (r["min"] <= 1.05)


def test_import_times_and_no_tensorflow_off_the_tensorflow_backend(quick_run):
    imports = quick_run[1]["imports"]
    assert sorted(imports) == sorted(REQUESTED)
    for backend, entry in imports.items():
        assert entry["backend"] == backend
        for key in ("import_s", "keras_s", "package_s", "process_s"):
            assert len(entry[key]["samples"]) == 1  # --quick: one sample
            assert positive_finite(entry[key]["samples"])
        assert entry["import_s"]["min"] >= entry["keras_s"]["min"]
        assert entry["tensorflow_imported"] is (backend == "tensorflow")
        assert backend in entry["frameworks_loaded"]
    # Training on JAX or torch does not pull TensorFlow in either.
    after = quick_run[1]["frameworks_after_training"]
    assert sorted(after) == sorted(REQUESTED)
    for backend, names in after.items():
        assert backend in names
        assert ("tensorflow" in names) is (backend == "tensorflow")


def test_unknown_backend_is_an_error_naming_the_argument(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        backends.main(["--backends", "tensorflow,theano", "--out",
                       str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--backends" in err and "theano" in err
    assert "tensorflow" in err and "torch" in err  # what to choose from
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--shape", "nope"],
                                  ["--backends", ","]])
def test_bad_arguments_exit_with_status_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        backends.main(argv + ["--out", str(tmp_path)])
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_backend_that_cannot_be_imported_is_skipped(tmp_path, monkeypatch):
    """A broken `jax` (first on PYTHONPATH, so every child finds it) is
    reported as skipped with the reason; nothing is timed, nothing
    crashes."""
    fake = tmp_path / "fake"
    (fake / "jax").mkdir(parents=True)
    (fake / "jax" / "__init__.py").write_text(
        "raise ImportError('jax is broken here')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    out = tmp_path / "out"
    status = backends.main(["--quick", "--backends", "jax", "--out",
                            str(out)])
    assert status == 0
    report = json.loads((out / "backends.json").read_text(encoding="utf-8"))
    assert list(report["skipped"]) == ["jax"]
    assert "jax is broken here" in report["skipped"]["jax"]
    assert report["failed"] == {} and report["imports"] == {}
    assert report["frameworks_after_training"] == {}
    assert report["speed"]["per_backend"] == {}
    assert report["targets"] == {}
    md = (out / "backends.md").read_text(encoding="utf-8")
    assert "JAX skipped: ImportError: jax is broken here" in md
