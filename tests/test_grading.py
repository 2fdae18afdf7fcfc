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
REFERENCE_CONV = ROOT / "solutions" / "student_conv.py"
SKELETON_CONV = ROOT / "exercises" / "student_conv.py"
FIXTURES = ROOT / "tests" / "fixtures" / "grading"
ALL_KEYS = [e.key for e in EXERCISES]
LAYER_KEYS = [e.key for e in EXERCISES if e.sheet == "student_layers"]
CONV_KEYS = [e.key for e in EXERCISES if e.sheet == "student_conv"]

# file -> (the exercise that must fail, the tensors it must name, the tensors it may also name,
#          a phrase a failing row must contain, a case that must still pass)
WRONG = {
    "wrong_leaky_relu_no_slope.py": ("leaky_relu", {"input"}, set(), None, None),
    "wrong_leaky_relu_ignores_input_grad.py": (
        "leaky_relu",
        {"input"},
        set(),
        "input_grad=False: returned a ndarray",
        "LeakyReLU(), x (4, 5)",
    ),
    # In-place on dout: the returned values are right, the caller's dout is not.
    "wrong_leaky_relu_modifies_dout.py": (
        "leaky_relu",
        {"dout"},
        {"input"},
        "changed by the call",
        None,
    ),
    "wrong_sigmoid_uses_x.py": ("sigmoid", {"input"}, set(), None, None),
    "wrong_sigmoid_ignores_input_grad.py": (
        "sigmoid",
        {"input"},
        set(),
        "input_grad=False: returned a ndarray",
        "Sigmoid(), x (4, 5)",
    ),
    "wrong_sigmoid_modifies_dout.py": ("sigmoid", {"dout"}, {"input"}, "changed by the call", None),
    "wrong_linear_no_bias_grad.py": ("linear", {"bias"}, set(), None, None),
    # x.T @ dout cannot be added into a (3, 4) weight gradient: a shape error in the
    # non-square cases, wrong values for the square layer.
    "wrong_linear_dw_transposed.py": ("linear", {"weight"}, {"error"}, None, None),
    "wrong_linear_overwrites_grads.py": (
        "linear",
        {"weight", "bias"},
        set(),
        "not accumulated",
        "Linear(4, 3), x (5, 4)",
    ),
    "wrong_linear_ignores_input_grad.py": (
        "linear",
        {"input"},
        set(),
        "input_grad=False: returned a ndarray",
        "Linear(4, 3), x (5, 4)",
    ),
    "wrong_linear_no_grads_without_input_grad.py": (
        "linear",
        {"weight", "bias"},
        set(),
        "grads['weight']",
        "Linear(4, 3), x (5, 4)",
    ),
    "wrong_linear_ignores_requires_grad.py": (
        "linear",
        {"weight", "bias"},
        set(),
        "a frozen layer adds no gradient",
        "Linear(4, 3), x (5, 4)",
    ),
    "wrong_linear_updates_weight.py": (
        "linear",
        {"weight"},
        {"input"},
        "backward must not update weights",
        None,
    ),
    # Right for batch 1 only: the (1, 2) batch passes, the others fail.
    "wrong_linear_db_first_row.py": ("linear", {"bias"}, set(), None, "Linear(2, 4), x (1, 2)"),
    "wrong_linear_db_wrong_axis.py": ("linear", {"bias"}, {"error"}, None, None),
    "wrong_bce_sign.py": ("bce_with_logits", {"input"}, set(), None, None),
    "wrong_bce_no_mean.py": ("bce_with_logits", {"input"}, set(), None, None),
    # Right for (N, 1) logits only.
    "wrong_bce_mean_divides_by_batch.py": (
        "bce_with_logits",
        {"input"},
        set(),
        None,
        'BCEWithLogitsLoss(reduction="mean"), logits (6, 1), soft targets',
    ),
    "wrong_bce_sum_also_divides.py": (
        "bce_with_logits",
        {"input"},
        set(),
        None,
        'BCEWithLogitsLoss(reduction="mean"), logits (3, 4), soft targets',
    ),
    "wrong_d_loss_target_real.py": ("d_loss_grad_fake", {"fake"}, set(), None, None),
    "wrong_d_loss_changes_d_grads.py": (
        "d_loss_grad_fake",
        {"D.grads"},
        set(),
        "freeze D",
        "D = Linear(3, 8) -> leaky_relu -> Linear(8, 1), fake (6, 3)",
    ),
    "wrong_d_loss_leaves_d_frozen.py": (
        "d_loss_grad_fake",
        {"D.requires_grad"},
        set(),
        "left frozen",
        "D = Linear(3, 8) -> leaky_relu -> Linear(8, 1), fake (6, 3)",
    ),
    # Part 2 (exercises/student_conv.py).
    "wrong_conv_dx_keeps_padding.py": ("conv2d_backward", {"input"}, set(), "shape", None),
    # Right for batch 1 only.
    "wrong_conv_db_first_image.py": (
        "conv2d_backward",
        {"bias"},
        set(),
        None,
        "Conv2d(2, 3, (3, 2), stride=1, padding=1), x (1, 2, 6, 4)",
    ),
    # Right for square inputs only.
    "wrong_conv_crop_uses_height.py": (
        "conv2d_backward",
        {"input"},
        {"error"},
        None,
        "Conv2d(3, 2, 3, stride=1, padding=0, bias=False), x (2, 3, 5, 5)",
    ),
    "wrong_conv_ignores_requires_grad.py": (
        "conv2d_backward",
        {"weight", "bias"},
        set(),
        "a frozen layer adds no gradient",
        "Conv2d(3, 4, 3, stride=2, padding=1), x (2, 3, 5, 7)",
    ),
    "wrong_conv_ignores_input_grad.py": (
        "conv2d_backward",
        {"input"},
        set(),
        "input_grad=False: returned a ndarray",
        "Conv2d(3, 4, 3, stride=2, padding=1), x (2, 3, 5, 7)",
    ),
    "wrong_bn_eval_mode_dx.py": ("batch_norm_backward", {"input"}, set(), None, None),
    # Divides by N: right for (N, C), wrong for (N, C, H, W).
    "wrong_bn_count_batch_only.py": (
        "batch_norm_backward",
        {"input"},
        set(),
        None,
        "BatchNorm1d(3), training, x (6, 3)",
    ),
    "wrong_bn_ignores_requires_grad.py": (
        "batch_norm_backward",
        {"weight", "bias"},
        set(),
        "a frozen layer adds no gradient",
        "BatchNorm2d(2), training, x (3, 2, 2, 3)",
    ),
    "wrong_bn_updates_running_stats.py": (
        "batch_norm_backward",
        {"running_mean", "running_var"},
        set(),
        "backward must not update them",
        "BatchNorm2d(2), training, x (3, 2, 2, 3)",
    ),
    # Divides by shape[0]: right for (N, 1) and (N,), wrong for patch maps.
    "wrong_hinge_divides_by_batch.py": (
        "hinge_loss_grad",
        {"D.d_real", "D.d_fake", "G.d_fake"},
        set(),
        None,
        "hinge, d_real (6, 1), d_fake (6, 1)",
    ),
    "wrong_hinge_one_count.py": (
        "hinge_loss_grad",
        {"D.d_fake", "G.d_fake"},
        set(),
        None,
        "hinge, d_real (6, 1), d_fake (6, 1)",
    ),
    "wrong_hinge_g_sign.py": ("hinge_loss_grad", {"G.d_fake"}, set(), None, None),
    "wrong_hinge_modifies_input.py": (
        "hinge_loss_grad",
        {"d_fake"},
        set(),
        "changed by the call",
        None,
    ),
    "wrong_gp_misses_direct_path.py": ("gradient_penalty_grad", {"W1"}, set(), None, None),
    # Right for batch 1 only.
    "wrong_gp_sum_not_mean.py": (
        "gradient_penalty_grad",
        {"W1", "b1", "W2"},
        set(),
        None,
        "critic Linear(4, 2) -> tanh -> Linear(2, 1), x (1, 4), weight 10",
    ),
    "wrong_gp_writes_into_W2.py": (
        "gradient_penalty_grad",
        {"W2"},
        set(),
        "changed by the call",
        None,
    ),
}


