"""Grade students' backward passes: ``minigan check path/to/student_layers.py``.

The coursework skeleton ``exercises/student_layers.py`` asks for five backward passes
(``LeakyReLU``, ``Sigmoid``, ``Linear``, ``BCEWithLogitsLoss`` and ``d_loss_grad_fake``, the
gradient of the discriminator's loss into the generator's output); its second part,
``exercises/student_conv.py``, for four more (``Conv2d`` with stride and padding, ``BatchNorm1d``
/ ``BatchNorm2d`` in training mode, ``hinge_loss_grad`` for D's and G's hinge losses, and
``gradient_penalty_grad``, the WGAN-GP penalty's gradient into a two-layer critic's weights).
Each exercise belongs to one of these *sheets*; a file is graded on every exercise of the sheets
whose names it defines (:func:`exercises_for`). :func:`grade_file` runs a
student's file **in a separate Python process** with a time limit and grades it there: the
gradient checks a student runs with :mod:`minigan.gradcheck` (float64, central differences,
random upstream gradients, inputs away from kinks) on several shapes and seeds, plus the checks
finite differences cannot see: gradients *accumulate* over two backward calls;
``input_grad=False`` returns no ``dx`` but still adds the parameter gradients; a frozen module
(``requires_grad_(False)``) leaves its gradients alone; the arguments, parameters and gradients an
exercise says to leave untouched stay untouched; a loss mean divides by the element count
(inputs that are not ``(N, 1)``); batch 1 and batch > 1, square and non-square layers; logits of
+-1e3 stay finite; the given forward passes still match minigan's.

The result is a :class:`GradeReport`: one row per check and tensor, partial credit per
exercise (the fraction of its checks that pass), and a score such as ``4.6/5``. Failures name
the tensor (``"input"``, ``"weight"``, ``"bias"``, ``"fake"``, ``"dout"``, ``"D.grads"``, ...),
the worst element, and the analytic and numeric values there.

Trust: the verdict comes only from a result file the grading process writes after it graded
(with a token the parent gave it). A file that calls ``sys.exit`` or ``os._exit``, raises
``SystemExit`` inside a backward pass, loops forever or crashes the interpreter gets failed
exercises and says why; it never "passes" by ending early. Calls from the student's code into
minigan's own math (however they were imported, ``importlib`` included) are listed for the
teacher. This guards against mistakes and clumsy shortcuts, not against a determined attacker:
the student's code runs with the grader's rights. Grade untrusted files in a sandbox.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import functional as F
from .gradcheck import GradcheckReport, check_function, check_module, rel_error

__all__ = [
    "EXERCISES",
    "Exercise",
    "CheckRow",
    "ExerciseResult",
    "GradeReport",
    "grade_file",
    "grade_module",
    "exercises_for",
    "load_student_module",
    "DEFAULT_TIMEOUT",
]

_PACKAGE_DIR = Path(__file__).resolve().parent

# Tolerances of minigan.gradcheck (torch.autograd.gradcheck's criterion), used unchanged.
_ATOL, _RTOL = 1e-5, 1e-3

# What a checked call may raise and still be reported as a failed check: SystemExit too (a
# student's sys.exit(0) in a backward pass must fail that check, not end the grading).
_CAUGHT = (Exception, SystemExit)

#: Seconds the grading process may run before it is stopped (``minigan check --timeout``).
DEFAULT_TIMEOUT = 60.0


@dataclass
class CheckRow:
    """One checked tensor in one check (a *case*).

    Attributes
    ----------
    case : str
        What was run, e.g. ``"Linear(4, 3), x (5, 4)"``. Rows of one case form one check;
        an exercise's partial credit is the fraction of its checks whose rows all pass.
    tensor : str
        ``"input"``, a parameter name (``"weight"``, ``"bias"``), ``"fake"``, ``"output"``
        (the forward pass), an argument or state that must stay untouched (``"dout"``, ``"x"``,
        ``"D.grads"``, ...), or ``"error"`` (the code raised or ended the process).
    passed : bool
    detail : str
        The gradcheck line (relative error, worst element, analytic vs numeric) or the reason.
    """

    case: str
    tensor: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``"PASS  weight   <detail>"``: one printed line of the report."""
        return f"{'PASS' if self.passed else 'FAIL'}  {self.tensor:<8} {self.detail}"


