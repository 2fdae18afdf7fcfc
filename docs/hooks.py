"""MkDocs hooks: render the lessons and the API pages from the repository at build time.

Nothing generated here is written into ``docs/``: the pages are virtual files
(``File.generated``), so the source tree stays clean and always matches ``lessons/`` and
``minigan/``.

* ``lessons/NN_slug.py`` (jupytext percent format) -> ``lessons/NN_slug.md``: markdown cells
  as they are, code cells as fenced Python blocks. Lessons are not executed here (CI runs them
  with ``lessons/run_lessons.py``), so the build stays fast.
* every public module ``minigan/<name>.py`` -> ``api/<name>.md`` holding ``::: minigan.<name>``
  for mkdocstrings, plus an index with each module's one-line summary. A new module appears in
  the reference without editing ``mkdocs.yml``.

Both lists are appended to the ``Lessons`` and ``API reference`` sections of the nav. Any other
page under ``docs/`` that ``mkdocs.yml`` does not list joins the nav before the API reference,
titled by its first heading, so adding a page needs no edit here. Also generated: ``cli.md``
(the ``--help`` of every subcommand) and, while ``docs/benchmarks.md`` does not exist, a stub
for it.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.minigan")

# Modules that are not part of the API reference (entry points, not a library surface).
SKIP_MODULES = {"__main__"}
API = "API reference"  # the nav section the module pages are appended to

_lessons: list[tuple[str, str, Path]] = []  # (title, src_uri, path)
_modules: list[tuple[str, str]] = []  # (name, summary)


LESSONS_INDEX = """# Lessons

Follow the chapters in order: each builds one piece of a GAN by hand, checks it against finite
differences, then uses the same piece from minigan. Every chapter has the same sections: Goal,
Math with shapes, Implement, Check, Use minigan, Summary, Exercises.

