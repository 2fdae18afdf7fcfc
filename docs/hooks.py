"""MkDocs hooks: render the lessons and the API pages from the repository at build time.

Nothing generated here is written into ``docs/``: the pages are virtual files
(``File.generated``), so the source tree stays clean and always matches ``lessons/`` and
``minigan/``.

* ``lessons/NN_slug.py`` (jupytext percent format) -> ``lessons/NN_slug.md``: markdown cells
  as they are, code cells as fenced Python blocks, each followed by its **outputs** (printed
  text, and figures as PNG files next to the page) when an executed notebook of the lesson is
  available. The lessons are not executed here: ``lessons/run_lessons.py --output-dir DIR``
  executes them (CI does it anyway, in small mode) and ``MINIGAN_DOCS_NOTEBOOKS=DIR`` points
  the build at the notebooks, so the build itself stays fast::

      python lessons/run_lessons.py --output-dir build/notebooks
      MINIGAN_DOCS_NOTEBOOKS=build/notebooks mkdocs build --strict

  A notebook whose code no longer matches its lesson, or whose run failed, is a warning (so
  ``--strict`` fails); a lesson without a notebook is rendered without outputs and says so.
* MathJax 3 is served by the site itself (``assets/mathjax/``, copied from the files that the
  ``django-static-mathjax`` package ships; no Django needed), so math renders without a network.
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
import base64
import importlib.util
import logging
import os
import re
from pathlib import Path

from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.minigan")

# Modules that are not part of the API reference (entry points, not a library surface).
SKIP_MODULES = {"__main__"}
API = "API reference"  # the nav section the module pages are appended to

NOTEBOOKS_ENV = "MINIGAN_DOCS_NOTEBOOKS"  # folder of executed lessons (run_lessons --output-dir)
MATHJAX_URI = "assets/mathjax"  # where the site serves MathJax from (see mkdocs.yml)
# django-static-mathjax installs MathJax 3 as the package ``mathjax``, in static/mathjax/es5.
MATHJAX_DIST = "django-static-mathjax"
MATHJAX_PACKAGE = "mathjax"
MATHJAX_ENTRY = "tex-mml-chtml.js"  # the one combined component the site loads (mkdocs.yml)

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
a subset of MNIST) with `python lessons/run_lessons.py`; the pages below show the outputs and
figures of that run. The text describes full-mode runs: where it relies on their numbers
({reference}), the lesson prints them from a committed reference log
(`lessons/reference/`) next to the values of the run you are looking at.

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


def reference_lessons(lessons_dir: Path) -> str:
    """Which lessons have a committed reference log, in words: ``"lessons 8, 9 and 11"``.

    Read from the files ``lessons/reference/NN_slug.json`` (see ``lessons/reference_log.py``),
    so the index never names a lesson whose log is missing nor misses one that was added.
    """
    numbers = sorted(
        int(path.name[:2])
        for path in (lessons_dir / "reference").glob("[0-9][0-9]_*.json")
        if (lessons_dir / f"{path.stem}.py").is_file()
    )
    if not numbers:
        return "no lesson has one yet"
    if len(numbers) == 1:
        return f"lesson {numbers[0]}"
    return "lessons " + ", ".join(map(str, numbers[:-1])) + f" and {numbers[-1]}"


def lesson_title(path: Path) -> str:
    """The first markdown heading of a jupytext percent file, else the file name."""
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#\s+#{1,2}\s+(.+?)\s*$", line)
        if m:
            return m.group(1)
    return path.stem


NOTE_SOURCE = (
    '!!! note "Run it yourself"\n'
    "    This page is rendered from `lessons/{name}` without outputs. Open it as a notebook "
    "(Jupyter with jupytext installed, or `jupytext --to ipynb lessons/{name}`) and run it top "
    "to bottom; `MINIGAN_LESSON_MODE=small` makes it quick."
)
NOTE_EXECUTED = (
    '!!! note "Run it yourself"\n'
    "    The outputs and figures on this page come from running `lessons/{name}` top to "
    "bottom in **{mode} mode** when the site was built ({seconds:.0f} s). The text describes "
    "full-mode runs (`MINIGAN_LESSON_MODE=full`, the default in a notebook): open the lesson "
    "in Jupyter with jupytext installed, or `jupytext --to ipynb lessons/{name}`, and run it."
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def executed_notebook(path: Path):
    """The executed notebook of a lesson from ``$MINIGAN_DOCS_NOTEBOOKS``, or None.

    Warns (which fails ``mkdocs build --strict``) when the notebook's code differs from the
    lesson's or its run failed: a page must never show outputs of code it does not show.
    """
    folder = os.environ.get(NOTEBOOKS_ENV)
    if not folder:
        return None
    nb_path = Path(folder) / f"{path.stem}.ipynb"
    if not nb_path.is_file():
        log.info("no executed notebook %s: lessons/%s rendered without outputs", nb_path, path.name)
        return None
    import jupytext
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    want = [c.source.strip("\n") for c in jupytext.read(path).cells]
    if [c.source.strip("\n") for c in nb.cells] != want:
        log.warning(
            "%s was executed from another version of lessons/%s: rerun lessons/run_lessons.py "
            "--output-dir %s",
            nb_path,
            path.name,
            folder,
        )
        return None
    if not nb.metadata.get("minigan_lesson", {}).get("ok", True):
        log.warning("%s: the lesson failed when it was executed", nb_path)
        return None
    return nb


def _text_block(text: str) -> str:
    text = _ANSI.sub("", text).rstrip("\n")
    fence = "````" if "```" in text else "```"
    return f"{fence}text\n{text}\n{fence}"


def output_markdown(outputs, image_stem: str) -> tuple[list[str], list[tuple[str, bytes]]]:
    """Markdown for one code cell's outputs: text blocks and PNG figures.

    Returns the markdown parts and the images as ``(file name, PNG bytes)``; the parts link to
    the images as ``image_stem-K.png``.
    """
    parts: list[str] = []
    images: list[tuple[str, bytes]] = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(_text_block("".join(out.get("text", ""))))
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "image/png" in data:
                name = f"{image_stem}-{len(images)}.png"
                images.append((name, base64.b64decode(data["image/png"])))
                parts.append(f"![figure {len(images)} of this cell]({name})")
            elif "text/plain" in data:
                parts.append(_text_block("".join(data["text/plain"])))
        elif kind == "error":
            parts.append(_text_block(f"{out.get('ename')}: {out.get('evalue')}"))
    return parts, images


def lesson_markdown(path: Path, nb=None) -> tuple[str, list[tuple[str, bytes]]]:
    """Convert one jupytext lesson into a markdown page, with the outputs of ``nb`` if given.

    Returns the page and its figures as ``(path relative to lessons/, PNG bytes)``.
    """
    import jupytext  # imported here so `mkdocs --help` works without it

    cells = nb.cells if nb is not None else jupytext.read(path).cells
    figures: list[tuple[str, bytes]] = []
    parts = []
    for i, cell in enumerate(cells):
        src = cell.source.strip("\n")
        if not src:
            continue
        if cell.cell_type == "markdown":
            # Links between lessons point at the .py sources; on the site they are pages.
            src = re.sub(r"\]\((\d\d_[A-Za-z0-9_]+)\.py\)", r"](\1.md)", src)
            src = re.sub(r"\]\(\.\./docs/", "](../", src)
            parts.append(src)
            if i == 0 and nb is None:
                parts.append(NOTE_SOURCE.format(name=path.name))
            elif i == 0:
                meta = nb.metadata.get("minigan_lesson", {})
                parts.append(
                    NOTE_EXECUTED.format(
                        name=path.name,
                        mode=meta.get("mode", "small"),
                        seconds=meta.get("seconds", 0.0),
                    )
                )
        else:
            parts.append(f"```python\n{src}\n```")
            if nb is not None:
                out_parts, images = output_markdown(
                    cell.get("outputs", []), f"{path.stem}_files/cell{i:02d}"
                )
                parts.extend(out_parts)
                figures.extend(images)
    return "\n\n".join(parts) + "\n", figures


def mathjax_files() -> list[tuple[str, str]]:
    """``(site path, file on disk)`` for every MathJax file the site serves.

    The combined component ``tex-mml-chtml.js`` and what it loads on demand (TeX extensions,
    CommonHTML fonts, the menu, accessibility); not the other combined components nor the SVG
    output.

    Raises
    ------
    ModuleNotFoundError
        ``django-static-mathjax`` is not installed (it is in the ``docs`` extra).
    """
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)  # located, not imported
    es5 = None
    if spec is not None and spec.submodule_search_locations:
        es5 = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if es5 is None or not (es5 / MATHJAX_ENTRY).is_file():
        raise ModuleNotFoundError(
            f"{MATHJAX_DIST} is not installed (no {MATHJAX_PACKAGE}/static/mathjax/es5/"
            f"{MATHJAX_ENTRY}): the site serves MathJax from its files (pip install -e '.[docs]')"
        )
    files = []
    for path in sorted(p for p in es5.rglob("*") if p.is_file()):
        rel = path.relative_to(es5)
        other_bundle = len(rel.parts) == 1 and rel.name != MATHJAX_ENTRY
        svg = len(rel.parts) > 1 and rel.parts[0] == "output" and rel.parts[1].startswith("svg")
        if not (other_bundle or svg):
            files.append((f"{MATHJAX_URI}/{rel.as_posix()}", str(path)))
    return files


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
        page, figures = lesson_markdown(path, executed_notebook(path))
        files.append(File.generated(config, uri, content=page))
        for name, png in figures:
            files.append(File.generated(config, f"lessons/{name}", content=png))
    for uri, abs_path in mathjax_files():
        files.append(File.generated(config, uri, abs_src_path=abs_path))
    lesson_rows = ["| Lesson | Source |", "| --- | --- |"]
    for title, uri, path in _lessons:
        lesson_rows.append(f"| [{title}]({Path(uri).name}) | `lessons/{path.name}` |")
    files.append(
        File.generated(
            config,
            "lessons/index.md",
            content=LESSONS_INDEX.format(
                table="\n".join(lesson_rows),
                reference=reference_lessons(_root(config) / "lessons"),
            ),
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