@dataclass
class ExerciseResult:
    """The result of one exercise: its rows, notes, and partial credit out of ``points``."""

    key: str
    title: str
    lesson: int
    points: float = 1.0
    rows: list[CheckRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when there is at least one row and every row passed."""
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def checks(self) -> dict[str, bool]:
        """Case -> whether every row of that case passed, in order."""
        out: dict[str, bool] = {}
        for r in self.rows:
            out[r.case] = out.get(r.case, True) and r.passed
        return out

    @property
    def score(self) -> float:
        """Partial credit: ``points`` times the fraction of checks passed (0 without rows)."""
        checks = self.checks
        return self.points * sum(checks.values()) / len(checks) if checks else 0.0

    @property
    def failed_tensors(self) -> list[str]:
        """Names of the failing tensors, in order, without repeats."""
        out: list[str] = []
        for r in self.rows:
            if not r.passed and r.tensor not in out:
                out.append(r.tensor)
        return out

    def format(self, verbose: bool = False) -> str:
        """The exercise's block of the report: a PASS/FAIL head line with the checks passed,
        then the failing rows grouped by case (every row when ``verbose``), then notes."""
        checks = self.checks
        head = (
            f"[{'PASS' if self.passed else 'FAIL'}] {self.title}  (lesson {self.lesson})  "
            f"{sum(checks.values())}/{len(checks)} checks, {_num(self.score)}/{_num(self.points)}"
        )
        if self.passed and not verbose and not self.notes:
            return head
        lines = [head]
        case = None
        errors: dict[str, int] = {}  # an error repeated in later cases is printed once
        for r in self.rows:
            if not verbose and r.passed:
                continue
            if r.tensor == "error" and r.detail in errors:
                errors[r.detail] += 1
                continue
            if r.tensor == "error":
                errors[r.detail] = 0
            if r.case != case:
                lines.append(f"    {r.case}:")
                case = r.case
            lines.extend("      " + s for s in r.line().splitlines())
        repeats = sum(errors.values())
        if repeats:
            lines.append(f"    (an error shown above also occurred in {repeats} more case(s))")
        lines.extend(f"    note: {n}" for n in self.notes)
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{round(x, 2):g}"


@dataclass
class GradeReport:
    """Per-exercise, per-tensor results of grading one file; ``str()`` is the printed report.

    Attributes
    ----------
    path : str
    exercises : list of ExerciseResult
    warnings : list of str
        File-level remarks for the teacher (import failures, the process ending early, calls
        into minigan's math to look at).
    """

    path: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Points earned: the sum of the exercises' partial credit."""
        return sum(e.score for e in self.exercises)

    @property
    def total(self) -> float:
        """Points available (one per exercise unless the registry says otherwise)."""
        return sum(e.points for e in self.exercises)

    @property
    def n_passed(self) -> int:
        """Number of exercises whose every check passed."""
        return sum(e.passed for e in self.exercises)

    @property
    def passed(self) -> bool:
        """True when there is at least one exercise and every exercise passed."""
        return bool(self.exercises) and self.n_passed == len(self.exercises)

    def __getitem__(self, key: str) -> ExerciseResult:
        for e in self.exercises:
            if e.key == key:
                return e
        raise KeyError(f"no exercise {key!r}; have {[e.key for e in self.exercises]}")

    def format(self, verbose: bool = False) -> str:
        """The report; ``verbose`` also lists the rows of passing exercises."""
        lines = [f"minigan check: {self.path}"]
        lines.extend(f"  warning: {w}" for w in self.warnings)
        for e in self.exercises:
            lines.append("  " + e.format(verbose).replace("\n", "\n  "))
        lines.append(
            f"Score: {_num(self.score)}/{_num(self.total)} "
            f"({self.n_passed} of {len(self.exercises)} exercises fully passed)"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (``minigan check --format json``)."""
        return {
            "path": self.path,
            "score": self.score,
            "total": self.total,
            "passed": self.passed,
            "warnings": list(self.warnings),
            "exercises": [
                {
                    "key": e.key,
                    "title": e.title,
                    "lesson": e.lesson,
                    "points": e.points,
                    "score": e.score,
                    "passed": e.passed,
                    "checks": e.checks,
                    "failed_tensors": e.failed_tensors,
                    "rows": [vars(r).copy() for r in e.rows],
                    "notes": list(e.notes),
                }
                for e in self.exercises
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradeReport:
        """Rebuild a report from :meth:`to_dict` (how the grading process hands it back).

        Raises
        ------
        KeyError, TypeError, ValueError
            ``data`` is not what :meth:`to_dict` writes.
        """
        report = cls(str(data["path"]), warnings=[str(w) for w in data["warnings"]])
        for e in data["exercises"]:
            result = ExerciseResult(
                str(e["key"]), str(e["title"]), int(e["lesson"]), float(e["points"])
            )
            result.rows = [
                CheckRow(str(r["case"]), str(r["tensor"]), bool(r["passed"]), str(r["detail"]))
                for r in e["rows"]
            ]
            result.notes = [str(n) for n in e["notes"]]
            report.exercises.append(result)
        return report

    def to_gradescope(self) -> dict[str, Any]:
        """The report as a Gradescope autograder ``results.json`` (``--format gradescope``).

        One test per exercise: ``score`` (partial credit), ``max_score``, ``status``
        ("passed"/"failed"), ``name``, ``number``, ``output`` (its report block) and
        ``visibility``; the top-level ``score`` and ``output`` (warnings) are the file's.

        Notes
        -----
        Field names and types follow Gradescope's "Autograder Specifications", section
        "Output format" (gradescope-autograders.readthedocs.io/en/latest/specs/).
        """
        tests = [
            {
                "name": e.title,
                "number": str(i + 1),
                "score": round(e.score, 4),
                "max_score": e.points,
                "status": "passed" if e.passed else "failed",
                "output": e.format(verbose=False),
                "visibility": "visible",
            }
            for i, e in enumerate(self.exercises)
        ]
        output = "\n".join(f"warning: {w}" for w in self.warnings) or "All checks ran."
        return {
            "score": round(self.score, 4),
            "output": output,
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": tests,
        }


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _rows_from(case: str, report: GradcheckReport, rename: dict[str, str] | None = None):
    rename = rename or {}
    out = []
    for r in report.rows:
        # TensorCheck.line() is "PASS  <name> <shape> <errors, worst element>": drop the first
        # two fields, CheckRow.line() prints them itself.
        detail = r.line()[4:].strip().removeprefix(r.name).strip()
        out.append(CheckRow(case, rename.get(r.name, r.name), r.passed, detail))
    return out


def _error_row(case: str, exc: BaseException) -> CheckRow:
    tb = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(tb):  # the innermost frame outside minigan: the student's line
        if _PACKAGE_DIR not in Path(frame.filename).resolve().parents:
            where = f" (at {Path(frame.filename).name}:{frame.lineno}: {frame.line})"
            break
    if isinstance(exc, SystemExit):
        what = f"SystemExit({exc.code!r}): the code tried to end the grading (sys.exit?)"
        return CheckRow(case, "error", False, what + where)
    return CheckRow(case, "error", False, f"{type(exc).__name__}: {exc}{where}")


def _compare_row(case: str, tensor: str, got, expected, what: str) -> CheckRow:
    """Compare two arrays (not a gradient check): shape, finiteness, then values."""
    if got is None:
        return CheckRow(case, tensor, False, f"{what}: got None")
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return CheckRow(
            case, tensor, False, f"{what}: shape {got.shape}, expected {expected.shape}"
        )
    if not np.all(np.isfinite(got)):
        return CheckRow(case, tensor, False, f"{what}: not finite ({got.ravel()[:4]} ...)")
    ok = bool(np.all(np.abs(got - expected) <= _ATOL + _RTOL * np.abs(expected)))
    return CheckRow(case, tensor, ok, f"{what}: rel_error {rel_error(got, expected):.2e}")


def _unchanged_rows(case: str, before: dict[str, np.ndarray], after: dict[str, Any], why: str):
    """One row per named array: it must be bit-identical to its copy taken before the call."""
    rows = []
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            rows.append(CheckRow(case, name, False, f"{name} is gone after the call ({why})"))
            continue
        new = np.asarray(new)
        if new.shape == old.shape and np.array_equal(new, old):
            rows.append(CheckRow(case, name, True, f"unchanged ({why})"))
        else:
            change = (
                f"max change {float(np.max(np.abs(new - old))):.3g}"
                if new.shape == old.shape
                else f"shape {old.shape} -> {new.shape}"
            )
            rows.append(CheckRow(case, name, False, f"changed by the call, {change} ({why})"))
    return rows


def _none_row(case: str, got) -> CheckRow:
    """``backward(dout, input_grad=False)`` must return None: the caller asked for no dx."""
    if got is None:
        return CheckRow(case, "input", True, "input_grad=False: returned None")
    return CheckRow(
        case,
        "input",
        False,
        f"input_grad=False: returned a {type(got).__name__}, expected None (the caller asked "
        "for no dx; skip computing it)",
    )


def _away_from_zero(rng: np.random.Generator, shape, low=0.1, high=2.0) -> np.ndarray:
    """Uniform magnitudes in [low, high] with random signs: no element near a kink."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1 << 31))


def _get(module, name: str):
    if not hasattr(module, name):
        raise AttributeError(f"the file defines no {name!r}")
    return getattr(module, name)


def _grads_copy(module) -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=np.float64) for k, v in module.grads.items()}


# ----------------------------------------------------------------------------------------------
# The exercises: each checker takes the student's module and a seeded Generator, returns rows
# ----------------------------------------------------------------------------------------------
def _activation_cases(cls, make, ref_forward, ref_backward, x, case, rng) -> list[CheckRow]:
    """The checks shared by elementwise activations, for one input ``x``."""
    rows: list[CheckRow] = []
    try:
        layer = make(cls)
        rows.append(
            _compare_row(case, "output", layer.forward(x.copy()), ref_forward(x), "forward")
        )
        rows += _rows_from(case, check_module(layer, x, seed=_seed(rng)))
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    side = f"{case}: backward leaves dout and x alone"
    try:
        layer = make(cls)
        x_arg, dout = x.copy(), rng.standard_normal(x.shape)
        dout_arg = dout.copy()
        layer.forward(x_arg)
        expected = ref_backward(dout, x)
        rows.append(_compare_row(side, "input", layer.backward(dout_arg), expected, "dx"))
        rows += _unchanged_rows(side, {"dout": dout, "x": x}, {"dout": dout_arg, "x": x_arg}, "")
    except _CAUGHT as exc:
        rows.append(_error_row(side, exc))
    flag = f"{case}: backward(dout, input_grad=False)"
    try:
        layer = make(cls)
        layer.forward(x.copy())
        rows.append(_none_row(flag, layer.backward(rng.standard_normal(x.shape), input_grad=False)))
    except _CAUGHT as exc:
        rows.append(_error_row(flag, exc))
    return rows


def _check_leaky_relu(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "LeakyReLU")
    rows: list[CheckRow] = []
    # The default slope (0.01) and the GAN slope (0.2): a hard-coded slope fails one of them.
    # Batch 1, batch > 1, a non-square and a 3-d input.
    for slope, shape in ((None, (4, 5)), (0.2, (1, 7)), (0.2, (3, 2, 4))):
        s = 0.01 if slope is None else slope
        name = "LeakyReLU()" if slope is None else f"LeakyReLU(negative_slope={slope})"
        rows += _activation_cases(
            cls,
            lambda c, slope=slope: c() if slope is None else c(slope),
            lambda x, s=s: F.leaky_relu_forward(x, s)[0],
            lambda d, x, s=s: F.leaky_relu_backward(d, F.leaky_relu_forward(x, s)[1]),
            _away_from_zero(rng, shape),
            f"{name}, x {shape}",
            rng,
        )
    return rows


def _check_sigmoid(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "Sigmoid")
    rows: list[CheckRow] = []
    for shape in ((4, 5), (1, 3), (2, 3, 2)):
        rows += _activation_cases(
            cls,
            lambda c: c(),
            F.sigmoid,
            lambda d, x: F.sigmoid_backward(d, F.sigmoid_forward(x)[1]),
            rng.normal(scale=2.0, size=shape),
            f"Sigmoid(), x {shape}",
            rng,
        )
    case = "Sigmoid(), x of +-1e3 (saturated)"
    x = np.array([[1e3, -1e3, 30.0, -30.0]])
    dout = rng.standard_normal(x.shape)
    try:
        layer = cls()
        layer.forward(x)
        expected = F.sigmoid_backward(dout, F.sigmoid_forward(x)[1])
        rows.append(_compare_row(case, "input", layer.backward(dout), expected, "dx"))
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    return rows


def _linear_reference(x, weight, bias, dout):
    _, cache = F.linear_forward(x, weight, bias)
    dx, dw, db = F.linear_backward(dout, cache)
    return dx, ({"weight": dw} if db is None else {"weight": dw, "bias": db})


def _check_linear_gradcheck(cls, rng) -> list[CheckRow]:
    rows: list[CheckRow] = []
    # Non-square catches shape slips; square catches transposes that keep the shape; batch 1
    # and batch > 1 (a bias gradient from the first row only passes batch 1).
    for n, n_in, n_out, bias in (
        (5, 4, 3, True),
        (3, 3, 3, True),
        (1, 2, 4, True),
        (5, 4, 3, False),
    ):
        case = f"Linear({n_in}, {n_out}{'' if bias else ', bias=False'}), x ({n}, {n_in})"
        x = rng.standard_normal((n, n_in))
        try:
            layer = cls(n_in, n_out, bias, dtype="float64", rng=_seed(rng))
            ref, _ = F.linear_forward(x, layer.params["weight"], layer.params.get("bias"))
            rows.append(_compare_row(case, "output", layer.forward(x), ref, "forward"))
            rows += _rows_from(case, check_module(layer, x, seed=_seed(rng)))
        except _CAUGHT as exc:
            rows.append(_error_row(case, exc))
    return rows


def _check_linear_accumulates(cls, rng) -> list[CheckRow]:
    # Two backward passes must add up (minigan's layer contract, as PyTorch).
    case = "Linear(4, 3): two backward calls must add up (2x one call)"
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 3))
    rows: list[CheckRow] = []
    try:
        layer = cls(4, 3, dtype="float64", rng=_seed(rng))
        layer.zero_grad()
        layer.forward(x)
        layer.backward(dout)
        once = _grads_copy(layer)
        layer.forward(x)
        layer.backward(dout)
        for k in ("weight", "bias"):
            if k not in layer.grads or k not in once:
                rows.append(CheckRow(case, k, False, f"grads has no {k!r} key"))
                continue
            got = np.asarray(layer.grads[k], dtype=np.float64)
            ratio = float(np.sum(got * once[k]) / max(np.sum(once[k] * once[k]), 1e-300))
            ok = bool(np.allclose(got, 2 * once[k], rtol=1e-12, atol=1e-12))
            detail = (
                "accumulated: grad after two calls is 2x one call"
                if ok
                else f"not accumulated: after two calls the grad is {ratio:.2f}x one call "
                "(expected 2x; use += into self.grads)"
            )
            rows.append(CheckRow(case, k, ok, detail))
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    return rows