def test_reference_solutions_pass():
    report = grade_file(REFERENCE)
    assert report.total == len(LAYER_KEYS) == 5
    assert report.score == 5, str(report)
    assert report.passed and report.n_passed == 5
    assert report.warnings == []
    for ex in report.exercises:
        assert ex.rows, ex.key
        assert all(r.passed for r in ex.rows), ex.format(verbose=True)
        assert ex.notes == [], ex.notes  # no calls into minigan's math, no RuntimeWarnings
        assert any("[seed draw 2]" in c for c in ex.checks), "each exercise runs two seeds"
    assert "Score: 5/5" in str(report)


def test_every_wrong_fixture_is_listed():
    on_disk = {p.name for p in FIXTURES.glob("wrong_*.py")}
    assert on_disk == set(WRONG)
    assert len(WRONG) >= 20
    per_exercise = {k: sum(v[0] == k for v in WRONG.values()) for k in ALL_KEYS}
    assert min(per_exercise.values()) >= 2, per_exercise


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_solution_is_flagged_with_the_right_tensor(name):
    key, must, may, phrase, still_passes = WRONG[name]
    report = grade_file(FIXTURES / name)
    sheet = next(e.sheet for e in EXERCISES if e.key == key)
    n = sum(e.sheet == sheet for e in EXERCISES)  # the file is graded on its own sheet
    assert [e.key for e in report.exercises] == (LAYER_KEYS if n == 5 else CONV_KEYS)
    failed = [e.key for e in report.exercises if not e.passed]
    assert failed == [key], str(report)
    assert report.n_passed == n - 1
    ex = report[key]
    assert 0 <= ex.score < 1 and report.score == pytest.approx(n - 1 + ex.score)
    tensors = set(ex.failed_tensors)
    assert must <= tensors, str(report)
    assert tensors <= must | may, str(report)
    text = str(report)
    assert f"({n - 1} of {n} exercises fully passed)" in text
    for tensor in must:
        assert f"FAIL  {tensor}" in text
    bad = [r for r in ex.rows if not r.passed]
    if phrase is not None:
        assert any(phrase in r.case or phrase in r.detail for r in bad), text
    if still_passes is not None:
        assert ex.checks[still_passes], ex.format(verbose=True)  # partial credit, per check