The sources live in `lessons/` as [jupytext](https://jupytext.readthedocs.io) percent-format
`.py` files: diffable, and they open as notebooks. To run one as a notebook:

```bash
pip install -e ".[dev]"
jupytext --to ipynb lessons/01_*.py    # or open the .py file in Jupyter with jupytext installed
```

CI runs every lesson top to bottom in a small mode (`MINIGAN_LESSON_MODE=small`: fewer steps,
a subset of MNIST) with `python lessons/run_lessons.py`.

{table}
"""

API_INDEX = """# API reference

Generated from the docstrings (NumPy style: shapes, dtypes, errors and sources). The most used
names are also importable from the top-level package (`minigan.Linear`, `minigan.train_mnist`,
...). The math behind each layer is on [The math of each layer](../math.md).

{table}
"""

CLI_INTRO = """# Command line

`pip install -e .` installs the `minigan` command (also `python -m minigan`). The help below
is generated from the parser when the site is built, so it always matches the code
([`minigan.cli`](api/cli.md)). Bad input prints one line `minigan: error: ...` and exits with
status 2.
"""

BENCH_PLACEHOLDER = """# Benchmarks

The benchmark results (minigan vs PyTorch on the same GAN, CPU and GPU) are not published yet.
The scripts live in `benchmarks/`.
"""


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def lesson_title(path: Path) -> str:
    """The first markdown heading of a jupytext percent file, else the file name."""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#\s+#{1,2}\s+(.+?)\s*$", line)
        if m:
            return m.group(1)
    return path.stem


def lesson_markdown(path: Path) -> str:
    """Convert one jupytext lesson into a markdown page (no outputs)."""
    import jupytext  # imported here so `mkdocs --help` works without it

    nb = jupytext.read(path)
    parts = []
    for i, cell in enumerate(nb.cells):
        src = cell.source.strip("\n")
        if not src:
            continue
        if cell.cell_type == "markdown":
            # Links between lessons point at the .py sources; on the site they are pages.
            src = re.sub(r"\]\((\d\d_[A-Za-z0-9_]+)\.py\)", r"](\1.md)", src)
            src = re.sub(r"\]\(\.\./docs/", "](../", src)
            parts.append(src)
            if i == 0:
                parts.append(
                    f'!!! note "Run it yourself"\n'
                    f"    This page is rendered from `lessons/{path.name}` without outputs. "
                    f"Open it as a notebook (Jupyter with jupytext installed, or "
                    f"`jupytext --to ipynb lessons/{path.name}`) and run it top to bottom; "
                    f"`MINIGAN_LESSON_MODE=small` makes it quick."
                )
        else:
            parts.append(f"```python\n{src}\n```")
    return "\n\n".join(parts) + "\n"


def cli_markdown() -> str:
    """The ``--help`` of ``minigan`` and of each subcommand, from the argparse parser itself."""
    import argparse
    import os

    from minigan.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal width
    try:
        parser = build_parser()
        parts = [CLI_INTRO, f"```text\n$ minigan --help\n{parser.format_help().rstrip()}\n```"]
        for action in parser._actions:  # argparse keeps its subcommands here
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    parts.append(f"## minigan {name}")
                    parts.append(
                        f"```text\n$ minigan {name} --help\n{sub.format_help().rstrip()}\n```"
                    )
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "\n\n".join(parts) + "\n"


def module_summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _nav_files(nav):
    """Every page path mentioned in a (nested) mkdocs nav."""
    if isinstance(nav, str):
        yield nav
    elif isinstance(nav, list):
        for entry in nav:
            yield from _nav_files(entry)
    elif isinstance(nav, dict):
        for value in nav.values():
            yield from _nav_files(value)


def _page_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def _nav_section(nav, title):
    for entry in nav:
        if isinstance(entry, dict) and title in entry:
            return entry[title]
    raise KeyError(f"mkdocs.yml nav has no section {title!r} (docs/hooks.py appends to it)")


def on_config(config):
    root = _root(config)
    _lessons.clear()
    _modules.clear()
    for path in sorted((root / "lessons").glob("[0-9][0-9]_*.py")):
        _lessons.append((lesson_title(path), f"lessons/{path.stem}.md", path))
    for path in sorted((root / "minigan").glob("*.py")):
        name = path.stem
        if name.startswith("_") or name in SKIP_MODULES:
            continue
        _modules.append((name, module_summary(path)))

    # Pages other work adds under docs/ (e.g. docs/evaluation.md) join the nav by themselves,
    # titled by their first heading, just before the API reference.
    listed = set(_nav_files(config.nav))
    extra = [
        {_page_title(path): path.relative_to(root / "docs").as_posix()}
        for path in sorted((root / "docs").rglob("*.md"))
        if path.relative_to(root / "docs").as_posix() not in listed
    ]
    api_at = next(i for i, e in enumerate(config.nav) if isinstance(e, dict) and API in e)
    config.nav[api_at:api_at] = extra

    lessons_nav = _nav_section(config.nav, "Lessons")
    lessons_nav += [{title: uri} for title, uri, _ in _lessons]
    api_nav = _nav_section(config.nav, API)
    api_nav += [{f"minigan.{name}": f"api/{name}.md"} for name, _ in _modules]
    return config


def on_files(files, config):
    for _, uri, path in _lessons:
        files.append(File.generated(config, uri, content=lesson_markdown(path)))
    lesson_rows = ["| Lesson | Source |", "| --- | --- |"]
    for title, uri, path in _lessons:
        lesson_rows.append(f"| [{title}]({Path(uri).name}) | `lessons/{path.name}` |")
    files.append(
        File.generated(
            config, "lessons/index.md", content=LESSONS_INDEX.format(table="\n".join(lesson_rows))
        )
    )

    rows = ["| Module | What it holds |", "| --- | --- |"]
    for name, summary in _modules:
        page = (
            f"# minigan.{name}\n\n"
            f"Source: `minigan/{name}.py`\n\n"
            f"::: minigan.{name}\n"
            f"    options:\n"
            f"      show_root_heading: false\n"
            f"      show_root_toc_entry: false\n"
        )
        files.append(File.generated(config, f"api/{name}.md", content=page))
        rows.append(f"| [`minigan.{name}`]({name}.md) | {summary.replace('|', '&#124;')} |")
    files.append(
        File.generated(config, "api/index.md", content=API_INDEX.format(table="\n".join(rows)))
    )
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    if not (_root(config) / "docs" / "benchmarks.md").exists():
        # Written by the benchmarks work; until then the nav entry gets a stub page.
        log.info("docs/benchmarks.md not found: using a placeholder page")
        files.append(File.generated(config, "benchmarks.md", content=BENCH_PLACEHOLDER))
    return files
