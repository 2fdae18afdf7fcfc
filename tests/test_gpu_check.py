"""``benchmarks/gpu_check.sh`` and its Python pieces, tried on the CPU (issue 14).

The GPU run itself needs CuPy and a GPU; everything else in it runs here: the NumPy against
array-api-strict comparison of the first training steps (``compare_backends.py``), the
gathering of the steps' outputs into one results file (``gpu_results.py``), and, marked slow,
the whole script in its ``--device cpu`` dry mode. Nothing here asserts a time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import HAS_STRICT, needs_mnist

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
STEPS_CPU = ["env", "compare", "bench", "epoch", "tests"]


def load(name: str):
    """Import ``benchmarks/<name>.py`` (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


compare_backends = load("compare_backends")
gpu_results = load("gpu_results")


def run_rows(values):
    rows = [dict.fromkeys(compare_backends.METRICS, v) for v in values]
    return {"rows": rows, "weights": {"generator.0.weight": np.zeros(2)}}


def test_diffs_flag_a_difference_in_the_first_steps():
    a = run_rows([1.0, 1.0, 1.0, 1.0])
    ok = compare_backends.diffs(a, run_rows([1.0, 1.0 + 5e-6, 1.0, 1.5]), exact_steps=3)
    bad = compare_backends.diffs(a, run_rows([1.0, 1.01, 1.0, 1.0]), exact_steps=3)
    assert ok["first_steps_within_tolerance"] and ok["max_abs"] == pytest.approx(0.5)
    assert not bad["first_steps_within_tolerance"]
    assert bad["d_loss"]["first_steps_max_abs"] == pytest.approx(0.01)


@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
def test_compare_numpy_against_array_api_strict():
    args = SimpleNamespace(
        steps=3, batch=8, seed=0, preset="default", exact_steps=2, drift_factor=3.0, data_dir=None
    )
    res = compare_backends.compare("cpu", "strict", args)
    assert res["passed"] and res["first_steps_passed"] and res["drift_passed"]
    assert [r["step"] for r in res["rows"]] == [1, 2, 3]
    assert set(res["rows"][0]) == {"step", "cpu", "strict", "float64"}
    # the float64 reference sees the same noise: at step 1 it differs by float32 rounding only
    first = res["rows"][0]
    assert abs(first["cpu"]["d_loss"] - first["float64"]["d_loss"]) < 1e-5


def write_work(work: Path) -> None:
    """The files a gpu_check run leaves behind: two steps passed, the tests step failed."""
    steps = [
        {"name": "bench", "status": "pass", "rc": 0, "seconds": 3.0, "timeout_s": 10},
        {"name": "tests", "status": "fail", "rc": 1, "seconds": 4.0, "timeout_s": 10},
    ]
    (work / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    (work / "bench").mkdir()
    rows = [
        {"preset": "classic", "batch": 64, "ratio_to_torch": 0.8},
        {"preset": "classic", "batch": 256, "ratio_to_torch": 1.3},
        {"preset": "default", "batch": 64},  # minigan alone: no PyTorch twin for its layers
    ]
    (work / "bench" / "step_gpu.json").write_text(json.dumps({"rows": rows}))
    (work / "epoch").mkdir()
    epoch = {"train_mnist": {"seconds_epoch": 4.5}}
    (work / "epoch" / "epoch_gpu.json").write_text(json.dumps(epoch))
    (work / "compare.json").write_text(json.dumps({"passed": True}))
    (work / "env.json").write_text(json.dumps({"cupy_gpu": True}))
    (work / "junit.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.test_x" name="test_a[cupy]"><failure message="x"/></testcase>'
        '<testcase classname="tests.test_x" name="test_b[cupy]"/>'
        '<testcase classname="tests.test_x" name="test_c[cupy]"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )


def test_collect_gathers_steps_targets_and_failures(tmp_path):
    write_work(tmp_path)
    res = gpu_results.collect(tmp_path, "gpu", budget=480, seconds=7)
    assert not res["all_steps_passed"]
    assert [s["status"] for s in res["steps"]] == ["pass", "fail"]
    assert res["tests"]["passed"] == 1 and res["tests"]["skipped"] == 1
    assert res["tests"]["failed_tests"] == ["tests.test_x::test_a[cupy]"]
    got = {t["target"]: (t["value"], t["met"]) for t in res["targets"]}
    assert got["minigan / PyTorch CUDA eager, MLP, batch 64"] == (0.8, True)
    assert got["one MNIST epoch of train_mnist, seconds"] == (4.5, False)
    assert got["CuPy parametrization of the tests: failures + errors"] == (1, False)
    (tmp_path / "env.json").unlink()  # no env: no proof that a GPU ran the CuPy tests
    res = gpu_results.collect(tmp_path, "gpu", budget=480, seconds=7)
    assert res["env"] is None  # the env step left nothing: its part is null, not an error
    got = {t["target"]: t["value"] for t in res["targets"]}
    assert got["CuPy parametrization of the tests: failures + errors"] is None


def test_collect_of_an_empty_run_says_nothing_passed(tmp_path):
    res = gpu_results.collect(tmp_path, "cpu", budget=10, seconds=0)
    assert not res["all_steps_passed"] and res["steps"] == []
    assert all(t["met"] is None for t in res["targets"])


@pytest.mark.slow
@needs_mnist
@pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
def test_gpu_check_dry_run_on_cpu(tmp_path):
    pytest.importorskip("threadpoolctl", reason="threadpoolctl is not installed")
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), "--device", "cpu", "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = (tmp_path / "out" / "gpu_check_cpu.log").read_text()
    assert result.returncode == 0, log[-3000:]
    res = json.loads((tmp_path / "out" / "gpu_check_cpu.json").read_text())
    names = [s["name"] for s in res["steps"] if s["name"] != "install"]
    assert names == STEPS_CPU
    assert all(s["status"] == "pass" for s in res["steps"]), res["steps"]
    assert res["compare"]["a"] == "cpu" and res["compare"]["b"] == "strict"
    assert res["compare"]["passed"] and len(res["compare"]["rows"]) == 20
    assert res["bench_step"]["rows"][0]["batch"] == 64 and res["bench_step"]["blas_kernel"]
    assert res["epoch"]["train_mnist"]["steps"] == 10  # --limit 640, batch 64
    assert res["tests"]["failures"] == 0 and res["tests"]["passed"] > 0
    assert res["env"]["numpy"]["version"]
    assert {t["target"] for t in res["targets"]} == {t[0] for t in gpu_results.TARGETS}
