"""Every lesson executes top to bottom in small mode (``lessons/run_lessons.py``).

One test per lesson, each running the standalone script in a subprocess, exactly as CI or a
student would: ``python lessons/run_lessons.py lessons/NN_slug.py`` with
``MINIGAN_LESSON_MODE=small``. Marked ``lessons``: select with ``-m lessons``, or deselect with
``-m "not lessons"`` when CI calls ``run_lessons.py`` directly.

Lessons that read data are skipped (with the reason) when the MNIST files are not available
locally; nothing is downloaded by the test suite. A lesson reads data when it calls a minigan
function or class that takes a ``data_dir`` or ``root`` (``minigan.train``, ``train_mnist``,
``data.load``, ``load_mnist``, ``load_classifier``, ``evaluate_checkpoint``...), however it
imported it: found from the lesson's syntax tree and minigan's signatures, not from a list.

With ``MINIGAN_DOCS_NOTEBOOKS=DIR`` set, the executed notebooks are kept in ``DIR``, which is
what ``docs/hooks.py`` renders on the documentation site: CI runs each lesson once for both.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "lessons" / "run_lessons.py"
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

pytestmark = pytest.mark.lessons


def _mnist_dir() -> Path | None:
    """Where the lessons will find MNIST (as run_lessons.py and minigan.data look), or None."""
    candidates = []
    if os.environ.get("MINIGAN_DATA_DIR"):  # the data root (mnist/ inside) or the MNIST folder
        root = Path(os.environ["MINIGAN_DATA_DIR"]).expanduser()
        candidates += [root, root / "mnist"]
    else:
        candidates.append(ROOT.parent / "shared" / "data" / "mnist")
        try:
            from minigan.data import default_data_dir

            candidates.append(default_data_dir())
        except ImportError:
            pass
    for c in candidates:
        if all((c / f).is_file() for f in MNIST_FILES):
            return c
    return None


#: The parameters by which a minigan callable says that it reads a data set's files.
DATA_PARAMETERS = ("data_dir", "root")


def _minigan_object(dotted: str):
    """The object ``minigan.a.b`` names (attribute first, then submodule), or None."""
    parts = dotted.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return None
    return obj


def _reads_data(obj) -> bool:
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return any(name in params for name in DATA_PARAMETERS)


def _dotted(node) -> str | None:
    """``a.b.c`` of a Name / Attribute chain, else None (a call on a call, a subscript...)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None


def _data_calls(path: Path) -> list[str]:
    """The calls in a lesson of minigan callables that read data (see the module docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound: dict[str, str] = {}  # name in the lesson -> what it is in minigan
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "minigan":
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else "minigan"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "minigan":
            for a in node.names:
                bound[a.asname or a.name] = f"{node.module}.{a.name}"
    calls = []
    for node in ast.walk(tree):
        name = _dotted(node.func) if isinstance(node, ast.Call) else None
        head = name.split(".")[0] if name else None
        if head in bound:
            target = bound[head] + name[len(head) :]
            if _reads_data(_minigan_object(target)) and name not in calls:
                calls.append(name)
    return calls


def test_lessons_exist():
    assert len(LESSONS) >= 8, [p.name for p in LESSONS]


def test_data_reading_calls_are_found_however_imported(tmp_path):
    lesson = tmp_path / "99_x.py"
    lesson.write_text(
        "import minigan\n"
        "from minigan import data as d\n"
        "from minigan.classifier import load_classifier as lc\n"
        "import minigan.data\n"
        "minigan.train(preset='dcgan', dataset='fashion-mnist')\n"
        "d.load('mnist', 'test')\n"
        "lc()\n"
        "minigan.data.load_mnist('train')\n"
        "minigan.Linear(3, 2)\n"  # no data
        "d.sample_ring(8)\n"  # toy data, drawn, not read
        "def train(opt):\n"
        "    return opt\n"
        "train(1)\n",  # the lesson's own train, not minigan's
        encoding="utf-8",
    )
    want = ["d.load", "lc", "minigan.data.load_mnist", "minigan.train"]
    assert sorted(_data_calls(lesson)) == want
    lesson.write_text("import numpy as np\nfrom minigan import functional as F\nF.relu\n")
    assert _data_calls(lesson) == []


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_small_mode(lesson):
    for mod in ("jupytext", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[dev]')")
    env = dict(os.environ, MINIGAN_LESSON_MODE="small")
    calls = _data_calls(lesson)
    if calls:
        data = _mnist_dir()
        if data is None:
            pytest.skip(
                f"{lesson.name} reads data ({', '.join(calls)}), and MNIST is not available "
                "offline here: set MINIGAN_DATA_DIR to a folder with the four .gz files"
            )
        env["MINIGAN_DATA_DIR"] = str(data)
    # One BLAS thread: the lessons multiply small matrices, and a busy test machine makes
    # multi-threaded BLAS much slower there (see run_lessons.py). Outputs are kept only for
    # the documentation site (MINIGAN_DOCS_NOTEBOOKS).
    keep = (
        ["--output-dir", env["MINIGAN_DOCS_NOTEBOOKS"]] if env.get("MINIGAN_DOCS_NOTEBOOKS") else []
    )
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--blas-threads", "1", *keep, str(lesson)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{lesson.name} failed:\n{result.stdout}\n{result.stderr}"
    assert "ok " in result.stdout and lesson.name in result.stdout


def test_gpu_lesson_runs_without_array_api_strict(tmp_path):
    """Lesson 10 after a plain ``pip install -e .``: array_api_strict (the dev extra) missing."""
    for mod in ("jupytext", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[dev]')")
    from minigan.backend import cupy_available

    if cupy_available():
        pytest.skip("a GPU is present: lesson 10 compares with it, not with array_api_strict")
    data = _mnist_dir()
    if data is None:
        pytest.skip("lesson 10 reads MNIST, which is not available offline here")
    # A module of that name first on the path hides the installed package from the kernel.
    (tmp_path / "array_api_strict.py").write_text('raise ImportError("hidden by the test")\n')
    path = os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, MINIGAN_LESSON_MODE="small", MINIGAN_DATA_DIR=str(data), PYTHONPATH=path)
    env.pop("MINIGAN_DOCS_NOTEBOOKS", None)
    lesson = ROOT / "lessons" / "10_gpu_with_cupy.py"
    result = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "--blas-threads",
            "1",
            "--output-dir",
            str(tmp_path),
            str(lesson),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{lesson.name} failed:\n{result.stdout}\n{result.stderr}"
    printed = (tmp_path / "10_gpu_with_cupy.ipynb").read_text(encoding="utf-8")
    assert "array_api_strict is not installed" in printed  # the lesson really took that path


def test_runner_fails_on_a_cell_error(tmp_path):
    for mod in ("jupytext", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[dev]')")
    bad = tmp_path / "99_broken.py"
    bad.write_text('# %%\nx = 1\n\n# %%\nraise ValueError("cell two is broken")\n')
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(bad)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "cell two is broken" in result.stdout


def test_runner_rejects_a_pattern_matching_nothing():
    result = subprocess.run(
        [sys.executable, str(RUNNER), str(ROOT / "lessons" / "no_such_lesson_*.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no lesson file matches" in result.stderr
