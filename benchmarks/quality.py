"""Quality of a preset on a dataset: train (or take a checkpoint), evaluate, append one row.

Every row of ``docs/results.md`` comes from one run of this script::

    python benchmarks/quality.py --preset default --dataset mnist [--epochs 30]
    python benchmarks/quality.py --preset default --dataset mnist --checkpoint runs/x/checkpoint.npz

It trains with :func:`minigan.train` (``minigan.train_mnist`` until that exists, MNIST only),
holding out the last ``--validation-size`` training images where the trainer can (else, for
MNIST, by training on the first 50,000 images with ``limit``), evaluates the checkpoint with
:func:`minigan.metrics.evaluate_checkpoint` (the honest protocol: Parzen sigma and the real FCD
reference from images the GAN did not train on), draws a sample grid, and appends one row to
``benchmarks/results/quality.json`` (``--results``): preset, dataset, training minutes (wall
and CPU), Parzen, Inception score, FCD, KL to uniform, coverage, CAS (conditional presets,
later), nearest-neighbour ratio, the real-data row, the protocol and this command. Then
``python benchmarks/results_page.py`` renders ``docs/results.md`` from the JSON.

Small mode for tests: ``--limit 256 --max-steps 20 --n-samples 200 --n-test 200
--n-validation 100``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from minigan.checkpoint import _overrides_from_json

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "quality.json"
GRIDS = ROOT / "docs" / "img" / "results"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="default", help="preset name")
    p.add_argument("--dataset", default="mnist", help="dataset name")
    p.add_argument("--checkpoint", default=None, help="evaluate this checkpoint, do not train")
    p.add_argument("--epochs", type=int, default=None, help="None: the preset's / trainer's")
    p.add_argument("--max-steps", type=int, default=None, help="stop training after N steps")
    p.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    p.add_argument(
        "--validation-size",
        type=int,
        default=10000,
        help="hold out the last N training images (the paper: 10,000 of MNIST's 60,000)",
    )
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--device", default="cpu", help="training and evaluation device")
    p.add_argument("--data-dir", default=None, help="dataset location")
    p.add_argument("--n-samples", type=int, default=10000, help="generated images to evaluate")
    p.add_argument("--n-test", type=int, default=None, help="test images (None: all)")
    p.add_argument("--n-validation", type=int, default=1000, help="Parzen validation images")
    p.add_argument("--out", default=None, help="run directory (default runs/quality-...)")
    p.add_argument("--results", default=str(RESULTS), help="JSON file the row is appended to")
    p.add_argument("--grid-dir", default=str(GRIDS), help="where the row's sample grid goes")
    p.add_argument("--note", default="", help="free text stored with the row")
    p.add_argument(
        "--metrics-every",
        type=int,
        default=None,
        help="score the held-out metrics after every N epochs (time to quality, stored per epoch)",
    )
    p.add_argument("--threads", type=int, default=None, help="BLAS threads while training")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=JSON",
        help="a preset override for training, e.g. --set 'generator_args={\"base_channels\": 32}' "
        "(repeatable; the row records them)",
    )
    p.add_argument(
        "--data-options",
        type=json.loads,
        default=None,
        help="the loader's options as JSON, e.g. '{\"batches\": [1]}' (CIFAR-10 batch 1 only)",
    )
    p.add_argument(
        "--cas-n",
        type=int,
        default=60000,
        help="conditional presets: generated images the CAS classifier trains on (0: no CAS)",
    )
    return p.parse_args(argv)


def _train_kwargs(fn, args, out_dir: Path) -> dict[str, Any]:
    """Keyword arguments for the trainer; the held-out split as the trainer supports it."""
    kw: dict[str, Any] = {
        "preset": args.preset,
        "device": args.device,
        "seed": args.seed,
        "data_dir": args.data_dir,
        "out_dir": out_dir,
        "progress": False,
        "max_steps": args.max_steps,
        "limit": args.limit,
        "metrics_every": args.metrics_every,
        "threads": args.threads,
    }
    if args.epochs is not None:
        kw["epochs"] = args.epochs
    params = inspect.signature(fn).parameters
    if "validation_size" in params:
        kw["validation_size"] = args.validation_size
    elif args.validation_size:  # hold out the tail by training on the head only
        n_total = 60000  # train_mnist only reads MNIST's 60,000 training images
        head = n_total - args.validation_size
        kw["limit"] = head if args.limit is None else min(args.limit, head)
    return kw


def overrides(args) -> dict[str, Any]:
    """``--set FIELD=JSON`` as keyword arguments of the trainer (preset overrides).

    Raises
    ------
    SystemExit
        An item without ``=`` or with a value that is not JSON (the item is named).
    """
    out: dict[str, Any] = {}
    for item in args.set:
        field, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError("no '='")
            out[field.strip()] = json.loads(value)
        except ValueError as e:
            raise SystemExit(f"quality.py: --set expected FIELD=JSON, got {item!r} ({e})") from e
    return _overrides_from_json(out)  # JSON lists back to the presets' tuples


def train(args) -> tuple[Path, dict[str, Any]]:
    """Train one run; return its checkpoint and the timing (wall and CPU minutes, steps)."""
    import minigan

    out_dir = Path(args.out or ROOT / "runs" / time.strftime("quality-%Y%m%d-%H%M%S"))
    fn = getattr(minigan, "train", None)  # until it exists, the submodule minigan.train
    if callable(fn):
        kw = _train_kwargs(fn, args, out_dir) | {"dataset": args.dataset}
        kw |= overrides(args)
        if args.data_options:
            kw["data_options"] = _overrides_from_json(args.data_options)
    elif args.dataset == "mnist":
        fn = minigan.train_mnist
        kw = _train_kwargs(fn, args, out_dir)
    else:
        raise SystemExit(f"quality.py: --dataset {args.dataset} needs minigan.train (not merged)")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    history = fn(**kw)
    timing = {
        "train_minutes": (time.perf_counter() - wall0) / 60.0,
        "train_cpu_minutes": (time.process_time() - cpu0) / 60.0,
        "steps": len(history.steps),
        "load_average": os.getloadavg()[0],  # a busy machine inflates the minutes
        "epochs": len(history.epochs),
        "per_epoch": _per_epoch(history),
    }
    return Path(history.artifacts["checkpoint"]), timing


def _per_epoch(history) -> list[dict[str, Any]]:
    """Time to quality: per epoch, the cumulative training seconds and the metrics, if scored."""
    out, seconds = [], 0.0
    for row in history.epochs:
        seconds += row["seconds"]
        out.append({"epoch": row["epoch"], "seconds": seconds, "metrics": row.get("metrics")})
    return out


def time_to_quality_plot(per_epoch: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """IS and FCD (held-out real row dashed) against cumulative training minutes; None when
    no epoch was scored (``--metrics-every`` not given)."""
    import matplotlib

    matplotlib.use("Agg")  # a file, no window (also on a machine without a display)
    import matplotlib.pyplot as plt

    scored = [e for e in per_epoch if e.get("metrics")]
    if not scored:
        return None
    minutes = [e["seconds"] / 60.0 for e in scored]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in ((axes[0], "inception_score", "IS"), (axes[1], "fcd", "FCD")):
        ax.plot(minutes, [e["metrics"][key] for e in scored], marker="o", ms=3, label="GAN")
        real = (scored[-1]["metrics"].get("reference") or {}).get(key)
        if real is not None:
            ax.axhline(real, color="gray", ls="--", lw=0.8, label="real (held out)")
        ax.set_xlabel("training minutes")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sample_grid(checkpoint: Path, path: Path, device: str) -> Path:
    """An 8x8 grid of samples from fixed noise (seed 0), as ``minigan sample`` draws it.

    A conditional GAN draws a K x 8 grid instead, row k asking for class k (``minigan sample
    --labels 0-9 --per-class 8``).
    """
    from minigan.checkpoint import gan_from_checkpoint
    from minigan.viz import save_image_grid

    gan, _, _ = gan_from_checkpoint(checkpoint, device=device)
    host = np.float32 if "32" in str(gan.dtype) else np.float64
    labels = None if not gan.conditional else np.repeat(np.arange(gan.num_classes), 8)
    n = 64 if labels is None else labels.size
    z = np.random.default_rng(0).standard_normal((n, gan.latent_dim), host)
    return save_image_grid(gan.sample(n, z=z, labels=labels), path, nrow=8)


def conditional_scores(checkpoint: Path, args) -> dict[str, Any]:
    """For a conditional GAN: label accuracy (the metric classifier's verdict on samples asked
    for each class) and the Classification Accuracy Score (Ravuri & Vinyals 2019) on ``--cas-n``
    generated images; empty for an unconditional one."""
    from minigan.checkpoint import gan_from_checkpoint
    from minigan.classifier import load_classifier
    from minigan.metrics import classification_accuracy_score, label_accuracy, labelled_samples

    gan, _, config = gan_from_checkpoint(checkpoint, device=args.device)
    if not gan.conditional:
        return {}
    dataset = config.get("dataset", args.dataset)
    clf = load_classifier(dataset=dataset, data_dir=args.data_dir, progress=False)
    acc = label_accuracy(gan, args.n_samples, classifier=clf)
    out: dict[str, Any] = {
        "label_accuracy": acc["accuracy"],
        "label_accuracy_per_class": acc["per_class"],
    }
    if args.cas_n:
        cas = classification_accuracy_score(
            lambda: labelled_samples(gan), n=args.cas_n, dataset=dataset, data_dir=args.data_dir,
            progress=False,
        )  # fmt: skip
        out.update(cas=cas["cas"], cas_real=cas["real_accuracy"], cas_n=cas["n"])
    return out


def _classifier_row(c: dict[str, Any] | None) -> dict[str, Any]:
    if not c:
        return {k: None for k in ("inception_score", "fcd", "kl_uniform", "coverage")}
    return {
        "inception_score": c["inception_score"],
        "inception_score_std": c["inception_score_std"],
        "fcd": c["fcd"],
        "kl_uniform": c["kl_uniform"],
        "coverage": c["digits_covered"],
        "histogram": c["histogram"],
    }


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def make_row(
    args, argv, stamp: str, checkpoint: Path, timing, results, grid, cond=None
) -> dict[str, Any]:
    """One JSON row from :func:`minigan.metrics.evaluate_checkpoint`'s results."""
    import minigan

    ref = results.get("reference") or {}
    nn, rnn = results["nearest"], ref.get("nearest")
    p, rp = results["parzen"], ref.get("parzen") or {}
    row: dict[str, Any] = {
        "id": f"{args.preset}-{args.dataset}-{stamp}",
        "preset": args.preset,
        "overrides": {k: v for k, v in (item.partition("=")[::2] for item in args.set)},
        "dataset": results["dataset"],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "minigan_version": minigan.__version__,
        "device": args.device,
        "checkpoint": _relative(checkpoint),
        **timing,
        "parzen": p["mean"],
        "parzen_stderr": p["stderr"],
        "parzen_sigma": p["sigma"],
        **_classifier_row(results.get("classifier")),
        "cas": None,  # conditional presets only (below)
        **(cond or {}),
        "nn_ratio": nn["median"] / rnn["median"] if rnn else None,
        "honest": results["protocol"]["honest"],
        "protocol": results["protocol"],
        "skipped": results.get("skipped", []),
        "classifier": results.get("classifier_info"),
        "n_samples": results["n_samples"],
        "real": {
            "parzen": rp.get("mean"),
            "parzen_stderr": rp.get("stderr"),
            **_classifier_row(ref.get("classifier")),
        },
        "grid": _relative(grid),
        "note": args.note,
        "command": " ".join(shlex.quote(a) for a in ["python", "benchmarks/quality.py", *argv]),
    }
    return row


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the JSON list in ``path`` (created if missing), atomically."""
    rows = json.loads(path.read_text()) if path.is_file() else []
    if not isinstance(rows, list):
        raise SystemExit(f"quality.py: {path} does not hold a JSON list of rows")
    rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from minigan.metrics import evaluate_checkpoint, format_table

    if args.checkpoint:
        checkpoint, timing = Path(args.checkpoint), {"train_minutes": None}
    else:
        checkpoint, timing = train(args)
    results = evaluate_checkpoint(
        checkpoint,
        device=args.device,
        data_dir=args.data_dir,
        n_samples=args.n_samples,
        n_neighbours=min(1000, args.n_samples),
        n_test=args.n_test,
        n_validation=args.n_validation,
        progress=False,
    )
    print(format_table(results), end="")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    grid_path = Path(args.grid_dir) / f"{args.preset}-{args.dataset}-{stamp}.png"
    grid = sample_grid(checkpoint, grid_path, args.device)
    curve = time_to_quality_plot(
        timing.get("per_epoch") or [],
        grid_path.with_name(grid_path.stem + "-time.png"),
        f"{args.preset} on {args.dataset}: held-out metrics while training",
    )
    timing["time_plot"] = None if curve is None else _relative(curve)
    cond = conditional_scores(checkpoint, args)
    if cond:
        cas = f", CAS {cond['cas']:.4f} (real {cond['cas_real']:.4f})" if "cas" in cond else ""
        print(f"label accuracy {cond['label_accuracy']:.2%}{cas}")
    row = make_row(args, argv, stamp, checkpoint, timing, results, grid, cond)
    append_row(Path(args.results), row)
    print(f"appended row {row['id']} to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
