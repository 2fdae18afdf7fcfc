"""Execute minigan lessons top to bottom in a fresh kernel, the way CI does.

Each lesson is a jupytext percent-format ``.py`` file. It is converted to a notebook in memory
(jupytext), executed cell by cell in a new ``python3`` kernel (nbclient), and timed. Any cell
error fails the run: the script reports every lesson, then exits with status 1.

Usage::

    python lessons/run_lessons.py                      # every lessons/[0-9][0-9]_*.py, small mode
    python lessons/run_lessons.py lessons/0[1-8]*.py   # some lessons (paths or globs)
    python lessons/run_lessons.py --mode full lessons/08_gan_game.py
    python lessons/run_lessons.py --output-dir build/notebooks   # keep executed .ipynb files
    python lessons/run_lessons.py --blas-threads 1     # on a busy machine (see below)

Environment given to the kernel:

* ``MINIGAN_LESSON_MODE``: ``small`` (default; fewer steps, data subsets) or ``full``;
* ``MINIGAN_DATA_DIR``: left as is when set; otherwise ``../shared/data/mnist`` next to the
  repository is used when that folder exists (the CI layout);
* ``MPLBACKEND``: left to the kernel (inline figures), so ``plt.show()`` is harmless;
* with ``--blas-threads N``: ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
  ``MKL_NUM_THREADS`` = N. The lessons multiply small matrices; when other processes compete
  for the cores, multi-threaded BLAS on small matrices can be several times slower than one
  thread (threads wait for each other), so ``--blas-threads 1`` keeps a shared CI machine
  predictable. Without the option the variables are left as they are.

The kernel's working directory is the folder of the lesson.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODES = ("small", "full")


def find_lessons(patterns: list[str]) -> list[Path]:
    """Expand paths and globs (relative to the current directory) into lesson files, sorted.

    With no patterns: every ``NN_*.py`` file in this folder.

    Raises
    ------
    FileNotFoundError
        A pattern matches no file.
    """
    if not patterns:
        return sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))
    found: list[Path] = []
    for pat in patterns:
        matches = sorted(glob.glob(pat)) if glob.has_magic(pat) else [pat]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise FileNotFoundError(f"no lesson file matches {pat!r}")
        found.extend(Path(m).resolve() for m in matches)
    seen: set[Path] = set()
    return [p for p in found if not (p in seen or seen.add(p))]


def lesson_env(mode: str, blas_threads: int | None = None) -> dict[str, str]:
    """The environment variables to set for the kernel (see the module docstring)."""
    # Figures go into the notebook (the inline backend), even where MPLBACKEND=Agg is exported
    # (CI does): with Agg a kernel draws nothing and the docs' lesson pages would show no figure.
    env = {"MINIGAN_LESSON_MODE": mode, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if blas_threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(blas_threads)
    if not os.environ.get("MINIGAN_DATA_DIR"):
        shared = (REPO.parent / "shared" / "data" / "mnist").resolve()
        if shared.is_dir():
            env["MINIGAN_DATA_DIR"] = str(shared)
    return env


def _first_error(nb) -> str:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename')}: {out.get('evalue')}"
    return ""


def run_lesson(
    path: Path,
    *,
    timeout: int = 900,
    kernel_name: str = "python3",
    output_dir: Path | None = None,
) -> tuple[bool, float, str]:
    """Execute one lesson; return ``(ok, seconds, message)``.

    The environment variables of :func:`lesson_env` must already be set in ``os.environ``
    (the kernel inherits them).
    """
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = jupytext.read(path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(path.parent)}},
        allow_errors=False,
    )
    start = time.perf_counter()
    ok, message = True, ""
    try:
        client.execute()
    except CellExecutionError as exc:
        ok = False
        message = _first_error(nb) or str(exc).strip().splitlines()[-1]
        # nbclient's message holds the failing cell source and traceback: print it in full.
        print(str(exc), file=sys.stderr)
    except (CellTimeoutError, DeadKernelError) as exc:
        ok, message = False, f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    if output_dir is not None:
        import nbformat

        # Read by docs/hooks.py, which renders executed lessons on the documentation site.
        nb.metadata["minigan_lesson"] = {
            "mode": os.environ.get("MINIGAN_LESSON_MODE", "full"),
            "seconds": round(seconds, 1),
            "ok": ok,
        }
        output_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, output_dir / (path.stem + ".ipynb"))
    return ok, seconds, message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Execute minigan lessons (jupytext .py) top to bottom in a fresh kernel.",
    )
    parser.add_argument(
        "lessons",
        nargs="*",
        help="lesson files or globs (default: every lessons/NN_*.py)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=os.environ.get("MINIGAN_LESSON_MODE", "small"),
        help="MINIGAN_LESSON_MODE for the lessons (default: small, or the variable's value)",
    )
    parser.add_argument(
        "--timeout", type=int, default=900, help="seconds allowed per cell (default 900)"
    )
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS/OMP/MKL_NUM_THREADS for the lessons (default: leave them as they are)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="write the executed notebooks (with outputs) here",
    )
    args = parser.parse_args(argv)
    if args.mode not in MODES:
        parser.error(f"--mode: expected one of {MODES}, got {args.mode!r}")
    if args.blas_threads is not None and args.blas_threads < 1:
        parser.error(f"--blas-threads: expected >= 1, got {args.blas_threads}")
    try:
        lessons = find_lessons(args.lessons)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    if not lessons:
        parser.error("no lessons found")

    env = lesson_env(args.mode, args.blas_threads)
    os.environ.update(env)
    print(f"running {len(lessons)} lesson(s), " + ", ".join(f"{k}={v}" for k, v in env.items()))
    results = []
    total_start = time.perf_counter()
    for path in lessons:
        ok, seconds, message = run_lesson(
            path, timeout=args.timeout, kernel_name=args.kernel, output_dir=args.output_dir
        )
        results.append((path, ok, seconds, message))
        status = "ok  " if ok else "FAIL"
        print(f"{status} {seconds:7.1f} s  {path.name}" + (f"  -- {message}" if message else ""))
        sys.stdout.flush()
    total = time.perf_counter() - total_start
    failed = [r for r in results if not r[1]]
    print(
        f"{len(results) - len(failed)}/{len(results)} lessons passed in {total:.1f} s "
        f"(mode {args.mode})"
    )
    for path, _, _, message in failed:
        print(f"  failed: {path.name}: {message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
