"""Reference logs: the numbers a lesson's prose quotes from a full-mode run, kept in JSON.

Some lessons describe what a long (``MINIGAN_LESSON_MODE=full``) run shows. Rather than copy
those numbers into the text, where they would drift away from the code, the run's values
are written to ``lessons/reference/NN_slug.json`` and committed; the lesson reads the file and
prints the reference next to the values of the run it has just made. The text then describes
the shape of the result ("D keeps an edge that shrinks") and the table gives the figures.

To refresh a log (after changing a lesson's full-mode experiment)::

    MINIGAN_LESSON_RECORD=1 python lessons/run_lessons.py --mode full lessons/09_train_mnist.py

A lesson writes its log only in full mode with ``MINIGAN_LESSON_RECORD=1``: a small-mode run
never overwrites the reference.

This is a helper of the lessons, not part of minigan (it has no math in it).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
RECORD_ENV = "MINIGAN_LESSON_RECORD"

__all__ = ["REFERENCE_DIR", "RECORD_ENV", "load", "record", "compare"]


def _path(lesson: str) -> Path:
    return REFERENCE_DIR / f"{lesson}.json"


def load(lesson: str) -> dict:
    """The reference log of ``lesson`` (e.g. ``"09_train_mnist"``): ``{"meta": ..., "values": ...}``.

    Raises
    ------
    FileNotFoundError
        No log ``lessons/reference/<lesson>.json`` (with the command that writes one).
    """
    path = _path(lesson)
    if not path.is_file():
        raise FileNotFoundError(
            f"no reference log {path}: write one with {RECORD_ENV}=1 python lessons/run_lessons.py "
            f"--mode full lessons/{lesson}.py"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def record(lesson: str, values: dict, *, small: bool, seconds: float | None = None) -> bool:
    """Write ``values`` (JSON-able numbers, lists, strings) as the reference log of ``lesson``.

    Only a full-mode run with ``MINIGAN_LESSON_RECORD=1`` writes; otherwise nothing happens.
    Returns whether the file was written.
    """
    if small or os.environ.get(RECORD_ENV) != "1":
        return False
    meta = {
        "lesson": f"lessons/{lesson}.py",
        "mode": "full",
        "recorded": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    if seconds is not None:
        meta["seconds"] = round(float(seconds), 1)
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"meta": meta, "values": values}, indent=1, sort_keys=True)
    _path(lesson).write_text(text + "\n", encoding="utf-8")
    print(f"reference log written: {_path(lesson)}")
    return True


def _fmt(value, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v, spec) for v in value) + "]"
    if isinstance(value, str):
        return value
    return format(value, spec)


def compare(lesson: str, current: dict, rows: list[tuple[str, str, str]]) -> dict:
    """Print ``label | this run | reference`` for each ``(label, key, format spec)`` row.

    ``current`` maps keys to this run's values (``None`` where this run has no such value, e.g.
    a quantity only a full-mode run measures). Returns the reference values, so the lesson can
    quote them in printed sentences. Without a log, prints how to make one and returns ``{}``.
    """
    try:
        log = load(lesson)
    except FileNotFoundError as exc:
        print(exc)
        ref = {}
        meta = {}
    else:
        ref, meta = log["values"], log["meta"]
    label_w = max(len(label) for label, _, _ in rows)
    head = f"reference: {meta.get('mode', '?')} mode, recorded {meta.get('recorded', '?')}"
    print(f"{'':{label_w}s}  {'this run':>20s}  {head}")
    for label, key, spec in rows:
        print(
            f"{label:{label_w}s}  {_fmt(current.get(key), spec):>20s}  {_fmt(ref.get(key), spec)}"
        )
    return ref
