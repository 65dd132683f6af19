"""Smoke tests of `benchmarks/kl_strategies.py` (and its two sibling scripts).

The script runs in-process with tiny settings (tiny shapes, 1 round, 2
steps). The tests assert the report's schema, that every parity check
passes, that a broken strategy makes it fail with a non-zero status, and
that the output files exist. Timings are never asserted: they depend on the
machine and its load.
"""

import ast
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `benchmarks` is a folder of the repository
    sys.path.insert(0, ROOT)

from benchmarks import encoder_params  # noqa: E402
from benchmarks import inference_switch  # noqa: E402
from benchmarks import kl_strategies  # noqa: E402
from benchmarks import kl_variants  # noqa: E402

TINY = [
    "--shapes", "tiny-digits,tiny-faces",
    "--rounds", "1", "--steps", "2", "--warmup-steps", "1",
    "--batch-size", "4", "--switch-repeats", "1",
    "--params-input-shape", "16x16x3", "--params-z-dims", "4",
    "--params-intermediate-dims", "none,2", "--params-filters", "4,8",
    "--beta", "0.5",
]


def run(argv, out):
    """`kl_strategies.main` into `out`; returns `(status, JSON report)`."""
    status = kl_strategies.main(argv + ["--out", str(out)])
    return status, json.loads((out / "kl_strategies.json").read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kl_strategies")
    return run(TINY, out) + (out,)


@pytest.mark.tf_only  # the KL-variant parity runs in a tf.function
def test_tiny_run_passes_parity_and_writes_outputs(tiny_run):
    status, report, out = tiny_run
    assert status == 0
    assert report["parity_pass"] is True
    assert (out / "kl_strategies.md").stat().st_size > 0
    md = (out / "kl_strategies.md").read_text(encoding="utf-8")
    for heading in ("## Parity", "## Speed", "## Switching sampling",
                    "## Encoder parameters", "## Targets"):
        assert heading in md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (out / "kl_strategies.png").exists()
    else:
        png = (out / "kl_strategies.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    # No temporary files left behind by the atomic writers.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        n for n in ("kl_strategies.json", "kl_strategies.md",
                    "kl_strategies.png") if (out / n).exists()
    )


@pytest.mark.tf_only  # the KL-variant parity runs in a tf.function
def test_report_schema(tiny_run):
    _, report, _ = tiny_run
    assert set(report) >= {"meta", "shapes", "parity", "speed", "switch",
                           "encoder_params", "targets", "parity_pass"}
    meta = report["meta"]
    assert set(meta) >= {"date", "versions", "machine", "cpu_count", "flags"}
    assert set(meta["versions"]) >= {"tensorflow", "keras",
                                     "keras_vae_layers"}
    assert meta["flags"]["rounds"] == 1 and meta["flags"]["steps"] == 2
    shapes = ["tiny-digits", "tiny-faces"]
    assert list(report["shapes"]) == shapes

    others = [v for v in kl_variants.DEFAULT_VARIANTS if v != "train_step"]
    for shape in shapes:
        parity = report["parity"][shape]
        assert sorted(parity) == sorted(others)
        for name, entry in parity.items():
            modes = ["deterministic"] + ([] if name == "ae"
                                         else ["stochastic"])
            for mode in modes:
                check = entry[mode]
                assert set(check) >= {"loss_rel_diff", "grad_rel_diff",
                                      "pass"}
                assert check["pass"] is True, (shape, name, mode, check)
                assert check["loss_rel_diff"] <= 1e-5
                assert check["grad_rel_diff"] <= 1e-5
        # The stochastic draw changed the loss: sampling really was on.
        kl = parity["kl_layer"]
        assert kl["stochastic"]["loss"] != kl["deterministic"]["loss"]

        speed = report["speed"][shape]
        assert sorted(speed) == sorted(kl_variants.DEFAULT_VARIANTS)
        for name, entry in speed.items():
            assert set(entry) >= {"ms_per_step", "min", "median",
                                  "ratio_to_ae_min", "ratio_to_ae_median",
                                  "ratios", "cpu", "step_graph_ops"}
            assert len(entry["ms_per_step"]) == 1
            assert len(entry["ratios"]) == 1
            assert entry["min"] > 0
        assert speed["ae"]["ratio_to_ae_min"] == pytest.approx(1.0)

        switch = report["switch"][shape]
        assert set(switch["methods"]) == set(
            ("eps_factor_assign", "make_predict_function", "recompile"))
        for name, method in switch["methods"].items():
            assert set(method) >= {"switch_ms", "switch_plus_predict_ms",
                                   "retraces_per_switch", "honoured"}
            assert method["honoured"] is True, name
        # Counted, not timed: the variable switch never retraces, the two
        # Python-attribute refreshes retrace once per switch.
        assert switch["methods"]["eps_factor_assign"]["retraces_total"] == 0
        assert switch["methods"]["make_predict_function"][
            "retraces_per_switch"] == 1
        assert switch["methods"]["recompile"]["retraces_per_switch"] == 1
        assert switch["python_attribute_without_refresh_honoured"] is False

    rows = report["encoder_params"]["rows"]
    assert [(r["z_dim"], r["intermediate_dim"]) for r in rows] == [
        (4, None), (4, 2)]
    # 16x16 -> 4x4x8 = 128 features: heads 2 * (128 * 4 + 4) = 1032 params;
    # with Dense(2), no BN (the builder's default, as in the original VAE):
    # 128 * 2 + 2 + 2 * (2 * 4 + 4) = 282.
    assert rows[0]["encoder_params"] - rows[1]["encoder_params"] == 1032 - 282
    assert rows[1]["ratio_to_no_intermediate"] < 1.0