def _check_linear_contract(cls, rng) -> list[CheckRow]:
    """input_grad=False, a frozen layer, and what backward must leave alone."""
    rows: list[CheckRow] = []
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 3))
    case = "Linear(4, 3), x (5, 4): backward(dout, input_grad=False) still adds dW, db"
    try:
        layer = cls(4, 3, dtype="float64", rng=_seed(rng))
        layer.zero_grad()
        layer.forward(x)
        _, expected = _linear_reference(x, layer.params["weight"], layer.params["bias"], dout)
        rows.append(_none_row(case, layer.backward(dout.copy(), input_grad=False)))
        for k, ref in expected.items():
            rows.append(_compare_row(case, k, layer.grads.get(k), ref, f"grads[{k!r}]"))
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    case = "Linear(4, 3) frozen with requires_grad_(False): grads untouched, dx still right"
    try:
        layer = cls(4, 3, dtype="float64", rng=_seed(rng))
        layer.zero_grad()
        layer.requires_grad_(False)
        before = _grads_copy(layer)
        layer.forward(x)
        dx_ref, _ = _linear_reference(x, layer.params["weight"], layer.params["bias"], dout)
        rows.append(_compare_row(case, "input", layer.backward(dout.copy()), dx_ref, "dx"))
        rows += _unchanged_rows(case, before, layer.grads, "a frozen layer adds no gradient")
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    case = "Linear(4, 3): backward leaves dout, x and the parameters alone"
    try:
        layer = cls(4, 3, dtype="float64", rng=_seed(rng))
        x_arg, dout_arg = x.copy(), dout.copy()
        params = {k: np.array(v) for k, v in layer.params.items()}
        layer.forward(x_arg)
        layer.backward(dout_arg)
        rows += _unchanged_rows(case, {"dout": dout, "x": x}, {"dout": dout_arg, "x": x_arg}, "")
        rows += _unchanged_rows(case, params, layer.params, "backward must not update weights")
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    return rows


def _check_linear(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "Linear")
    return (
        _check_linear_gradcheck(cls, rng)
        + _check_linear_accumulates(cls, rng)
        + _check_linear_contract(cls, rng)
    )