def test_skeleton_scores_zero_and_says_what_is_missing():
    report = grade_file(SKELETON)
    assert report.score == 0 and report.total == 5
    for ex in report.exercises:
        assert ex.score == 0
        assert ex.failed_tensors == ["error"]
        errors = [r for r in ex.rows if not r.passed]
        assert errors and all("NotImplementedError" in r.detail for r in errors)
    assert "Score: 0/5" in str(report)


def test_part_two_reference_passes_and_skeleton_scores_zero():
    report = grade_file(REFERENCE_CONV)
    assert (
        [e.key for e in report.exercises]
        == CONV_KEYS
        == [
            "conv2d_backward",
            "batch_norm_backward",
            "hinge_loss_grad",
            "gradient_penalty_grad",
        ]
    )
    assert report.score == report.total == 4 and report.passed, str(report)
    assert report.warnings == []
    for ex in report.exercises:
        assert ex.notes == [], ex.notes
        assert any("[seed draw 2]" in c for c in ex.checks)
    skeleton = grade_file(SKELETON_CONV)
    assert skeleton.score == 0 and skeleton.total == 4, str(skeleton)
    for ex in skeleton.exercises:
        assert ex.failed_tensors == ["error"], ex.format(verbose=True)
        assert all("NotImplementedError" in r.detail for r in ex.rows if not r.passed)
    assert "Score: 0/4" in str(skeleton)
    _validate_gradescope(report.to_gradescope())


def test_sheets_are_chosen_by_the_names_a_file_defines(tmp_path):
    from minigan.grading import exercises_for

    assert [e.key for e in exercises_for([])] == LAYER_KEYS  # empty or broken file
    assert [e.key for e in exercises_for(["Conv2d"])] == CONV_KEYS
    assert [e.key for e in exercises_for(["Linear", "hinge_loss_grad"])] == ALL_KEYS
    both = _student(
        tmp_path,
        f"import sys\nsys.path.insert(0, {str(FIXTURES)!r})\n"
        "from reference import *  # noqa: F403\nfrom reference_conv import *  # noqa: F403\n"
        "from reference import BCEWithLogitsLoss, LeakyReLU, Linear, Sigmoid  # noqa: F401\n"
        "from reference import d_loss_grad_fake  # noqa: F401\n"
        "from reference_conv import BatchNorm1d, Conv2d  # noqa: F401\n",
        "both.py",
    )
    report = grade_file(both)
    assert [e.key for e in report.exercises] == ALL_KEYS
    # BatchNorm2d, hinge_* and gradient_penalty_* only come from the star import, which the
    # sheet detection does not see; the grader still grades (and passes) them by name.
    assert report.score == 9, str(report)
    missing = _student(tmp_path, "def Conv2d():\n    pass\n", "missing.py")
    report = grade_file(missing, exercises=None)
    assert report.total == 4 and "defines no 'BatchNorm1d'" in str(report)


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
    assert data["score"] == 4 and bce["failed_tensors"] == ["input"] and bce["score"] == 0
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
        "conv2d_backward",
        "batch_norm_backward",
        "hinge_loss_grad",
        "gradient_penalty_grad",
    }


