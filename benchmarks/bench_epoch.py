"""Wall time of one full MNIST epoch (60 000 real images, batch 64, default preset).

Two numbers, both on real MNIST:

* ``train_mnist``: ``minigan.train_mnist(epochs=1, ...)`` end to end, as a user runs it
  (data loading, model building, the 938 steps with loss logging and health checks, the sample
  grid, the checkpoint and the logs), plus the epoch's own ``seconds`` from its history;
* ``steps only``: the bare loop ``for real in BatchIterator(...): gan.train_step(real)`` over
  one epoch, i.e. what ``benchmarks/bench_step.py`` times, 938 times in a row.

The MNIST files come from ``--data-dir`` or ``$MINIGAN_DATA_DIR`` (never downloaded here).
Results go to ``benchmarks/results/epoch_<device>.{json,md}``.

Usage::

    MINIGAN_DATA_DIR=/path/to/mnist python benchmarks/bench_epoch.py [--device gpu]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

import minigan
from minigan.data import BatchIterator, load_mnist, preprocess
from minigan.gan import build_gan

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _sync(device: str) -> None:
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()


def steps_only(device: str, data_dir, batch_size: int, seed: int = 0, limit=None) -> dict:
    """Time one epoch of bare ``train_step`` calls on real MNIST batches already on the device."""
    images, _ = load_mnist("train", root=data_dir, download=False)
    images = images[:limit]
    gan = build_gan("default", device=device, seed=seed)
    batches = BatchIterator(
        preprocess(images), batch_size, device=gan.backend, shuffle=True, drop_last=False, seed=seed
    )
    out = None
    steps = 0
    _sync(device)
    t0 = time.perf_counter()
    for real in batches:
        out = gan.train_step(real)
        steps += 1
    _sync(device)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "steps": steps,
        "ms_per_step": 1e3 * seconds / steps,
        "final_d_loss": float(out["d_loss"]),  # one host transfer, after the clock stopped
        "final_g_loss": float(out["g_loss"]),
    }


def full_epoch(device: str, data_dir, batch_size: int, seed: int = 0, limit=None) -> dict:
    """``minigan.train_mnist(epochs=1)`` end to end, in a temporary output folder."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        hist = minigan.train_mnist(
            epochs=1,
            batch_size=batch_size,
            device=device,
            seed=seed,
            data_dir=data_dir,
            out_dir=Path(tmp) / "run",
            progress=False,
            limit=limit,
        )
        _sync(device)
        seconds = time.perf_counter() - t0
    epoch = hist.epochs[0]
    return {
        "seconds_total": seconds,
        "seconds_epoch": float(epoch["seconds"]),
        "steps": int(epoch["steps"]),
        "d_loss_mean": float(epoch.get("d_loss", float("nan"))),
        "g_loss_mean": float(epoch.get("g_loss", float("nan"))),
    }


def markdown(res: dict) -> str:
    lines = [
        "| what | steps | wall time | ms/step |",
        "|---|---|---|---|",
    ]
    if "train_mnist" in res:
        t = res["train_mnist"]
        per_step = 1e3 * t["seconds_epoch"] / t["steps"]
        lines.append(
            f"| `train_mnist(epochs=1)` end to end | {t['steps']} | {t['seconds_total']:.1f} s "
            f"(epoch loop {t['seconds_epoch']:.1f} s) | {per_step:.1f} |"
        )
    if "steps_only" in res:
        s = res["steps_only"]
        lines.append(
            f"| bare `train_step` loop over one epoch | {s['steps']} | {s['seconds']:.1f} s | "
            f"{s['ms_per_step']:.1f} |"
        )
    lines += [
        "",
        f"Device: {res['device']}, batch {res['batch_size']}, default preset, float32, real MNIST "
        f"({res['limit'] or '60 000'} images). {res['date']}; NumPy {res['numpy']}; "
        f"{os.cpu_count()} logical CPUs; load average after: {res['loadavg_after']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--data-dir", default=os.environ.get("MINIGAN_DATA_DIR"))
    ap.add_argument("--limit", type=int, help="first N images only (a quick smoke run)")
    ap.add_argument("--skip-train-mnist", action="store_true", help="bare step loop only")
    ap.add_argument("--skip-steps-only", action="store_true", help="train_mnist only")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    res = {
        "device": args.device,
        "batch_size": args.batch_size,
        "limit": args.limit,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "numpy": np.__version__,
        "minigan": minigan.__version__,
    }
    if not args.skip_steps_only:
        res["steps_only"] = steps_only(
            args.device, args.data_dir, args.batch_size, limit=args.limit
        )
        print(f"steps only: {res['steps_only']}")
    if not args.skip_train_mnist:
        res["train_mnist"] = full_epoch(
            args.device, args.data_dir, args.batch_size, limit=args.limit
        )
        print(f"train_mnist: {res['train_mnist']}")
    res["loadavg_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    md = markdown(res)
    print(md)
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"epoch_{args.device}.json").write_text(json.dumps(res, indent=2) + "\n")
        (args.out / f"epoch_{args.device}.md").write_text(md)
        print(f"wrote {args.out / f'epoch_{args.device}.json'} and .md")


if __name__ == "__main__":
    main()