def _bce_case(cls, reduction: str, z, case: str, rng) -> list[CheckRow]:
    rows: list[CheckRow] = []
    y = rng.uniform(size=z.shape)
    dout = np.asarray(rng.uniform(0.5, 2.0))  # a scalar upstream gradient, not 1
    try:
        loss = cls(reduction)
        ref, _ = F.bce_with_logits_forward(z, y, reduction)
        z_arg, y_arg = z.copy(), y.copy()
        rows.append(_compare_row(case, "output", loss.forward(z_arg, y_arg), ref, "forward"))
        _, cache = F.bce_with_logits_forward(z, y, reduction)
        expected = F.bce_with_logits_backward(dout, cache)
        rows.append(_compare_row(case, "input", loss.backward(dout), expected, "dz"))
        rows += _unchanged_rows(case, {"x": z, "target": y}, {"x": z_arg, "target": y_arg}, "")

        def fwd(z_, y_, loss=loss):
            return loss.forward(z_, y_), None

        def bwd(d, _cache, loss=loss):
            return loss.backward(d), None

        report = check_function(
            fwd, bwd, z, y, names=["input", "target"], dout=dout, atol=_ATOL, rtol=_RTOL
        )
        rows += _rows_from(case, report)
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    return rows


def _check_bce(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "BCEWithLogitsLoss")
    rows: list[CheckRow] = []
    # "mean" averages over every element: inputs of shape (3, 4), (5,) and (2, 3, 2) catch a
    # mean that divides by the batch size (right only for (N, 1)).
    cases = (
        ("mean", rng.normal(scale=3.0, size=(6, 1)), "logits (6, 1)"),
        ("mean", rng.normal(scale=3.0, size=(3, 4)), "logits (3, 4)"),
        ("mean", rng.normal(scale=3.0, size=(5,)), "logits (5,)"),
        ("mean", rng.normal(scale=3.0, size=(2, 3, 2)), "logits (2, 3, 2)"),
        ("sum", rng.normal(scale=3.0, size=(3, 4)), "logits (3, 4)"),
        ("sum", rng.normal(scale=3.0, size=(1, 1)), "logits (1, 1)"),
        ("mean", np.array([[1e3], [-1e3], [40.0], [-40.0]]), "logits of +-1e3 and +-40"),
    )
    for reduction, z, what in cases:
        case = f'BCEWithLogitsLoss(reduction="{reduction}"), {what}, soft targets'
        rows += _bce_case(cls, reduction, z, case, rng)
    case = "BCEWithLogitsLoss(): backward() without dout means dout = 1"
    z = rng.normal(size=(5, 1))
    y = rng.uniform(size=z.shape)
    try:
        loss = cls()
        loss.forward(z, y)
        _, cache = F.bce_with_logits_forward(z, y)
        expected = F.bce_with_logits_backward(np.asarray(1.0), cache)
        rows.append(_compare_row(case, "input", loss.backward(), expected, "dz"))
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    return rows


def _make_discriminator(dim: int, hidden: int, act: str, rng):
    from .layers import LeakyReLU, Linear, Sequential, Tanh

    return Sequential(
        Linear(dim, hidden, dtype="float64", rng=_seed(rng)),
        LeakyReLU(0.2) if act == "leaky_relu" else Tanh(),
        Linear(hidden, 1, dtype="float64", rng=_seed(rng)),
    )


def _d_state(D) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    params = {k: np.array(v.data) for k, v in D.named_parameters()}
    grads = {k: np.array(v.grad) for k, v in D.named_parameters()}
    return params, grads


def _check_d_leaves_d_alone(fn, rng) -> list[CheckRow]:
    """The exercise says: D's parameters, gradients and requires_grad are as before."""
    case = "D = Linear(3, 6) -> leaky_relu -> Linear(6, 1): D and fake are left as they were"
    try:
        D = _make_discriminator(3, 6, "leaky_relu", rng)
        D.zero_grad()
        fake = _away_from_zero(rng, (4, 3), 0.05, 1.5)
        fake_arg = fake.copy()
        params, grads = _d_state(D)
        fn(D, fake_arg)
        new_params, new_grads = _d_state(D)
        rows = _unchanged_rows(case, {"fake": fake}, {"fake": fake_arg}, "")
        for label, old, new in (("D.params", params, new_params), ("D.grads", grads, new_grads)):
            changed = [k for k in old if not np.array_equal(old[k], new.get(k))]
            detail = (
                f"unchanged ({len(old)} arrays)"
                if not changed
                else f"changed: {', '.join(changed)} (only dL_D/d(fake) is wanted; freeze D "
                "with requires_grad_(False) while you backpropagate)"
            )
            rows.append(CheckRow(case, label, not changed, detail))
        frozen = [type(m).__name__ for m in D.modules() if not m.requires_grad]
        rows.append(
            CheckRow(
                case,
                "D.requires_grad",
                not frozen,
                "as before (True)"
                if not frozen
                else f"left frozen: {', '.join(frozen)} (unfreeze D again before returning)",
            )
        )
        return rows
    except _CAUGHT as exc:
        return [_error_row(case, exc)]


def _check_d_loss_grad_fake(mod, rng) -> list[CheckRow]:
    from .losses import BCEWithLogitsLoss

    fn = _get(mod, "d_loss_grad_fake")
    rows: list[CheckRow] = []
    for n, dim, hidden, act in ((6, 3, 8, "leaky_relu"), (10, 2, 5, "tanh"), (1, 4, 3, "tanh")):
        case = f"D = Linear({dim}, {hidden}) -> {act} -> Linear({hidden}, 1), fake ({n}, {dim})"
        D = _make_discriminator(dim, hidden, act, rng)
        fake = _away_from_zero(rng, (n, dim), 0.05, 1.5)
        dout = np.asarray(rng.uniform(0.5, 2.0))
        ref_loss = BCEWithLogitsLoss()

        def fwd(f, D=D, ref_loss=ref_loss):
            logits = D.forward(f)
            return ref_loss.forward(logits, np.zeros_like(logits)), None

        def bwd(d, _cache, D=D, fake=fake):
            g = fn(D, fake.copy())
            return ((None if g is None else d * np.asarray(g)),)

        try:
            rows += _rows_from(case, check_function(fwd, bwd, fake, names=["fake"], dout=dout))
        except _CAUGHT as exc:
            rows.append(_error_row(case, exc))
    return rows + _check_d_leaves_d_alone(fn, rng)


# ----------------------------------------------------------------------------------------------
# Part 2 (exercises/student_conv.py): Conv2d, BatchNorm, the hinge loss, the gradient penalty
# ----------------------------------------------------------------------------------------------
def _layer_state(layer) -> dict[str, np.ndarray]:
    """Copies of the parameters and buffers (``running_mean``, ...): backward leaves them."""
    state = {k: np.array(v) for k, v in layer.params.items()}
    state.update({k: np.array(v) for k, v in getattr(layer, "buffers", {}).items()})
    return state


def _layer_now(layer) -> dict[str, Any]:
    return {**layer.params, **getattr(layer, "buffers", {})}