def parity_only(shape, variant):
    return ["--shapes", shape, "--parts", "parity", "--variants", variant,
            "--batch-size", "4"]


@pytest.mark.tf_only  # the KL-variant parity runs in a tf.function
def test_broken_strategy_fails_parity(tmp_path, monkeypatch):
    """A KL half with the wrong factor must FAIL and exit non-zero."""
    original = kl_variants.kl_logvar_part

    def wrong_logvar_part(y_true, logvar):
        return 2.0 * original(y_true, logvar)

    monkeypatch.setattr(kl_variants, "kl_logvar_part", wrong_logvar_part)
    status, report = run(parity_only("tiny-digits", "multi_output"),
                         tmp_path)
    assert status == 1
    assert report["parity_pass"] is False
    assert report["parity"]["tiny-digits"]["multi_output"]["stochastic"][
        "pass"] is False
    assert "FAIL" in (tmp_path / "kl_strategies.md").read_text()


@pytest.mark.tf_only  # the KL-variant parity runs in a tf.function
def test_opt_in_two_output_vae_passes_parity(tmp_path):
    status, report = run(parity_only("tiny-faces", "train_step_2out"),
                         tmp_path)
    assert status == 0
    parity = report["parity"]["tiny-faces"]
    # ae and train_step are always added.
    assert sorted(parity) == ["ae", "train_step_2out"]
    assert parity["train_step_2out"]["stochastic"]["pass"] is True


@pytest.mark.parametrize("argv", [
    ["--shapes", "nope"],
    ["--variants", "ae,unknown"],
    ["--parts", "speed,bogus"],
    ["--rounds", "0"],
    ["--beta", "nan"],
])
def test_bad_arguments_exit_with_status_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        kl_strategies.main(argv + ["--out", str(tmp_path)])
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_encoder_params_intermediate_batch_norm_opt_in(tmp_path, capsys):
    out = tmp_path / "params.json"
    argv = ["--input-shape", "16x16x3", "--z-dims", "4",
            "--intermediate-dims", "none,2", "--filters", "4,8",
            "--json", str(out)]
    assert encoder_params.main(argv) == 0
    default = json.loads(out.read_text())
    assert encoder_params.main(argv + ["--intermediate-batch-norm"]) == 0
    with_bn = json.loads(out.read_text())
    assert default["config"]["intermediate_batch_norm"] is False
    assert with_bn["config"]["intermediate_batch_norm"] is True
    assert "intermediate_batch_norm=True" in capsys.readouterr().out
    # BN on Dense(2) adds 4 * 2 weights (2 * 2 of them trainable); the
    # decoder does not depend on the switch.
    plain, slim = default["rows"]
    plain_bn, slim_bn = with_bn["rows"]
    assert plain_bn == plain
    assert slim_bn["encoder_params"] - slim["encoder_params"] == 8
    assert (slim_bn["encoder_trainable_params"]
            - slim["encoder_trainable_params"]) == 4
    assert slim_bn["decoder_params"] == slim["decoder_params"]


def test_inference_switch_runs_on_its_own(capsys):
    # Its shape presets come from benchmarks._common, not kl_strategies.
    assert inference_switch.main(["--shape", "tiny-digits", "--batch-size",
                                  "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for method in inference_switch.METHODS:
        assert f"| tiny-digits | `{method}` |" in out


def _benchmark_imports():
    """`{module: {benchmarks modules it imports}}` from the source."""
    folder = os.path.join(ROOT, "benchmarks")
    graph = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "benchmarks":
                    targets.update(a.name for a in node.names)
                elif node.module.startswith("benchmarks."):
                    targets.add(node.module.split(".")[1])
        graph[name[:-3]] = targets
    return graph


def test_benchmark_modules_import_each_other_without_a_cycle():
    graph = _benchmark_imports()
    assert "_common" in graph["kl_strategies"] | graph["inference_switch"]
    assert "kl_strategies" not in graph["inference_switch"]
    done, stack = set(), []

    def visit(module):
        assert module not in stack, f"import cycle: {stack + [module]}"
        if module in done:
            return
        stack.append(module)
        for target in graph.get(module, ()):
            visit(target)
        stack.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert done == set(graph)
