"""Render ``docs/results.md`` from ``benchmarks/results/quality.json`` (rows of quality.py).

    python benchmarks/results_page.py [--results PATH.json] [--out docs/results.md]

The page has: the table of every row (preset, dataset, minutes, Parzen, IS, FCD, KL, coverage,
CAS, NN ratio, whether the protocol was honest), the real-data row of each dataset (from the
latest row of that dataset), the paper's Table 1, and per row its sample grid and the command
that made it. Nothing on the page is typed by hand: rerun this script after quality.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality.json"
PAGE = ROOT / "docs" / "results.md"

INTRO = """# Results: quality of every preset

Every figure on this page comes from `benchmarks/quality.py` (its command is under each row)
and this page from `python benchmarks/results_page.py`. The protocol is `minigan evaluate`'s
(see [Evaluation](evaluation.md)): the Parzen sigma is chosen on held-out training images the
GAN did not train on, the log-likelihood is averaged over the test set; the Inception score
(IS), Frechet classifier distance (FCD), KL of the class histogram to uniform and the classes
covered come from minigan's own metric classifier of the dataset; the nearest-neighbour (NN)
ratio is the median distance of samples to their nearest training image over that of test
images (far below 1 would mean memorisation). "Honest" says whether the held-out images were
really unseen. CPU minutes are the training process's CPU time (one BLAS thread unless the
command says otherwise, per-epoch metrics included when the command asks for them); wall
minutes are inflated on a machine shared with other jobs (rows record the 1-minute load
average; most rows ran beside two or three other training jobs on two cores).
"""


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _pm(row: dict[str, Any]) -> str:
    if row.get("parzen") is None:
        return "-"
    return f"{row['parzen']:.1f} ± {row.get('parzen_stderr') or 0:.1f}"


def _preset(row: dict[str, Any]) -> str:
    """The preset's name, with the fields ``--set`` changed (``dcgan`` + generator_args...);
    a row's ``label`` instead, where the preset of that name has changed since the row."""
    changed = sorted(row.get("overrides") or {})
    return row.get("label") or row["preset"] + (f" + {', '.join(changed)}" if changed else "")


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The main table, one line per row."""
    out = [
        "| preset | dataset | device | CPU min | wall min | Parzen (nats) | IS | FCD | KL "
        "| covered | CAS | NN ratio | honest |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        out.append(
            f"| [{_preset(r)}](#{r['id']}) | {r['dataset']} | {r.get('device', '-')} | "
            f"{_f(r.get('train_cpu_minutes'), '.1f')} | {_f(r.get('train_minutes'), '.1f')} | "
            f"{_pm(r)} | "
            f"{_f(r.get('inception_score'), '.2f')} | {_f(r.get('fcd'), '.1f')} | "
            f"{_f(r.get('kl_uniform'), '.3f')} | {_f(r.get('coverage'), 'd')} | "
            f"{_f(r.get('cas'), '.3f')} | {_f(r.get('nn_ratio'), '.2f')} | "
            f"{'yes' if r.get('honest') else 'NO'} |"
        )
    return out


def real_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The real data's own scores, per dataset (the latest row of each dataset)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        latest[r["dataset"]] = r
    out = [
        "| dataset | Parzen (nats), 10,000 training images as centres | IS | FCD | KL | "
        "covered | metric classifier |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in latest.items():
        real, clf = r.get("real") or {}, r.get("classifier") or {}
        acc = clf.get("test_accuracy")
        desc = f"{clf.get('architecture', '-')}" + (
            f", test accuracy {100 * acc:.2f}%" if acc is not None else ""
        )
        out.append(
            f"| {name} | {_pm(real)} | {_f(real.get('inception_score'), '.2f')} | "
            f"{_f(real.get('fcd'), '.2f')} | {_f(real.get('kl_uniform'), '.4f')} | "
            f"{_f(real.get('coverage'), 'd')} | {desc} |"
        )
    return out


def paper_rows() -> list[str]:
    """Goodfellow et al. (2014), Table 1 (MNIST Parzen log-likelihood)."""
    from minigan.metrics import PAPER_TABLE1, THEIS_TRUE_DISTRIBUTION

    out = ["| model (Goodfellow et al. 2014, Table 1) | MNIST Parzen (nats) |", "| --- | ---: |"]
    out += [f"| {name} | {m:g} ± {e:g} |" for name, (m, e) in PAPER_TABLE1.items()]
    out.append(f"| 10,000 training images (Theis et al. 2016) | {THEIS_TRUE_DISTRIBUTION:g} |")
    return out


def row_sections(rows: list[dict[str, Any]], page: Path) -> list[str]:
    """Per row: heading (the table's anchor), grid, command, warnings."""
    out: list[str] = []
    for r in rows:
        out += [
            "",
            f"### {_preset(r)} on {r['dataset']} ({r.get('date', '')}) {{ #{r['id']} }}",
            "",
        ]
        grid = ROOT / r["grid"] if r.get("grid") else None
        if grid is not None and grid.is_file():
            rel = os.path.relpath(grid, page.parent)
            out += [f"![samples of {r['id']}]({rel})", ""]
        curve = ROOT / r["time_plot"] if r.get("time_plot") else None
        if curve is not None and curve.is_file():
            rel = os.path.relpath(curve, page.parent)
            out += [f"![time to quality of {r['id']}]({rel})", ""]
        if r.get("label_accuracy") is not None:
            out += [
                f"Samples the metric classifier assigns to the asked-for class: "
                f"{100 * r['label_accuracy']:.1f}%"
                + (f"; CAS {r['cas']:.4f} vs {r['cas_real']:.4f} trained on real images "
                   f"({r['cas_n']:,} images)." if r.get("cas") is not None else "."),
                "",
            ]  # fmt: skip
        out += ["```bash", r["command"], "```"]
        for w in (r.get("protocol") or {}).get("warnings", []):
            out += ["", f"!!! warning\n    {w}"]
        for s in r.get("skipped") or []:
            out += ["", f"Skipped: {s['metrics']}: {s['reason']}"]
        if r.get("note"):
            out += ["", r["note"]]
    return out


#: The trial files shown on the page, under their headings: per-epoch held-out metrics of
#: the settings tried for a preset (lists of {"name", "command", "epochs", optional "summary"}).
TRIALS: dict[str, Path] = {
    "What the default preset tried": ROOT
    / "benchmarks"
    / "results"
    / "trials"
    / "default_preset.json",
    "What the dcgan preset tried": ROOT / "benchmarks" / "results" / "trials" / "dcgan.json",
}


def trial_rows(path: Path, heading: str = "What the default preset tried") -> list[str]:
    """A preset's trials side by side: per-epoch held-out IS / FCD / KL, then each command."""
    if not path.is_file():
        return []
    trials = json.loads(path.read_text())
    n = max(len(t["epochs"]) for t in trials)
    out = [
        f"## {heading}",
        "",
        "Per-epoch held-out metrics (`metrics_every=1`, 2,000 samples and 2,000 held-out images, "
        "so FCD reads higher than `minigan evaluate`'s 10,000-sample figure), IS / FCD / KL:",
        "",
        "| epoch | " + " | ".join(f"`{t['name']}`" for t in trials) + " |",
        "| ---: | " + " | ".join("---" for _ in trials) + " |",
    ]
    for i in range(n):
        cells = []
        for t in trials:
            e = t["epochs"][i] if i < len(t["epochs"]) else None
            cells.append(
                "-" if e is None
                else f"{e['inception_score']:.2f} / {e['fcd']:.1f} / {e['kl_uniform']:.3f}"
            )  # fmt: skip
        out.append(f"| {i + 1} | " + " | ".join(cells) + " |")
    out.append("")
    for t in trials:
        out.append(
            f"- `{t['name']}`: {t['command']}" + (f". {t['summary']}" if t.get("summary") else "")
        )
    return out


def render(
    rows: list[dict[str, Any]], page: Path = PAGE, trials: Path | dict[str, Path] = TRIALS
) -> str:
    """The whole page as Markdown (``trials``: one file of the default preset's, or
    {heading: file})."""
    parts = [INTRO, "## Every run", ""]
    parts += table(rows) if rows else ["No runs yet: run `benchmarks/quality.py`."]
    parts += ["", "## Real data", ""] + (real_rows(rows) if rows else ["-"])
    parts += ["", "## The 2014 paper", ""] + paper_rows()
    named = trials if isinstance(trials, dict) else {"What the default preset tried": trials}
    for heading, path in named.items():
        section = trial_rows(Path(path), heading)
        parts += [""] + section if section else []
    parts += ["", "## Samples and commands"] + row_sections(rows, page)
    return "\n".join(parts).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--out", default=str(PAGE))
    args = p.parse_args(argv)
    path = Path(args.results)
    rows = json.loads(path.read_text()) if path.is_file() else []
    out = Path(args.out)
    out.write_text(render(rows, out))
    print(f"wrote {out} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
