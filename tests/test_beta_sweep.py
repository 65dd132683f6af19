"""Smoke test of `benchmarks/beta_sweep.py` with tiny settings.

Checks the report's structure (JSON schema, markdown sections, the PNG) and
the trend logic on hand-made summaries. Never timings or metric values of
the tiny run: they depend on the machine and on 1-epoch training.
"""

import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `benchmarks` is a folder of the repository
    sys.path.insert(0, ROOT)

from benchmarks import beta_sweep  # noqa: E402

# One beta and one extra run: two tiny trainings (tracing dominates). The
# trend needs three betas; it is tested on hand-made summaries below.
TINY = ["--betas", "4", "--seeds", "0", "--epochs", "1",
        "--n-train", "32", "--n-test", "60", "--n-ll", "4",
        "--ll-samples", "3", "--score-points", "6", "--size", "16",
        "--batch-size", "16", "--z-dim", "2", "--extras", "free_bits"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("beta_sweep")
    status = beta_sweep.main(TINY + ["--out", str(out)])
    return status, json.loads((out / "beta_sweep.json").read_text()), out


def test_tiny_run_writes_a_complete_report(tiny_run):
    status, report, out = tiny_run
    assert status == 0
    keys = [m[0] for m in beta_sweep.METRICS]
    assert len(report["runs"]) == 2          # beta 4, plain and free bits
    for run in report["runs"]:
        assert set(run["metrics"]) == set(keys)
        assert all(isinstance(v, float) for v in run["metrics"].values())
    assert list(report["summary"]) == ["4", "4 (free_bits)"]
    assert [r["variant"] for r in report["runs"]] == ["plain", "free_bits"]
    for entry in report["summary"].values():
        assert entry["seeds"] == 1
        for key in keys:
            assert set(entry[key]) == {"mean", "spread"}
            assert entry[key]["spread"] == 0.0
    assert report["trend"] == {}
    assert report["verdict"] == "Too few beta values for a trend (need 3)."
    meta = report["meta"]
    for field in ("date", "versions", "machine", "cpu_count", "flags",
                  "loadavg_start", "loadavg_end", "wall_seconds"):
        assert field in meta, field
    assert meta["flags"]["ll_samples"] == 3
    md = (out / "beta_sweep.md").read_text(encoding="utf-8")
    for heading in ("## Results", "## Trend", "## Notes"):
        assert heading in md
    assert "| 4 (free_bits) | 1 |" in md
    assert (out / "beta_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(out) if p.startswith(".")]


def _summary(values_by_beta):
    return {f"{b:g}": dict({"beta": b, "variant": "plain", "seeds": 2},
                           **{k: {"mean": v, "spread": 0.0}
                              for k, v in values.items()})
            for b, values in values_by_beta.items()}


def test_trend_and_verdict_name_what_breaks():
    keys = [m[0] for m in beta_sweep.METRICS]
    betas = [0.5, 1.0, 2.0, 4.0, 8.0]
    values = {b: {k: float(i) for k in keys} for i, b in enumerate(betas)}
    values[4.0]["mig"] = -1.0                 # one break in MIG's ordering
    for b in betas:
        values[b]["kl_loss"] = -values[b]["kl_loss"]
    trends = beta_sweep.trend(_summary(values))
    assert trends["reco_loss"]["reproduced"] is True
    assert trends["kl_loss"]["reproduced"] is True
    assert trends["mig"]["breaks"] == ["2 -> 4"]
    assert trends["mig"]["spearman"] == pytest.approx(0.4)
    assert trends["mig"]["reproduced"] is False
    text = beta_sweep.verdict(trends)
    assert "Reconstruction gets worse with beta: yes" in text
    assert "on 5 of 6 metrics" in text
    assert "Not reproduced: MIG (rho +0.40; breaks at 2 -> 4)" in text
    assert set(trends) == set(keys)
    md = beta_sweep.markdown_report({
        "meta": {"date": "d", "machine": "m", "cpu_count": 2,
                 "devices": ["CPU"], "loadavg_start": None,
                 "versions": {"keras": "3"},
                 "flags": {k: 1 for k in ("n_train", "size", "n_test",
                                          "n_ll", "ll_samples", "epochs",
                                          "batch_size", "z_dim", "seeds",
                                          "score_points")}},
        "summary": _summary(values), "trend": trends, "verdict": text})
    assert "| MIG | increases | +0.40 | no | 2 -> 4 |" in md
    assert "| reconstruction | increases | +1.00 | yes | - |" in md


def test_bad_flags_exit_with_usage_errors(capsys):
    with pytest.raises(SystemExit) as info:
        beta_sweep.parse_args(["--extras", "cyclical"])
    assert info.value.code == 2
    assert "unknown extras ['cyclical']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        beta_sweep.parse_args(["--n-ll", "50", "--n-test", "10"])