def test_cli_check_exit_status_and_report(capsys):
    from minigan.cli import main

    assert main(["check", str(REFERENCE)]) == 0
    assert "Score: 5/5" in capsys.readouterr().out
    assert main(["check", str(FIXTURES / "wrong_linear_no_bias_grad.py")]) == 1
    out = capsys.readouterr().out
    assert "Score: 4.5/5" in out and "FAIL  bias" in out
    assert (
        main(["check", "--json", "--only", "sigmoid", str(FIXTURES / "wrong_sigmoid_uses_x.py")])
        == 1
    )
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == 1 and data["exercises"][0]["failed_tensors"] == ["input"]
    assert main(["check", str(ROOT / "no_such_file.py")]) == 2
    assert "no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Hostile and clumsy files (issue 15, item 12): the verdict comes only from the grader's result
# ----------------------------------------------------------------------------------------------
SOLUTION = REFERENCE.read_text()


def _student(tmp_path, text: str, name: str = "student_layers.py") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("import sys\nsys.exit(0)\n", "SystemExit(0)"),
        ("raise SystemExit(0)\n", "SystemExit(0)"),
        ("import os\nos._exit(0)\n", "exit status 0 before it wrote a result"),
    ],
)
def test_a_file_that_exits_while_imported_fails(tmp_path, text, phrase, capsys):
    from minigan.cli import main

    f = _student(tmp_path, text)
    report = grade_file(f)
    assert report.score == 0 and not report.passed, str(report)
    assert any(phrase in w for w in report.warnings), report.warnings
    assert main(["check", str(f)]) == 1  # was: no output and exit status 0
    assert "Score: 0/5" in capsys.readouterr().out


def test_system_exit_inside_backward_fails_that_check(tmp_path):
    f = _student(
        tmp_path,
        SOLUTION + "\n\nclass LeakyReLU(LeakyReLU):  # noqa: F811\n"
        "    def backward(self, dout, *, input_grad=True):\n"
        "        raise SystemExit(0)\n",
    )
    report = grade_file(f)
    assert [e.key for e in report.exercises if not e.passed] == ["leaky_relu"]
    assert "SystemExit(0)" in report["leaky_relu"].format()
    assert report.n_passed == 4


def test_os_exit_midway_keeps_what_was_graded_and_fails_the_rest(tmp_path):
    f = _student(
        tmp_path,
        SOLUTION + "\n\nimport os  # noqa: E402\n\n\nclass Linear(Linear):  # noqa: F811\n"
        "    def backward(self, dout, *, input_grad=True):\n"
        "        os._exit(0)\n",
    )
    report = grade_file(f)
    assert [e.key for e in report.exercises if e.passed] == ["leaky_relu", "sigmoid"]
    assert report.score == 2
    assert "not graded" in report["bce_with_logits"].format()
    assert any("exit status 0" in w for w in report.warnings)


def test_an_infinite_loop_is_stopped_by_the_time_limit(tmp_path):
    f = _student(
        tmp_path,
        SOLUTION + "\n\nclass Sigmoid(Sigmoid):  # noqa: F811\n"
        "    def backward(self, dout, *, input_grad=True):\n"
        "        while True:\n"
        "            pass\n",
    )
    report = grade_file(f, timeout=5)
    assert report.score == 1 and report["leaky_relu"].passed, str(report)
    assert any("timed out after 5 s" in w for w in report.warnings)
    with pytest.raises(ValueError, match="timeout"):
        grade_file(f, timeout=0)