def _check_layer_contract(make, ref_forward, reference, x, label: str, rng) -> list[CheckRow]:
    """Accumulation, ``input_grad=False``, a frozen layer, no side effects, for one input.

    ``make()`` builds a float64 layer; ``ref_forward(layer, x)`` is minigan's output and
    ``reference(layer, x, dout)`` minigan's ``(dx, {param: grad})`` for that layer.
    """
    rows: list[CheckRow] = []
    dout = rng.standard_normal(np.shape(ref_forward(make(), x)))
    dx_ref, expected = reference(make(), x, dout)
    case = f"{label}: two backward calls add up, input_grad=False still adds the grads"
    try:
        layer = make()
        layer.zero_grad()
        layer.forward(x.copy())
        rows.append(_none_row(case, layer.backward(dout.copy(), input_grad=False)))
        layer.forward(x.copy())
        layer.backward(dout.copy())
        for k, ref in expected.items():  # one call with input_grad=False, one without: 2x
            rows.append(_compare_row(case, k, layer.grads.get(k), 2 * ref, f"grads[{k!r}]"))
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    case = f"{label}, frozen with requires_grad_(False): grads untouched, dx still right"
    try:
        layer = make()
        layer.zero_grad()
        layer.requires_grad_(False)
        before = _grads_copy(layer)
        layer.forward(x.copy())
        rows.append(_compare_row(case, "input", layer.backward(dout.copy()), dx_ref, "dx"))
        rows += _unchanged_rows(case, before, layer.grads, "a frozen layer adds no gradient")
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    case = f"{label}: backward leaves dout, x, the parameters and buffers alone"
    try:
        layer = make()
        x_arg, dout_arg = x.copy(), dout.copy()
        layer.forward(x_arg)
        state = _layer_state(layer)
        layer.backward(dout_arg)
        rows += _unchanged_rows(case, {"dout": dout, "x": x}, {"dout": dout_arg, "x": x_arg}, "")
        rows += _unchanged_rows(case, state, _layer_now(layer), "backward must not update them")
    except _CAUGHT as exc:
        rows.append(_error_row(case, exc))
    return rows


def _gradcheck_layer(make, ref_forward, x, case: str, rng) -> list[CheckRow]:
    """The given forward still matches minigan's, and check_module on every tensor."""
    try:
        layer = make()
        rows = [
            _compare_row(case, "output", layer.forward(x.copy()), ref_forward(layer, x), "forward")
        ]
        return rows + _rows_from(case, check_module(make(), x, seed=_seed(rng)))
    except _CAUGHT as exc:
        return [_error_row(case, exc)]


def _conv_reference(layer, x, dout):
    p = layer.params
    _, cache = F.conv2d_forward(x, p["weight"], p.get("bias"), layer.stride, layer.padding)
    dx, dw, db = F.conv2d_backward(dout, cache)
    return dx, ({"weight": dw} if db is None else {"weight": dw, "bias": db})


def _conv_forward(layer, x):
    p = layer.params
    return F.conv2d_forward(x, p["weight"], p.get("bias"), layer.stride, layer.padding)[0]


def _check_conv2d(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "Conv2d")
    rows: list[CheckRow] = []
    # (N, C_in, H, W), C_out, kernel, stride, padding, bias. Non-square inputs and kernels
    # (an H/W swap), stride 2 with rows no window reads, padding 1 (dx of the unpadded
    # input), batch 1 and batch > 1 (db from one image), no bias.
    for shape, c_out, k, s, p, bias in (
        ((2, 3, 5, 7), 4, 3, 2, 1, True),
        ((1, 2, 6, 4), 3, (3, 2), 1, 1, True),
        ((3, 2, 4, 5), 2, 2, 2, 0, True),
        ((2, 3, 5, 5), 2, 3, 1, 0, False),
    ):
        b = "" if bias else ", bias=False"
        label = f"Conv2d({shape[1]}, {c_out}, {k}, stride={s}, padding={p}{b}), x {shape}"
        x = rng.standard_normal(shape)
        seed = _seed(rng)

        def make(shape=shape, c_out=c_out, k=k, s=s, p=p, bias=bias, seed=seed):
            return cls(shape[1], c_out, k, s, p, bias, dtype="float64", rng=seed)

        rows += _gradcheck_layer(make, _conv_forward, x, label, rng)
    x = rng.standard_normal((2, 3, 5, 7))
    seed = _seed(rng)
    rows += _check_layer_contract(
        lambda: cls(3, 4, 3, 2, 1, dtype="float64", rng=seed),
        _conv_forward,
        _conv_reference,
        x,
        "Conv2d(3, 4, 3, stride=2, padding=1), x (2, 3, 5, 7)",
        rng,
    )
    return rows


def _bn_randomise(layer, rng_seed: int):
    """weight != 1 and bias != 0: a dx that forgets the scale must not pass."""
    g = np.random.default_rng(rng_seed)
    c = layer.params["weight"].shape[0]
    layer.params["weight"][...] = g.uniform(0.5, 2.0, c) * g.choice([-1.0, 1.0], c)
    layer.params["bias"][...] = g.standard_normal(c)
    return layer


def _bn_forward(layer, x):
    return F.batch_norm_forward(x, layer.params["weight"], layer.params["bias"], eps=layer.eps)[0]


def _bn_reference(layer, x, dout):
    p = layer.params
    _, cache = F.batch_norm_forward(x, p["weight"], p["bias"], eps=layer.eps)
    dx, dw, db = F.batch_norm_backward(dout, cache)
    return dx, {"weight": dw, "bias": db}


def _check_batch_norm(mod, rng) -> list[CheckRow]:
    classes = {"BatchNorm1d": _get(mod, "BatchNorm1d"), "BatchNorm2d": _get(mod, "BatchNorm2d")}
    rows: list[CheckRow] = []
    # Training mode. (N, C) and (N, C, H, W); the count per channel is N*H*W, not N (2-d
    # cases tell a per-batch count from a per-element one); batch 2 (the smallest batch),
    # non-square maps, a single channel.
    for name, shape in (
        ("BatchNorm1d", (6, 3)),
        ("BatchNorm1d", (2, 4)),
        ("BatchNorm2d", (3, 2, 2, 3)),
        ("BatchNorm2d", (2, 1, 3, 2)),
    ):
        label = f"{name}({shape[1]}), training, x {shape}"
        x = rng.normal(1.0, 2.0, shape)  # mean != 0, var != 1: both statistics matter
        seed = _seed(rng)

        def make(cls=classes[name], c=shape[1], seed=seed):
            return _bn_randomise(cls(c, dtype="float64"), seed)

        rows += _gradcheck_layer(make, _bn_forward, x, label, rng)
    for name, shape in (("BatchNorm1d", (5, 3)), ("BatchNorm2d", (2, 3, 3, 2))):
        seed = _seed(rng)
        rows += _check_layer_contract(
            lambda cls=classes[name], c=shape[1], seed=seed: _bn_randomise(
                cls(c, dtype="float64"), seed
            ),
            _bn_forward,
            _bn_reference,
            rng.normal(1.0, 2.0, shape),
            f"{name}({shape[1]}), x {shape}",
            rng,
        )
    return rows


def _hinge_reference(d_real, d_fake):
    from .objectives import Hinge

    return Hinge().d_loss(np.reshape(d_real, (-1, 1)), np.reshape(d_fake, (-1, 1)))[0]


def _away_from(rng, shape, kinks=(-1.0, 1.0), gap=0.1) -> np.ndarray:
    """Normal(0, 1.5) values moved at least ``gap`` away from each kink."""
    x = rng.normal(0.0, 1.5, shape)
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] >= k, gap, -gap) * rng.uniform(1.0, 3.0, int(near.sum()))
    return x


