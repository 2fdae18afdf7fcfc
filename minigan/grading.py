"""Grade students' backward passes: ``minigan check path/to/student_layers.py``.

The coursework skeleton ``exercises/student_layers.py`` asks for five backward passes
(``LeakyReLU``, ``Sigmoid``, ``Linear``, ``BCEWithLogitsLoss`` and ``d_loss_grad_fake``, the
gradient of the discriminator's loss into the generator's output). :func:`grade_file` imports a
student's file, runs the same gradient checks a student runs with :mod:`minigan.gradcheck`
(float64, central differences, random upstream gradients, inputs away from kinks), plus the
checks finite differences cannot see (gradients *accumulate* over two backward calls; a layer
without bias; logits of +-1e3 stay finite; the forward pass still matches minigan's), and
returns a :class:`GradeReport`: one row per case and tensor, and a score such as ``4/5``.

An exercise passes when every row passes. Failures name the tensor (``"input"``, ``"weight"``,
``"bias"``, ``"fake"``), the worst element, and the analytic and numeric values there.

Warning: grading *runs* the student's file. Grade untrusted files in a sandbox.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import sys
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
    "load_student_module",
]

_PACKAGE_DIR = Path(__file__).resolve().parent

# Tolerances of minigan.gradcheck (torch.autograd.gradcheck's criterion), used unchanged.
_ATOL, _RTOL = 1e-5, 1e-3


@dataclass
class CheckRow:
    """One checked tensor in one case.

    Attributes
    ----------
    case : str
        What was run, e.g. ``"Linear(4, 3), x (5, 4)"``.
    tensor : str
        ``"input"``, a parameter name (``"weight"``, ``"bias"``), ``"fake"``, ``"output"``
        (the forward pass) or ``"error"`` (the code raised).
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
    """The result of one exercise: its rows, and whether all passed."""

    key: str
    title: str
    lesson: int
    rows: list[CheckRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when there is at least one row and every row passed."""
        return bool(self.rows) and all(r.passed for r in self.rows)

    @property
    def failed_tensors(self) -> list[str]:
        """Names of the failing tensors, in order, without repeats."""
        out: list[str] = []
        for r in self.rows:
            if not r.passed and r.tensor not in out:
                out.append(r.tensor)
        return out

    def format(self, verbose: bool = False) -> str:
        """The exercise's block of the report: a PASS/FAIL head line, then the failing rows
        grouped by case (every row when ``verbose``), then notes."""
        head = f"[{'PASS' if self.passed else 'FAIL'}] {self.title}  (lesson {self.lesson})"
        if self.passed and not verbose:
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


@dataclass
class GradeReport:
    """Per-exercise, per-tensor results of grading one file; ``str()`` is the printed report.

    Attributes
    ----------
    path : str
    exercises : list of ExerciseResult
    warnings : list of str
        File-level remarks for the teacher (import failures, minigan imports to look at).
    """

    path: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def score(self) -> int:
        """Number of exercises passed."""
        return sum(e.passed for e in self.exercises)

    @property
    def total(self) -> int:
        """Number of exercises graded."""
        return len(self.exercises)

    @property
    def passed(self) -> bool:
        """True when every exercise passed."""
        return self.score == self.total

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
        lines.append(f"Score: {self.score}/{self.total}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (for gradebooks)."""
        return {
            "path": self.path,
            "score": self.score,
            "total": self.total,
            "warnings": list(self.warnings),
            "exercises": [
                {
                    "key": e.key,
                    "title": e.title,
                    "passed": e.passed,
                    "failed_tensors": e.failed_tensors,
                    "rows": [vars(r).copy() for r in e.rows],
                    "notes": list(e.notes),
                }
                for e in self.exercises
            ],
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


def _away_from_zero(rng: np.random.Generator, shape, low=0.1, high=2.0) -> np.ndarray:
    """Uniform magnitudes in [low, high] with random signs: no element near a kink."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _get(module, name: str):
    if not hasattr(module, name):
        raise AttributeError(f"the file defines no {name!r}")
    return getattr(module, name)


# ----------------------------------------------------------------------------------------------
# The exercises
# ----------------------------------------------------------------------------------------------
def _check_leaky_relu(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "LeakyReLU")
    rows: list[CheckRow] = []
    # The default slope (0.01) and the GAN slope (0.2): a hard-coded slope fails one of them.
    for slope in (None, 0.2):
        case = "LeakyReLU()" if slope is None else f"LeakyReLU(negative_slope={slope})"
        x = _away_from_zero(rng, (4, 5))
        case += ", x (4, 5)"
        try:
            layer = cls() if slope is None else cls(slope)
            ref, _ = F.leaky_relu_forward(x, 0.01 if slope is None else slope)
            rows.append(_compare_row(case, "output", layer.forward(x), ref, "forward"))
            rows += _rows_from(case, check_module(layer, x, seed=int(rng.integers(1 << 31))))
        except Exception as exc:
            rows.append(_error_row(case, exc))
    return rows


def _check_sigmoid(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "Sigmoid")
    rows: list[CheckRow] = []
    case = "Sigmoid(), x (4, 5)"
    x = rng.normal(scale=2.0, size=(4, 5))
    try:
        layer = cls()
        rows.append(_compare_row(case, "output", layer.forward(x), F.sigmoid(x), "forward"))
        rows += _rows_from(case, check_module(layer, x, seed=int(rng.integers(1 << 31))))
    except Exception as exc:
        rows.append(_error_row(case, exc))
    case = "Sigmoid(), x of +-1e3 (saturated)"
    x = np.array([[1e3, -1e3, 30.0, -30.0]])
    dout = rng.standard_normal(x.shape)
    try:
        layer = cls()
        layer.forward(x)
        expected = F.sigmoid_backward(dout, F.sigmoid_forward(x)[1])
        rows.append(_compare_row(case, "input", layer.backward(dout), expected, "dx"))
    except Exception as exc:
        rows.append(_error_row(case, exc))
    return rows


def _check_linear(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "Linear")
    rows: list[CheckRow] = []
    # Non-square catches shape slips; square catches transposes that keep the shape.
    for n_in, n_out, bias in ((4, 3, True), (3, 3, True), (4, 3, False)):
        case = f"Linear({n_in}, {n_out}{'' if bias else ', bias=False'}), x (5, {n_in})"
        x = rng.standard_normal((5, n_in))
        try:
            layer = cls(n_in, n_out, bias, dtype="float64", rng=int(rng.integers(1 << 31)))
            ref, _ = F.linear_forward(x, layer.params["weight"], layer.params.get("bias"))
            rows.append(_compare_row(case, "output", layer.forward(x), ref, "forward"))
            rows += _rows_from(case, check_module(layer, x, seed=int(rng.integers(1 << 31))))
        except Exception as exc:
            rows.append(_error_row(case, exc))
    # Accumulation: two backward passes must add up (minigan's layer contract, as PyTorch).
    case = "Linear(4, 3): two backward calls must add up (2x one call)"
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 3))
    try:
        layer = cls(4, 3, dtype="float64", rng=int(rng.integers(1 << 31)))
        layer.zero_grad()
        layer.forward(x)
        layer.backward(dout)
        once = {k: np.array(v, dtype=np.float64) for k, v in layer.grads.items()}
        layer.forward(x)
        layer.backward(dout)
        for k in ("weight", "bias"):
            if k not in layer.grads:
                rows.append(CheckRow(case, k, False, f"grads has no {k!r} key"))
                continue
            got = np.asarray(layer.grads[k], dtype=np.float64)
            ratio = float(np.sum(got * once[k]) / max(np.sum(once[k] * once[k]), 1e-300))
            ok = bool(np.allclose(got, 2 * once[k], rtol=1e-12, atol=1e-12))
            rows.append(
                CheckRow(
                    case,
                    k,
                    ok,
                    "accumulated: grad after two calls is 2x one call"
                    if ok
                    else f"not accumulated: after two calls the grad is {ratio:.2f}x one call "
                    "(expected 2x; use += into self.grads)",
                )
            )
    except Exception as exc:
        rows.append(_error_row(case, exc))
    return rows


def _check_bce(mod, rng) -> list[CheckRow]:
    cls = _get(mod, "BCEWithLogitsLoss")
    rows: list[CheckRow] = []
    cases = (
        ("mean", rng.normal(scale=3.0, size=(6, 1)), "logits (6, 1), soft targets"),
        ("sum", rng.normal(scale=3.0, size=(3, 4)), "logits (3, 4), soft targets"),
        ("mean", np.array([[1e3], [-1e3], [40.0], [-40.0]]), "logits of +-1e3 and +-40"),
    )
    for reduction, z, what in cases:
        case = f'BCEWithLogitsLoss(reduction="{reduction}"), {what}'
        y = rng.uniform(size=z.shape)
        dout = np.asarray(rng.uniform(0.5, 2.0))  # a scalar upstream gradient, not 1
        try:
            loss = cls(reduction)
            ref, _ = F.bce_with_logits_forward(z, y, reduction)
            rows.append(_compare_row(case, "output", loss.forward(z, y), ref, "forward"))

            def fwd(z_, y_, loss=loss):
                return loss.forward(z_, y_), None

            def bwd(d, _cache, loss=loss):
                return loss.backward(d), None

            report = check_function(
                fwd, bwd, z, y, names=["input", "target"], dout=dout, atol=_ATOL, rtol=_RTOL
            )
            rows += _rows_from(case, report)
        except Exception as exc:
            rows.append(_error_row(case, exc))
    case = "BCEWithLogitsLoss(): backward() without dout means dout = 1"
    z = rng.normal(size=(5, 1))
    y = rng.uniform(size=z.shape)
    try:
        loss = cls()
        loss.forward(z, y)
        _, cache = F.bce_with_logits_forward(z, y)
        expected = F.bce_with_logits_backward(np.asarray(1.0), cache)
        rows.append(_compare_row(case, "input", loss.backward(), expected, "dz"))
    except Exception as exc:
        rows.append(_error_row(case, exc))
    return rows


def _check_d_loss_grad_fake(mod, rng) -> list[CheckRow]:
    from .layers import LeakyReLU, Linear, Sequential, Tanh
    from .losses import BCEWithLogitsLoss

    fn = _get(mod, "d_loss_grad_fake")
    rows: list[CheckRow] = []
    for n, dim, hidden, act in ((6, 3, 8, "leaky_relu"), (10, 2, 5, "tanh")):
        case = f"D = Linear({dim}, {hidden}) -> {act} -> Linear({hidden}, 1), fake ({n}, {dim})"
        seeds = [int(s) for s in rng.integers(1 << 31, size=2)]
        D = Sequential(
            Linear(dim, hidden, dtype="float64", rng=seeds[0]),
            LeakyReLU(0.2) if act == "leaky_relu" else Tanh(),
            Linear(hidden, 1, dtype="float64", rng=seeds[1]),
        )
        fake = _away_from_zero(rng, (n, dim), 0.05, 1.5)
        dout = np.asarray(rng.uniform(0.5, 2.0))
        ref_loss = BCEWithLogitsLoss()

        def fwd(f, D=D, ref_loss=ref_loss):
            logits = D.forward(f)
            return ref_loss.forward(logits, np.zeros_like(logits)), None

        def bwd(d, _cache, D=D, fake=fake):
            g = fn(D, fake)
            return ((None if g is None else d * np.asarray(g)),)

        try:
            rows += _rows_from(case, check_function(fwd, bwd, fake, names=["fake"], dout=dout))
        except Exception as exc:
            rows.append(_error_row(case, exc))
    return rows


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: a key, the title shown in the report, and its checker."""

    key: str
    title: str
    lesson: int
    check: Callable[[Any, np.random.Generator], list[CheckRow]]


EXERCISES: tuple[Exercise, ...] = (
    Exercise("leaky_relu", "1. LeakyReLU.backward", 3, _check_leaky_relu),
    Exercise("sigmoid", "2. Sigmoid.backward", 3, _check_sigmoid),
    Exercise("linear", "3. Linear.backward", 2, _check_linear),
    Exercise("bce_with_logits", "4. BCEWithLogitsLoss.backward", 4, _check_bce),
    Exercise(
        "d_loss_grad_fake",
        "5. d_loss_grad_fake (D's loss into G's output)",
        8,
        _check_d_loss_grad_fake,
    ),
)


# ----------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------
def load_student_module(path: str | Path):
    """Import a student's file as a fresh module (its folder is importable while it loads).

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


def _minigan_imports(path: Path) -> list[str]:
    """Names the file imports from minigan, other than the Module base class and gradcheck."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return []
    allowed = {"minigan.layers.Module", "minigan.Module"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "minigan"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "minigan":
            found += [f"{node.module}.{a.name}" for a in node.names]
    return [f for f in found if f not in allowed and not f.startswith("minigan.gradcheck")]


def grade_module(module, *, path: str = "<module>", exercises=None, seed: int = 0) -> GradeReport:
    """Grade an already imported module (see :func:`grade_file`)."""
    chosen = _select(exercises)
    report = GradeReport(path)
    for ex in chosen:
        result = ExerciseResult(ex.key, ex.title, ex.lesson)
        rng = np.random.default_rng([seed, EXERCISES.index(ex)])  # independent of selection
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # students' debug prints
                    result.rows = ex.check(module, rng)
            except Exception as exc:
                result.rows = [_error_row("setup", exc)]
        # Overflow / invalid-value warnings point at unstable formulas; list them.
        seen = sorted({str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)})
        result.notes += [f"RuntimeWarning during the checks: {m}" for m in seen]
        report.exercises.append(result)
    return report


def _select(exercises) -> list[Exercise]:
    if exercises is None:
        return list(EXERCISES)
    keys = {e.key: e for e in EXERCISES}
    unknown = [k for k in exercises if k not in keys]
    if unknown:
        raise ValueError(f"exercises: unknown {unknown}; expected some of {list(keys)}")
    return [keys[k] for k in exercises]


def grade_file(path: str | Path, *, exercises=None, seed: int = 0) -> GradeReport:
    """Import a student's ``student_layers.py`` and grade its backward passes.

    Parameters
    ----------
    path : str or Path
        The student's file (a filled-in copy of ``exercises/student_layers.py``).
    exercises : list of str, optional
        Keys of :data:`EXERCISES` to grade (default: all five).
    seed : int
        Seeds the inputs and upstream gradients (same seed, same report).

    Returns
    -------
    GradeReport
        ``report.score`` / ``report.total``, ``report["linear"].failed_tensors``;
        ``print(report)`` gives the readable report.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        An unknown exercise key.

    Notes
    -----
    A file that fails to import gets a report with every exercise failed and the error as a
    warning (it does not raise). The checks use :func:`minigan.gradcheck.check_module` and
    :func:`minigan.gradcheck.check_function` with their default tolerances
    (``|a - n| <= 1e-5 + 1e-3 |n|``) in float64.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    chosen = _select(exercises)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = load_student_module(path)
    except Exception as exc:
        report = GradeReport(str(path))
        report.warnings.append(f"the file could not be imported: {type(exc).__name__}: {exc}")
        for ex in chosen:
            result = ExerciseResult(ex.key, ex.title, ex.lesson)
            result.rows = [CheckRow("import", "error", False, "the file could not be imported")]
            report.exercises.append(result)
        return report
    report = grade_module(module, path=str(path), exercises=[e.key for e in chosen], seed=seed)
    extra = _minigan_imports(path)
    if extra:
        report.warnings.append(
            "imports from minigan (check the backward passes are the student's own): "
            + ", ".join(extra)
        )
    return report
