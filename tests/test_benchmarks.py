"""The benchmark scripts run, so the numbers the README and the model card quote stay reproducible."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_step_times_each_phase_of_a_step_on_the_bundled_model():
    row = _load("train_step").measure("fp32", steps=2, batch_size=2)
    assert row["mode"] == "fp32"
    for phase in ("forward_ms", "backward_ms", "optimizer_ms"):
        assert row[phase] > 0
    assert abs(row["step_ms"] - (row["forward_ms"] + row["backward_ms"] + row["optimizer_ms"])) < 0.2