def _check_hinge(mod, rng) -> list[CheckRow]:
    fn = _get(mod, "hinge_loss_grad")
    rows: list[CheckRow] = []
    # Means run over every element: D outputs (N, 1), (N,), patch maps (N, 1, h, w) and real
    # and fake batches of different sizes catch a division by N or by the other batch's size.
    for real_shape, fake_shape in (
        ((6, 1), (6, 1)),
        ((5,), (3,)),
        ((2, 1, 3, 2), (3, 1, 3, 2)),
        ((1, 1), (4, 1)),
    ):
        case = f"hinge, d_real {real_shape}, d_fake {fake_shape}"
        d_real, d_fake = _away_from(rng, real_shape), _away_from(rng, fake_shape)
        dout = np.asarray(rng.uniform(0.5, 2.0))
        try:
            args = (d_real.copy(), d_fake.copy())
            got = fn(*args)
            rows += _unchanged_rows(
                case,
                {"d_real": d_real, "d_fake": d_fake},
                dict(zip(("d_real", "d_fake"), args, strict=True)),
                "",
            )
            if not (isinstance(got, (tuple, list)) and len(got) == 3):
                raise TypeError(f"expected a tuple of three arrays, got {type(got).__name__}")
            grads = [None if g is None else dout * np.asarray(g, dtype=np.float64) for g in got]
            report = check_function(
                lambda r, f: (_hinge_reference(r, f), None),
                lambda d, _c, g=grads: (g[0], g[1]),
                d_real,
                d_fake,
                names=["d_real", "d_fake"],
                dout=dout,
            )
            rows += _rows_from(case, report, {"d_real": "D.d_real", "d_fake": "D.d_fake"})
            report = check_function(
                lambda f: (-np.mean(f), None),
                lambda d, _c, g=grads: (g[2],),
                d_fake,
                names=["d_fake"],
                dout=dout,
            )
            rows += _rows_from(case, report, {"d_fake": "G.d_fake"})
        except _CAUGHT as exc:
            rows.append(_error_row(case, exc))
    # The given forward passes are rows of the first case: unchanged forwards earn nothing
    # on their own (the skeleton scores 0).
    return _check_given_hinge(mod, rng, rows[0].case) + rows


def _check_given_hinge(mod, rng, case: str) -> list[CheckRow]:
    """hinge_d_loss and hinge_g_loss (given) still compute minigan's losses."""
    d_real, d_fake = _away_from(rng, (4, 1)), _away_from(rng, (4, 1))
    try:
        d = _compare_row(
            case,
            "output",
            _get(mod, "hinge_d_loss")(d_real, d_fake),
            _hinge_reference(d_real, d_fake),
            "L_D",
        )
        g = _compare_row(case, "output", _get(mod, "hinge_g_loss")(d_fake), -np.mean(d_fake), "L_G")
        return [d, g]
    except _CAUGHT as exc:
        return [_error_row(case, exc)]


def _gp_reference_critic(W1, b1, W2, b2):
    """minigan's Linear -> Tanh -> Linear with these weights (float64)."""
    from .layers import Linear, Sequential, Tanh

    critic = Sequential(
        Linear(W1.shape[1], W1.shape[0], dtype="float64"),
        Tanh(),
        Linear(W1.shape[0], 1, dtype="float64"),
    )
    for (_, v), w in zip(critic.named_parameters(), (W1, b1, W2, b2), strict=True):
        v.data[...] = w
    return critic


def _gp_penalty(x, W1, b1, W2, b2, weight):
    """The penalty by minigan.objectives.gradient_penalty on the same critic."""
    from .objectives import gradient_penalty

    critic = _gp_reference_critic(W1, b1, W2, b2)
    critic.requires_grad_(False)
    return gradient_penalty(critic, x, weight)


def _check_gradient_penalty(mod, rng) -> list[CheckRow]:
    fn = _get(mod, "gradient_penalty_grad")
    rows: list[CheckRow] = []
    # Batch 1 and batch > 1 (the mean over N), non-square W1 both ways, lambda 10 and 1.
    for n, d, h, weight in ((6, 3, 5, 10.0), (1, 4, 2, 10.0), (4, 2, 3, 1.0)):
        case = f"critic Linear({d}, {h}) -> tanh -> Linear({h}, 1), x ({n}, {d}), weight {weight:g}"
        x = rng.standard_normal((n, d))
        W1, b1 = rng.normal(0, 0.8, (h, d)), rng.normal(0, 0.5, h)
        W2, b2 = rng.normal(0, 1.0, (1, h)), rng.normal(0, 0.5, 1)
        dout = np.asarray(rng.uniform(0.5, 2.0))
        try:
            args = [a.copy() for a in (x, W1, b1, W2, b2)]
            got = fn(*args, weight=weight)
            rows += _unchanged_rows(
                case,
                dict(zip(("x", "W1", "b1", "W2", "b2"), (x, W1, b1, W2, b2), strict=True)),
                dict(zip(("x", "W1", "b1", "W2", "b2"), args, strict=True)),
                "",
            )
            if not (isinstance(got, (tuple, list)) and len(got) == 3):
                raise TypeError(f"expected a tuple (dW1, db1, dW2), got {type(got).__name__}")
            grads = tuple(
                None if g is None else dout * np.asarray(g, dtype=np.float64) for g in got
            )
            report = check_function(
                lambda w1, b1_, w2, x=x, b2=b2, lam=weight: (
                    _gp_penalty(x, w1, b1_, w2, b2, lam),
                    None,
                ),
                lambda dd, _c, g=grads: g,
                W1,
                b1,
                W2,
                names=["W1", "b1", "W2"],
                dout=dout,
            )
            rows += _rows_from(case, report)
        except _CAUGHT as exc:
            rows.append(_error_row(case, exc))
    return _check_given_penalty(mod, rng, rows[0].case) + rows


