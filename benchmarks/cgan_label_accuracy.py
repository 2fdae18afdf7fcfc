"""Does a conditional GAN draw the digit it is asked for? The metric classifier decides.

Draws ``--n`` samples from a ``cgan`` checkpoint with the labels ``i % 10``
(:meth:`minigan.gan.GAN.balanced_labels`, as ``minigan evaluate`` draws them), classifies them
with the cached MNIST metric classifier (:func:`minigan.classifier.load_classifier`) and prints
the share assigned to the asked-for digit, overall and per digit (target: >= 95%).

    python benchmarks/cgan_label_accuracy.py --checkpoint runs/x/checkpoint.npz
"""

from __future__ import annotations

import argparse
import json

from minigan.checkpoint import gan_from_checkpoint
from minigan.classifier import load_classifier
from minigan.metrics import label_accuracy


def checkpoint_label_accuracy(checkpoint: str, n: int = 10000, seed: int = 0) -> dict:
    """:func:`minigan.metrics.label_accuracy` of a checkpoint's GAN: overall and per digit."""
    gan, _, config = gan_from_checkpoint(checkpoint)
    if not gan.conditional:
        raise ValueError(f"{checkpoint}: expected a conditional GAN, got preset {config['preset']}")
    acc = label_accuracy(gan, n, seed=seed, classifier=load_classifier())
    return {"checkpoint": str(checkpoint), "n": n, "accuracy": acc["accuracy"],
            "per_digit": dict(enumerate(acc["per_class"])), "ema": gan.ema is not None}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    r = checkpoint_label_accuracy(args.checkpoint, args.n, args.seed)
    print(f"{r['accuracy']:.2%} of {r['n']} samples are the asked-for digit")
    print("per digit: " + ", ".join(f"{k}: {v:.1%}" for k, v in r["per_digit"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
