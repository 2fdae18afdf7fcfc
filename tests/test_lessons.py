"""Every lesson executes top to bottom in small mode (``lessons/run_lessons.py``).

One test per lesson, each running the standalone script in a subprocess, exactly as CI or a
student would: ``python lessons/run_lessons.py lessons/NN_slug.py`` with
``MINIGAN_LESSON_MODE=small``. Marked ``lessons``: select with ``-m lessons``, or deselect with
``-m "not lessons"`` when CI calls ``run_lessons.py`` directly.

Lessons that read MNIST are skipped (with the reason) when the files are not available locally;
nothing is downloaded by the test suite.

With ``MINIGAN_DOCS_NOTEBOOKS=DIR`` set, the executed notebooks are kept in ``DIR``, which is
what ``docs/hooks.py`` renders on the documentation site: CI runs each lesson once for both.
"""

from __future__ import annotations

import importlib.util
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


def _needs_mnist(path: Path) -> bool:
    src = path.read_text(encoding="utf-8")
    return "load_mnist" in src or "train_mnist" in src


def test_lessons_exist():
    assert len(LESSONS) >= 8, [p.name for p in LESSONS]


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_small_mode(lesson):
    for mod in ("jupytext", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install -e '.[dev]')")
    env = dict(os.environ, MINIGAN_LESSON_MODE="small")
    if _needs_mnist(lesson):
        data = _mnist_dir()
        if data is None:
            pytest.skip(
                f"{lesson.name} reads MNIST, which is not available offline here: set "
                "MINIGAN_DATA_DIR to a folder with the four .gz files"
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