def _check_given_penalty(mod, rng, case: str) -> list[CheckRow]:
    """gradient_penalty_forward (given) still computes minigan's penalty."""
    x, W1, b1 = rng.standard_normal((3, 2)), rng.standard_normal((4, 2)), rng.standard_normal(4)
    W2, b2 = rng.standard_normal((1, 4)), rng.standard_normal(1)
    try:
        got = _get(mod, "gradient_penalty_forward")(x, W1, b1, W2, b2, 10.0)
        return [_compare_row(case, "output", got, _gp_penalty(x, W1, b1, W2, b2, 10.0), "P")]
    except _CAUGHT as exc:
        return [_error_row(case, exc)]


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: a registry entry.

    Attributes
    ----------
    key : str
        Used by ``--only`` and ``report[key]``.
    title : str
        Shown in the report.
    lesson : int
    check : callable ``(student_module, numpy.random.Generator) -> list[CheckRow]``
        Runs once per draw with its own seeded Generator; case names must not depend on the
        random values (draws are told apart by a suffix).
    points : float
        Full credit; the exercise earns ``points`` times the fraction of checks passed.
    draws : int
        How many independently seeded runs of ``check`` (more seeds, same shapes).
    may_call : tuple of str
        minigan functions the student's code may call in this exercise, as
        ``"minigan.layers.Sequential.forward"`` (the methods of ``minigan.layers.Module`` are
        always allowed). Any other call into minigan is listed for the teacher.
    sheet : str
        The skeleton file the exercise belongs to (``"student_layers"``: exercises 1-5,
        ``"student_conv"``: 6-9). :func:`grade_file` grades every exercise of each sheet
        whose names the file defines (see :func:`exercises_for`).
    names : tuple of str
        The names the student's file defines for this exercise (``("Conv2d",)``).
    """

    key: str
    title: str
    lesson: int
    check: Callable[[Any, np.random.Generator], list[CheckRow]]
    points: float = 1.0
    draws: int = 2
    may_call: tuple[str, ...] = ()
    sheet: str = "student_layers"
    names: tuple[str, ...] = ()


EXERCISES: tuple[Exercise, ...] = (
    Exercise("leaky_relu", "1. LeakyReLU.backward", 3, _check_leaky_relu, names=("LeakyReLU",)),
    Exercise("sigmoid", "2. Sigmoid.backward", 3, _check_sigmoid, names=("Sigmoid",)),
    Exercise("linear", "3. Linear.backward", 2, _check_linear, names=("Linear",)),
    Exercise(
        "bce_with_logits",
        "4. BCEWithLogitsLoss.backward",
        4,
        _check_bce,
        names=("BCEWithLogitsLoss",),
    ),
    Exercise(
        "d_loss_grad_fake",
        "5. d_loss_grad_fake (D's loss into G's output)",
        8,
        _check_d_loss_grad_fake,
        # D is a minigan network handed to the student: running it is the exercise.
        may_call=("minigan.layers.Sequential.forward", "minigan.layers.Sequential.backward"),
        names=("d_loss_grad_fake",),
    ),
    Exercise(
        "conv2d_backward",
        "6. Conv2d.backward",
        12,
        _check_conv2d,
        sheet="student_conv",
        names=("Conv2d",),
    ),
    Exercise(
        "batch_norm_backward",
        "7. BatchNorm1d/2d.backward (training mode)",
        14,
        _check_batch_norm,
        sheet="student_conv",
        names=("BatchNorm1d", "BatchNorm2d"),
    ),
    Exercise(
        "hinge_loss_grad",
        "8. hinge_loss_grad (D's and G's hinge losses into D's outputs)",
        16,
        _check_hinge,
        sheet="student_conv",
        names=("hinge_loss_grad", "hinge_d_loss", "hinge_g_loss"),
    ),
    Exercise(
        "gradient_penalty_grad",
        "9. gradient_penalty_grad (WGAN-GP penalty into a two-layer critic's weights)",
        16,
        _check_gradient_penalty,
        sheet="student_conv",
        names=("gradient_penalty_grad", "gradient_penalty_forward"),
    ),
)


# ----------------------------------------------------------------------------------------------
# Watching what the student's code calls in minigan
# ----------------------------------------------------------------------------------------------
class _MiniganCalls:
    """A ``sys.setprofile`` hook: records calls from code outside minigan into minigan.

    However the student reached minigan (``from minigan.functional import ...``,
    ``importlib.import_module("minigan.layers")``, ``sys.modules[...]``), a call into one of
    its Python functions shows up here with its qualified name.
    """

    def __init__(self, allowed: set[str]):
        self.allowed = allowed
        self.calls: list[str] = []
        self._package = str(_PACKAGE_DIR) + os.sep

    def __call__(self, frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(self._package):
            return
        caller = frame.f_back
        where = caller.f_code.co_filename if caller is not None else "<"
        if where.startswith(self._package) or where.startswith("<"):
            return  # minigan calling itself, or the import machinery
        name = f"{frame.f_globals.get('__name__', '?')}.{_qualname(frame.f_code)}"
        if name not in self.allowed and name not in self.calls:
            self.calls.append(name)


def _qualname(code) -> str:
    return getattr(code, "co_qualname", code.co_name)  # co_qualname: Python >= 3.11


def _always_allowed() -> set[str]:
    from .layers import Module

    return {f"minigan.layers.Module.{name}" for name in vars(Module)}


def _namespace_references(module) -> list[str]:
    """minigan objects the imported module holds, other than ``Module`` and ``gradcheck``."""
    found = []
    for value in list(vars(module).values()):
        name = getattr(value, "__name__", None) if isinstance(value, type(np)) else None
        if name is None:
            owner = getattr(value, "__module__", None)
            qual = getattr(value, "__qualname__", None)
            name = f"{owner}.{qual}" if isinstance(owner, str) and isinstance(qual, str) else None
        if not name or name.split(".")[0] != "minigan":
            continue
        if name in ("minigan.layers.Module", "minigan.gradcheck") or name.startswith(
            "minigan.gradcheck."
        ):
            continue
        if isinstance(value, type) and value.__module__ == module.__name__:
            continue
        found.append(name)
    return found


def _minigan_imports(path: Path) -> list[str]:
    """Names the file's import statements take from minigan (other than Module, gradcheck)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    allowed = {"minigan.layers.Module", "minigan.Module"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "minigan"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "minigan":
            found += [f"{node.module}.{a.name}" for a in node.names]
    return [f for f in found if f not in allowed and not f.startswith("minigan.gradcheck")]


# ----------------------------------------------------------------------------------------------
# Grading in this process (trusted code) ...
# ----------------------------------------------------------------------------------------------
def load_student_module(path: str | Path):
    """Import a student's file as a fresh module (its folder is importable while it loads).

    Runs the file in *this* process: use :func:`grade_file` for files you do not trust.

    Raises
    ------
    FileNotFoundError
        No such file.
    Exception
        Whatever the file raises while being imported (syntax errors included).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = f"minigan_student_{uuid.uuid4().hex[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def _grade_one(module, ex: Exercise, index: int, seed: int) -> ExerciseResult:
    result = ExerciseResult(ex.key, ex.title, ex.lesson, ex.points)
    watch = _MiniganCalls(_always_allowed() | set(ex.may_call))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for draw in range(ex.draws):
            rng = np.random.default_rng([seed, index, draw])  # independent of the selection
            suffix = "" if draw == 0 else f" [seed draw {draw + 1}]"
            previous = sys.getprofile()
            sys.setprofile(watch)
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # students' debug prints
                    rows = ex.check(module, rng)
            except _CAUGHT as exc:
                rows = [_error_row("setup", exc)]
            finally:
                sys.setprofile(previous)
            result.rows += [CheckRow(r.case + suffix, r.tensor, r.passed, r.detail) for r in rows]
    # Overflow / invalid-value warnings point at unstable formulas; list them.
    seen = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
    result.notes += [f"RuntimeWarning during the checks: {m}" for m in seen]
    if watch.calls:
        result.notes.append(
            "the code called minigan's own functions (is this the student's work?): "
            + ", ".join(watch.calls)
        )
    return result


def grade_module(module, *, path: str = "<module>", exercises=None, seed: int = 0) -> GradeReport:
    """Grade an already imported module in this process (trusted code; see :func:`grade_file`).

    Parameters
    ----------
    module : module or object with the exercise names as attributes
    path : str
        Shown in the report.
    exercises : list of str, optional
        Keys of :data:`EXERCISES` (default: the sheets whose names the module defines,
        :func:`exercises_for`).
    seed : int

    Returns
    -------
    GradeReport

    Raises
    ------
    ValueError
        An unknown exercise key.
    """
    chosen = _select(exercises, dir(module))
    report = GradeReport(path)
    for ex in chosen:
        report.exercises.append(_grade_one(module, ex, EXERCISES.index(ex), seed))
    extra = _namespace_references(module)
    if extra:
        report.warnings.append(_imports_warning(extra))
    return report


def _imports_warning(names) -> str:
    return "uses minigan (check the backward passes are the student's own): " + ", ".join(
        dict.fromkeys(names)
    )


def exercises_for(names) -> list[Exercise]:
    """The exercises a file that defines ``names`` is graded on, in registry order.

    Every exercise of each sheet (``Exercise.sheet``) one of whose exercises' names is among
    ``names``; a file that defines none of them (an empty or broken file) gets the first
    sheet, ``student_layers``. So ``exercises/student_layers.py`` is graded on exercises 1-5,
    ``exercises/student_conv.py`` on 6-9, a file with both on all nine, and a file missing one
    name of its sheet fails that exercise (instead of skipping it).

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    list of Exercise
    """
    names = set(names)
    sheets = {e.sheet for e in EXERCISES if names & set(e.names)} or {EXERCISES[0].sheet}
    return [e for e in EXERCISES if e.sheet in sheets]


def _defined_names(path: Path) -> set[str]:
    """Names the file binds at module level (defs, classes, assignments, imports), read
    from its source without running it (an unparsable file defines none)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
        return set()
    found: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                found.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for part in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, part, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)
    return found


