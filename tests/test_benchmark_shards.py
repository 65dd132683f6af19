"""Smoke test of `benchmarks/shards.py`: its `--quick` run in-process.

Checks the report's structure and the facts that do not depend on the
machine (image counts, no TensorFlow in the reading-only child, files
written, work folder removed); never the timings.
"""

import importlib
import importlib.util
import json
import os
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    if BENCH_DIR not in sys.path:
        sys.path.insert(0, BENCH_DIR)
    bench = importlib.import_module("shards")
    out = tmp_path_factory.mktemp("shards_bench")
    work = out / "work"
    status = bench.main(["--quick", "--out", str(out), "--work-dir",
                         str(work), "--rounds", "1", "--scaling-sizes",
                         "120,240"])
    with open(out / "shards.json", encoding="utf-8") as f:
        report = json.load(f)
    return bench, status, report, out, work


def test_quick_run_writes_both_reports_and_cleans_up(quick_run):
    _, status, report, out, work = quick_run
    assert status == 0
    assert sorted(p.name for p in out.iterdir()) == ["shards.json",
                                                    "shards.md"]
    assert not work.exists()
    md = (out / "shards.md").read_text(encoding="utf-8")
    for heading in ("## Conversion throughput",
                    "## Memory and time against the number of images",
                    "## Record format", "## Reading against training",
                    "## Checksums on open", "## Reading without TensorFlow",
                    "## Targets"):
        assert heading in md


def test_report_schema_and_machine_independent_facts(quick_run):
    bench, _, report, _, _ = quick_run
    assert set(report) == {"meta", "conversion", "scaling", "format",
                           "reads", "verify", "no_tensorflow", "targets"}
    meta = report["meta"]
    assert set(meta) >= {"date", "versions", "machine", "cpu_count", "flags",
                         "loadavg_start", "loadavg_end"}
    # TensorFlow's version is recorded when it is the backend.
    tensorflow = {"tensorflow"} if keras.backend.backend() == "tensorflow" \
        else set()
    assert set(meta["versions"]) >= {"keras", "numpy", "pillow",
                                     "keras_vae_layers"} | tensorflow
    assert meta["flags"]["quick"] is True and meta["flags"]["rounds"] == 1
    conversion = report["conversion"]
    assert sorted(conversion["sizes"]) == ["16", "24"]
    for run in conversion["sizes"].values():
        assert run["count"] == conversion["images"] == 60
        assert run["images_per_s"] > 0 and run["peak_rss_mb"] > 0
        assert run["tensorflow_imported"] is False
    rows = report["scaling"]["rows"]
    assert [r["images"] for r in rows] == [120, 240]
    for row in rows:
        for kind in ("shards", "load_image_folder"):
            assert row[kind]["count"] == row["images"]
            assert row[kind]["peak_rss_mb"] >= row[kind]["start_rss_mb"] > 0
    assert set(report["format"]["formats"]) == {
        "npy", "tfrecord_raw", "tfrecord_example"}
    assert report["format"]["formats"]["npy"]["needs_tensorflow_to_read"] is (
        False)
    reads = report["reads"]
    assert set(reads["images_per_s"]) == {"load_image_shards",
                                          "ImageBatches", "step"}
    for name, entry in reads["images_per_s"].items():
        assert len(entry["per_round"]) == 1 and entry["min"] > 0
        assert ("ratio_to_step_median" in entry) is (name != "step")
    assert report["verify"]["images"] == 240
    assert report["verify"]["verify_seconds"] >= 0
    no_tf = report["no_tensorflow"]
    if importlib.util.find_spec("jax") is None:  # KVL_BACKENDS=tensorflow
        assert "jax is not installed" in no_tf["skipped"]
    else:
        assert no_tf["backend"] == "jax"
        assert no_tf["tensorflow_imported"] is False
    assert set(report["targets"]) == {"reads_at_least_5x_step",
                                      "shards_rss_flat", "shards_time_linear"}
    assert all(isinstance(t["met"], bool) for t in report["targets"].values())


def test_unknown_part_is_an_error(quick_run):
    bench = quick_run[0]
    with pytest.raises(SystemExit):
        bench.parse_args(["--parts", "conversion,nonsense"])
    args = bench.parse_args(["--quick", "--parts", "reads"])
    assert args.parts == ["scaling", "reads"]  # reads need the shards
