"""The README's promises: the usage example runs, the quick start is two
commands that exist."""

import os
import re

import keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_usage_example_runs_and_logs_kl(monkeypatch):
    text = read_readme()
    block = text.split("<!-- readme-example:start -->")[1].split(
        "<!-- readme-example:end -->")[0]
    code = re.search(r"```python\n(.*?)```", block, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    histories = []
    original_fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        kwargs["verbose"] = 0
        histories.append(original_fit(self, *args, **kwargs))
        return histories[-1]

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    exec(compile(code, "README-example", "exec"), {})
    history = histories[0].history
    assert len(history["kl_loss"]) == 2
    assert history["loss"][1] < history["loss"][0]


def test_quick_start_is_exactly_two_existing_commands():
    text = read_readme()
    section = text.split("## Quick start")[1].split("\n## ")[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines()
                if line.split("#")[0].strip()]
    assert commands == ["./scripts/demo", "./scripts/test"]
    for command in commands:
        path = os.path.join(ROOT, command)
        assert os.path.isfile(path) and os.access(path, os.X_OK)