def _select(exercises, names=None) -> list[Exercise]:
    if exercises is None:
        return list(EXERCISES) if names is None else exercises_for(names)
    keys = {e.key: e for e in EXERCISES}
    unknown = [k for k in exercises if k not in keys]
    if unknown:
        raise ValueError(f"exercises: unknown {unknown}; expected some of {list(keys)}")
    return [keys[k] for k in exercises]


# ----------------------------------------------------------------------------------------------
# ... and in a separate process, for students' files
# ----------------------------------------------------------------------------------------------
def _failed_report(path: str, chosen, why: str, warning: str) -> GradeReport:
    report = GradeReport(path, warnings=[warning])
    for ex in chosen:
        result = ExerciseResult(ex.key, ex.title, ex.lesson, ex.points)
        result.rows = [CheckRow("run", "error", False, why)]
        report.exercises.append(result)
    return report


def _write_result(result_path: Path, token: str, report: GradeReport, done: bool) -> None:
    """Atomic write (temp file + replace): the parent never reads half a result."""
    payload = json.dumps({"token": token, "done": done, "report": report.to_dict()})
    tmp = result_path.with_name(f".{result_path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(payload, encoding="utf-8")
    os.replace(tmp, result_path)


def _worker(path: str, result_path: str, keys: list[str], seed: int, token: str) -> int:
    """The grading process: import the student's file, grade, write the result after each
    exercise. Runs in the child started by :func:`grade_file`."""
    out = Path(result_path)
    chosen = _select(keys)
    report = GradeReport(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = load_student_module(path)
    except _CAUGHT as exc:
        what = (
            f"SystemExit({exc.code!r}) (the file calls sys.exit while it is imported)"
            if isinstance(exc, SystemExit)
            else f"{type(exc).__name__}: {exc}"
        )
        warning = f"the file could not be imported: {what}"
        failed = _failed_report(path, chosen, "the file could not be imported", warning)
        _write_result(out, token, failed, done=True)
        return 0
    extra = _minigan_imports(Path(path)) + _namespace_references(module)
    if extra:
        report.warnings.append(_imports_warning(extra))
    _write_result(out, token, report, done=False)
    for ex in chosen:
        report.exercises.append(_grade_one(module, ex, EXERCISES.index(ex), seed))
        _write_result(out, token, report, done=len(report.exercises) == len(chosen))
    return 0


def _worker_main() -> None:  # pragma: no cover - runs in the child process
    path, result_path, keys, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    token = sys.stdin.readline().strip()  # not on the command line, where ps shows it
    os._exit(_worker(path, result_path, keys.split(",") if keys else [], seed, token))


_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from minigan.grading import _worker_main; _worker_main()"
)


def _run_child(path: Path, result: Path, chosen, seed: int, token: str, timeout: float):
    """Start the grading process; return (exit status or None on timeout, its stderr tail)."""
    cmd = [
        sys.executable,
        "-c",
        _BOOTSTRAP.format(root=str(_PACKAGE_DIR.parent)),
        str(path),
        str(result),
        ",".join(e.key for e in chosen),
        str(seed),
    ]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=result.parent,
            start_new_session=True,  # so a timeout stops the student's children too
        )
        try:
            proc.communicate((token + "\n").encode(), timeout=timeout)
            status = proc.returncode
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = None
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace").strip().splitlines()[-3:]
    return status, " | ".join(tail)


def _read_result(result: Path, token: str):
    """The report the grading process wrote, and whether it finished; None if absent/forged."""
    try:
        data = json.loads(result.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("token") != token:
            return None
        return GradeReport.from_dict(data["report"]), bool(data["done"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _ended_early(status, timeout: float, tail: str) -> str:
    if status is None:
        why = f"timed out after {timeout:g} s (an infinite loop?); the grading process was stopped"
    elif status < 0:
        why = f"the grading process was killed by signal {-status}"
    else:
        why = (
            f"the grading process ended with exit status {status} before it wrote a result "
            "(does the code call sys.exit or os._exit?)"
        )
    return why + (f"; its last error output: {tail}" if tail else "")


def grade_file(
    path: str | Path, *, exercises=None, seed: int = 0, timeout: float = DEFAULT_TIMEOUT
) -> GradeReport:
    """Grade a student's ``student_layers.py`` in a separate process with a time limit.

    Parameters
    ----------
    path : str or Path
        The student's file (a filled-in copy of ``exercises/student_layers.py``). It is
        **executed** (imported and called), in a child Python process.
    exercises : list of str, optional
        Keys of :data:`EXERCISES` to grade (default: every exercise of the sheets whose
        names the file defines, read from its source: :func:`exercises_for`; exercises 1-5
        for a copy of ``student_layers.py``, 6-9 for ``student_conv.py``).
    seed : int
        Seeds the inputs and upstream gradients (same seed, same report).
    timeout : float
        Seconds the grading process may take (default :data:`DEFAULT_TIMEOUT`); then it is
        killed and the exercises not finished fail.

    Returns
    -------
    GradeReport
        ``report.score`` / ``report.total`` (partial credit), ``report.n_passed``,
        ``report["linear"].failed_tensors``; ``print(report)`` gives the readable report.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        An unknown exercise key, or ``timeout`` not > 0.

    Notes
    -----
    The verdict is read only from a result file that the grading process writes after each
    exercise, carrying a random token the parent sent it on stdin. No file, a garbled file or
    a wrong token fails every exercise; a process that ends early (``sys.exit``, ``os._exit``, a
    crash, the time limit) fails the exercises it had not finished, and the report says why.
    ``SystemExit`` raised inside a checked method fails that check. A file that fails to import
    gets a report with every exercise failed and the error as a warning (it does not raise).
    Gradient checks use :func:`minigan.gradcheck.check_module` and
    :func:`minigan.gradcheck.check_function` with their default tolerances
    (``|a - n| <= 1e-5 + 1e-3 |n|``) in float64.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout: expected seconds > 0, got {timeout!r}")
    chosen = _select(exercises, _defined_names(path))
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="minigan-check-") as tmp:
        result = Path(tmp) / "result.json"
        start = time.monotonic()
        status, tail = _run_child(path.resolve(), result, chosen, seed, token, timeout)
        got = _read_result(result, token)
    if got is None:
        why = _ended_early(status, timeout, tail)
        return _failed_report(str(path), chosen, why, why)
    report, done = got
    report.path = str(path)
    if not done:
        why = _ended_early(status, timeout, tail)
        report.warnings.append(why)
        finished = {e.key for e in report.exercises}
        for ex in chosen:
            if ex.key not in finished:
                result_ex = ExerciseResult(ex.key, ex.title, ex.lesson, ex.points)
                result_ex.rows = [CheckRow("run", "error", False, f"not graded: {why}")]
                report.exercises.append(result_ex)
        report.exercises.sort(key=lambda e: [c.key for c in chosen].index(e.key))
    elif status != 0:
        report.warnings.append(
            f"the grading process exited with status {status} after writing its result"
            f" ({time.monotonic() - start:.1f} s)"
        )
    return report
