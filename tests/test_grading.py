"""The coursework grader (minigan.grading): reference solutions pass, wrong ones are caught.

Each file in tests/fixtures/grading/wrong_*.py starts from the reference solution and breaks
one backward pass; the grader must fail exactly that exercise and name the broken tensor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minigan.grading import EXERCISES, grade_file

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "solutions" / "student_layers.py"
SKELETON = ROOT / "exercises" / "student_layers.py"
FIXTURES = ROOT / "tests" / "fixtures" / "grading"
ALL_KEYS = [e.key for e in EXERCISES]

# file -> (the exercise that must fail, the tensors it must name, the tensors it may also name)
WRONG = {
    "wrong_leaky_relu_no_slope.py": ("leaky_relu", {"input"}, set()),
    "wrong_sigmoid_uses_x.py": ("sigmoid", {"input"}, set()),
    "wrong_linear_no_bias_grad.py": ("linear", {"bias"}, set()),
    # x.T @ dout cannot be added into a (3, 4) weight gradient: a shape error in the
    # non-square cases, wrong values for the square layer.
    "wrong_linear_dw_transposed.py": ("linear", {"weight"}, {"error"}),
    "wrong_linear_overwrites_grads.py": ("linear", {"weight", "bias"}, set()),
    "wrong_bce_sign.py": ("bce_with_logits", {"input"}, set()),
    "wrong_bce_no_mean.py": ("bce_with_logits", {"input"}, set()),
    "wrong_d_loss_target_real.py": ("d_loss_grad_fake", {"fake"}, set()),
}


def test_reference_solutions_pass():
    report = grade_file(REFERENCE)
    assert report.total == len(EXERCISES) == 5
    assert report.score == 5, str(report)
    assert report.passed
    assert report.warnings == []
    for ex in report.exercises:
        assert ex.rows, ex.key
        assert all(r.passed for r in ex.rows), ex.format(verbose=True)
    assert str(report).endswith("Score: 5/5")


def test_every_wrong_fixture_is_listed():
    on_disk = {p.name for p in FIXTURES.glob("wrong_*.py")}
    assert on_disk == set(WRONG)
    assert len(WRONG) >= 5


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_solution_is_flagged_with_the_right_tensor(name):
    key, must, may = WRONG[name]
    report = grade_file(FIXTURES / name)
    failed = [e.key for e in report.exercises if not e.passed]
    assert failed == [key], str(report)
    assert report.score == 4
    tensors = set(report[key].failed_tensors)
    assert must <= tensors, str(report)
    assert tensors <= must | may, str(report)
    text = str(report)
    assert "Score: 4/5" in text
    for tensor in must:
        assert f"FAIL  {tensor}" in text


def test_skeleton_scores_zero_and_says_what_is_missing():
    report = grade_file(SKELETON)
    assert report.score == 0 and report.total == 5
    for ex in report.exercises:
        assert ex.failed_tensors == ["error"]
        errors = [r for r in ex.rows if not r.passed]
        assert errors and all("NotImplementedError" in r.detail for r in errors)
    assert "Score: 0/5" in str(report)


def test_a_file_that_does_not_import_fails_every_exercise(tmp_path):
    bad = tmp_path / "student_layers.py"
    bad.write_text("def broken(:\n    pass\n")
    report = grade_file(bad)
    assert report.score == 0 and report.total == 5
    assert any("SyntaxError" in w for w in report.warnings)


def test_missing_names_fail_only_their_exercise(tmp_path):
    partial = tmp_path / "partial.py"
    partial.write_text(
        f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\n"
        "from reference import LeakyReLU, Linear  # noqa: F401\n"
    )
    report = grade_file(partial)
    assert [e.key for e in report.exercises if e.passed] == ["leaky_relu", "linear"]
    assert "defines no 'Sigmoid'" in str(report)


def test_minigan_imports_are_reported_to_the_teacher(tmp_path):
    f = tmp_path / "uses_minigan.py"
    f.write_text(
        (FIXTURES.parent.parent.parent / "solutions" / "student_layers.py").read_text()
        + "\nfrom minigan.functional import leaky_relu_backward  # noqa: E402,F401\n"
    )
    report = grade_file(f)
    assert report.score == 5
    assert any("minigan.functional.leaky_relu_backward" in w for w in report.warnings)


def test_selection_determinism_and_json():
    one = grade_file(REFERENCE, exercises=["linear"])
    assert [e.key for e in one.exercises] == ["linear"] and one.score == 1
    again = grade_file(REFERENCE, exercises=["linear"])
    assert [r.detail for r in one["linear"].rows] == [r.detail for r in again["linear"].rows]
    data = json.loads(json.dumps(grade_file(FIXTURES / "wrong_bce_sign.py").to_dict()))
    bce = next(e for e in data["exercises"] if e["key"] == "bce_with_logits")
    assert data["score"] == 4 and bce["failed_tensors"] == ["input"]
    with pytest.raises(ValueError, match="unknown"):
        grade_file(REFERENCE, exercises=["conv2d"])
    with pytest.raises(FileNotFoundError):
        grade_file(ROOT / "no_such_file.py")
    with pytest.raises(KeyError, match="have"):
        one["sigmoid"]
    assert set(ALL_KEYS) == {
        "leaky_relu",
        "sigmoid",
        "linear",
        "bce_with_logits",
        "d_loss_grad_fake",
    }


def test_cli_check_exit_status_and_report(capsys):
    from minigan.cli import main

    assert main(["check", str(REFERENCE)]) == 0
    assert "Score: 5/5" in capsys.readouterr().out
    assert main(["check", str(FIXTURES / "wrong_linear_no_bias_grad.py")]) == 1
    out = capsys.readouterr().out
    assert "Score: 4/5" in out and "FAIL  bias" in out
    assert (
        main(["check", "--json", "--only", "sigmoid", str(FIXTURES / "wrong_sigmoid_uses_x.py")])
        == 1
    )
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 1 and data["exercises"][0]["failed_tensors"] == ["input"]
    assert main(["check", str(ROOT / "no_such_file.py")]) == 2
    assert "no such file" in capsys.readouterr().err
