"""Kill tiny training runs at random moments (SIGINT and SIGKILL) and check what is left.

Issue 15's interrupt and SIGKILL loops, rerunnable::

    MINIGAN_DATA_DIR=/path/to/mnist python benchmarks/kill_loop.py --kills 10

One run directory; each round starts (or resumes) a tiny MNIST run in a child process, waits
a random time, then sends SIGINT (the child saves a checkpoint and exits 130) or SIGKILL (no
chance to clean up). After each kill it counts

* torn checkpoints: ``checkpoint.npz`` present but not loadable by ``load_checkpoint``;
* orphan temp files (``.*.tmp``) left by the killed child, and how many of them are still there
  once the next child has started (it must remove them, under the run's lock);

and at the end resumes to completion and compares every array of the final state with an
uninterrupted run of the same settings (bit for bit). Prints the figures (``--json``: one JSON
line). Exit status 1 if any check fails. tests/test_reliability.py runs it with 6 kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# 320 images, batch 32: 10 steps an epoch; 8 epochs; a checkpoint every epoch.
# argv: the run directory, then "tiny" or "default" (the model size).
CHILD = """
import sys
from pathlib import Path
from minigan.train import train_mnist
out = Path(sys.argv[1])
ck = out / "checkpoint.npz"
kw = dict(epochs=8, batch_size=32, limit=320, device="cpu", progress=False, log_every=5)
if sys.argv[2] == "tiny":  # else the default preset's full-size MLPs (a 17 MB checkpoint)
    kw |= dict(latent_dim=16, g_hidden=(64,), d_hidden=(64,))
if ck.exists():
    train_mnist(resume=ck, **kw)
else:
    train_mnist(out_dir=out, overwrite=True, **kw)  # a kill before the first checkpoint
"""


def _child(out: Path, size: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), size],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _temps(out: Path) -> list[Path]:
    return sorted(out.glob(".*.tmp")) + sorted(out.glob("samples/.*.tmp"))


def _torn(path: Path) -> bool:
    from minigan.checkpoint import load_checkpoint

    if not path.exists():
        return False
    try:
        load_checkpoint(path)
        return False
    except Exception:
        return True


def _final_state(out: Path) -> dict[str, np.ndarray]:
    from minigan.checkpoint import load_checkpoint

    state, _ = load_checkpoint(out / "checkpoint.npz")
    return {k: v for k, v in state.items() if k.startswith("gan.") and hasattr(v, "shape")}


def run(kills: int, workdir: Path, seed: int = 0, log=print, size: str = "tiny") -> dict:
    """The loop; returns the figures."""
    rng = random.Random(seed)
    ref, out = workdir / "reference", workdir / "killed"
    done = _child(ref, size)
    if done.wait() != 0:
        raise RuntimeError(f"the reference run failed: {done.stderr.read().decode()[-2000:]}")
    figures = {"kills": 0, "sigint": 0, "sigkill": 0, "torn_checkpoints": 0}
    figures |= {"orphans_after_kill": 0, "orphans_after_next_start": 0}
    pending: list[Path] = []  # orphans of the last kill, to be removed by the next start
    while figures["kills"] < kills:
        p = _child(out, size)
        deadline = time.monotonic() + 60  # until the child holds the lock and has cleaned up
        while any(t.exists() for t in pending) and p.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        figures["orphans_after_next_start"] += sum(t.exists() for t in pending)
        time.sleep(rng.uniform(0.2, 4.0))
        if p.poll() is not None:  # finished before the kill: start over from scratch
            (out / "checkpoint.npz").unlink()
            continue
        sig = rng.choice([signal.SIGINT, signal.SIGKILL])
        p.send_signal(sig)
        code = p.wait()
        figures["kills"] += 1
        figures["sigint" if sig == signal.SIGINT else "sigkill"] += 1
        torn = _torn(out / "checkpoint.npz")
        figures["torn_checkpoints"] += torn
        pending = _temps(out)
        figures["orphans_after_kill"] += len(pending)
        log(f"kill {figures['kills']}: {signal.Signals(sig).name}, exit {code}, torn {torn}, "
            f"temp files left {len(pending)}")  # fmt: skip
    last = _child(out, size)  # resume to the end
    if last.wait() != 0:
        raise RuntimeError(f"the final resume failed: {last.stderr.read().decode()[-2000:]}")
    figures["orphans_after_next_start"] += sum(t.exists() for t in pending)
    figures["temp_files_at_end"] = len(_temps(out))
    a, b = _final_state(ref), _final_state(out)
    figures["arrays_compared"] = len(a)
    figures["bit_identical"] = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=10, help="number of kills")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill moments and signals")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    ap.add_argument(
        "--size",
        default="tiny",
        choices=("tiny", "default"),
        help="tiny MLPs, or the default preset's (big checkpoints: kills land mid-write)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.dir or tmp)
        t0 = time.perf_counter()
        say = lambda s: print(s, file=sys.stderr)  # noqa: E731
        figures = run(args.kills, workdir, args.seed, log=say, size=args.size)
        figures["size"] = args.size
        figures["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    ok = figures["torn_checkpoints"] == 0 and figures["orphans_after_next_start"] == 0
    ok = ok and figures["temp_files_at_end"] == 0 and figures["bit_identical"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