def test_a_forged_result_file_is_not_believed(tmp_path):
    forged = {"token": "guess", "done": True, "report": {"path": "x", "warnings": []}}
    f = _student(
        tmp_path,
        f"import json, os\njson.dump({forged!r}, open('result.json', 'w'))\nos._exit(0)\n",
    )
    report = grade_file(f)
    assert report.score == 0 and len(report.exercises) == 5


def test_importlib_and_sys_modules_evasions_are_reported(tmp_path):
    f = _student(
        tmp_path,
        SOLUTION + "\n\nimport importlib  # noqa: E402\nimport sys  # noqa: E402\n\n"
        "F = importlib.import_module('minigan.functional')\n\n\n"
        "class Sigmoid(Sigmoid):  # noqa: F811\n"
        "    def backward(self, dout, *, input_grad=True):\n"
        "        f = sys.modules['minigan' + '.functional']\n"
        "        y = self._cached()\n"
        "        return f.sigmoid_backward(dout, y) if input_grad else None\n",
    )
    report = grade_file(f)
    assert report.score == 5  # the values are right ...
    assert any("minigan.functional" in w for w in report.warnings), report.warnings
    notes = " ".join(report["sigmoid"].notes)  # ... but the teacher sees the call
    assert "minigan.functional.sigmoid_backward" in notes
    assert report["leaky_relu"].notes == []


def test_seed_changes_the_inputs_not_the_verdict():
    a = grade_file(REFERENCE, exercises=["linear"], seed=1)
    b = grade_file(REFERENCE, exercises=["linear"], seed=2)
    assert a.passed and b.passed
    assert [r.detail for r in a["linear"].rows] != [r.detail for r in b["linear"].rows]
    assert list(a["linear"].checks) == list(b["linear"].checks)


# Gradescope's "Autograder Specifications", "Output format": the documented fields and types.
_GS_TOP = {
    "score": (int, float),
    "execution_time": (int, float),
    "output": str,
    "output_format": str,
    "test_output_format": str,
    "test_name_format": str,
    "visibility": str,
    "stdout_visibility": str,
    "extra_data": dict,
    "tests": list,
    "leaderboard": list,
}
_GS_TEST = {
    "score": (int, float),
    "max_score": (int, float),
    "status": str,
    "name": str,
    "name_format": str,
    "number": str,
    "output": str,
    "output_format": str,
    "tags": list,
    "visibility": str,
    "extra_data": dict,
}
_GS_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def _validate_gradescope(data: dict) -> None:
    assert set(data) <= set(_GS_TOP), set(data) - set(_GS_TOP)
    for key, value in data.items():
        assert isinstance(value, _GS_TOP[key]), key
    assert "score" in data or all("score" in t for t in data["tests"])
    for v in (data.get("visibility"), data.get("stdout_visibility")):
        assert v is None or v in _GS_VISIBILITY
    for t in data["tests"]:
        assert set(t) <= set(_GS_TEST), set(t) - set(_GS_TEST)
        for key, value in t.items():
            assert isinstance(value, _GS_TEST[key]), key
        assert t.get("status", "passed") in {"passed", "failed"}
        assert t.get("visibility", "visible") in _GS_VISIBILITY
        assert 0 <= t["score"] <= t["max_score"]
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]))


def test_gradescope_results_json(tmp_path, capsys):
    from minigan.cli import main

    out = tmp_path / "results" / "results.json"  # parent created
    wrong = FIXTURES / "wrong_linear_ignores_requires_grad.py"
    assert main(["check", "--format", "gradescope", "--output", str(out), str(wrong)]) == 1
    data = json.loads(out.read_text())
    _validate_gradescope(data)
    linear = next(t for t in data["tests"] if t["name"].startswith("3. Linear"))
    assert linear["status"] == "failed" and 0 < linear["score"] < linear["max_score"]
    assert "frozen" in linear["output"]
    assert data["score"] == pytest.approx(4 + linear["score"])
    assert "wrote" in capsys.readouterr().out
    assert main(["check", "--format", "json", str(REFERENCE)]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == 5
    _validate_gradescope(grade_file(REFERENCE).to_gradescope())


def test_check_help_says_it_runs_the_students_code(capsys):
    from minigan.cli import main

    with pytest.raises(SystemExit):
        main(["check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "EXECUTES the student's Python code" in text and "--timeout" in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "runs the student's code" in readme
