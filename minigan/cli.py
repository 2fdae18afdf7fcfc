"""The ``minigan`` command line (also ``python -m minigan``).

Subcommands::

    minigan train --preset default --dataset fashion-mnist [--epochs 30 --batch-size 64 ...]
    minigan train-mnist [--epochs 30 --batch-size 64 --preset default --device auto ...]
    minigan presets
    minigan sample --checkpoint runs/.../checkpoint.npz --n 64 --out grid.png
    minigan check path/to/student_layers.py [--verbose --format json --only linear,sigmoid]
    minigan evaluate --checkpoint runs/.../checkpoint.npz [--device auto --n-samples 10000]

Every subcommand is a setup function registered with :func:`command`: it adds its parser to
the subparsers and sets ``func`` (what runs it). Adding one is a new decorated function.

Bad input (``ValueError``, missing files, ``--device gpu`` without CuPy, ...) prints one line
``minigan: error: ...`` to stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "build_parser", "command", "COMMANDS"]

#: Subcommand name -> setup function ``setup(subparsers) -> None``.
COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {}

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults, keep the description's line breaks."""


def command(name: str):
    """Register a subcommand setup function under ``name`` (decorator)."""

    def register(setup: Callable[[argparse._SubParsersAction], None]):
        COMMANDS[name] = setup
        return setup

    return register


def _add_parser(sub, name: str, help: str, description: str | None = None):
    return sub.add_parser(
        name, help=help, description=description or help, formatter_class=_Formatter
    )


# ----------------------------------------------------------------------------------------------
# train, train-mnist, presets
# ----------------------------------------------------------------------------------------------
def _data_option(text: str) -> tuple[str, object]:
    """``"batches=1,2"`` -> ``("batches", (1, 2))``; ``"k=3"`` -> ``("k", 3)``; else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    parts = value.split(",")
    try:
        ints = tuple(int(v) for v in parts)
    except ValueError:
        return key, value
    return key, ints if len(parts) > 1 else ints[0]


def _add_train_flags(p, *, dataset: bool) -> None:
    """The flags ``train`` and ``train-mnist`` share (``train`` adds ``--dataset``)."""
    from .data import DATASETS
    from .presets import PRESETS

    if dataset:
        p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS), help="data set")
        p.add_argument(
            "--data-option",
            action="append",
            default=[],
            type=_data_option,
            metavar="KEY=VALUE",
            help="an option of minigan.data.load, repeatable; VALUE is an int, a "
            "comma-separated tuple of ints, or a string (e.g. batches=1 for CIFAR-10's first "
            "batch only)",
        )
    p.add_argument(  # SUPPRESS: absent unless given (train() then takes the preset's)
        "--epochs",
        type=int,
        default=argparse.SUPPRESS,
        help="total number of epochs; with --resume, the run's (default: the preset's)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=argparse.SUPPRESS,
        help="real images per step; with --resume, the run's (default: the preset's)",
    )
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="model preset")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "gpu"),
        help="auto = the GPU when CuPy sees one, else the CPU",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights, noise and data order")
    p.add_argument(
        "--data-dir",
        default=None,
        help="data root holding <dataset>/ (or the folder of the MNIST .gz files); None = "
        "$MINIGAN_DATA_DIR, else the user cache dir (downloaded there if missing)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output directory; None = runs/<dataset>-<date>-<time>, or the checkpoint's "
        "directory with --resume",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue from this checkpoint.npz (with its settings and epochs)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="allow an --out that holds an earlier run (its run files are deleted first)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line/epoch)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument(
        "--limit", type=int, default=None, help="train on the first N images only (small mode)"
    )
    p.add_argument(
        "--validation-size",
        type=int,
        default=None,
        metavar="N",
        help="hold out the last N training images (10000: train on MNIST 0..49,999, hold out "
        "50,000..59,999 for minigan evaluate)",
    )
    p.add_argument("--log-every", type=int, default=50, help="steps between loss transfers")
    p.add_argument("--lr", type=float, default=None, help="learning rate; None = the preset's")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads during training; None = one per core. 1 is faster when another "
        "busy process shares a small machine (docs/benchmarks.md)",
    )


_TRAIN_EPILOG = (
    "Writes to --out: samples/epoch_NNN.png (a grid from fixed noise after every epoch),\n"
    "losses.png, progress.gif, log.json, log.csv and checkpoint.npz (every epoch, at\n"
    "the end, and on Ctrl-C). Continue a run with --resume OUT/checkpoint.npz."
)


@command("train-mnist")
def _setup_train_mnist(sub) -> None:
    p = _add_parser(
        sub,
        "train-mnist",
        "train the MLP GAN on real MNIST",
        "Train the MLP GAN on the real MNIST training set (60000 images).\n\n" + _TRAIN_EPILOG,
    )
    _add_train_flags(p, dataset=False)
    p.set_defaults(func=_run_train, dataset="mnist", data_option=[])


@command("train")
def _setup_train(sub) -> None:
    p = _add_parser(
        sub,
        "train",
        "train a preset's GAN on a dataset (minigan presets lists the presets)",
        "Train the GAN of --preset on the training set of --dataset.\n\n" + _TRAIN_EPILOG,
    )
    _add_train_flags(p, dataset=True)
    p.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from .train import train

    overrides = {} if args.lr is None else {"lr": args.lr}
    history = train(
        preset=args.preset,
        dataset=args.dataset,
        epochs=getattr(args, "epochs", None),
        batch_size=getattr(args, "batch_size", None),
        device=args.device,
        seed=args.seed,
        data_dir=args.data_dir,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.no_progress,
        log_every=args.log_every,
        max_steps=args.max_steps,
        limit=args.limit,
        threads=args.threads,
        validation_size=args.validation_size,
        overwrite=args.overwrite,
        data_options=dict(args.data_option),
        **overrides,
    )
    print(f"done: {len(history.steps)} steps; wrote to {history.out_dir}:")
    for name, path in history.artifacts.items():
        print(f"  {name:10s} {path}")
    return 0


@command("presets")
def _setup_presets(sub) -> None:
    p = _add_parser(sub, "presets", "list the presets (one line each)")
    p.set_defaults(func=_run_presets)


def _run_presets(args) -> int:
    from .presets import PRESETS, preset_line

    for preset in PRESETS.values():
        print(preset_line(preset))
    return 0


# ----------------------------------------------------------------------------------------------
# sample
# ----------------------------------------------------------------------------------------------
@command("sample")
def _setup_sample(sub) -> None:
    p = _add_parser(
        sub,
        "sample",
        "draw a grid of generated digits from a checkpoint",
        "Rebuild the GAN saved in a checkpoint and write a PNG grid of generated images.",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz from train")
    p.add_argument("--n", type=int, default=64, help="number of images (at most 10000)")
    p.add_argument("--out", default="grid.png", help="output PNG")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "gpu"), help="device")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise z")
    p.add_argument(
        "--labels",
        default=None,
        help="conditional GANs: classes to draw, e.g. 0-9 or 1,3,7; one row of --per-class "
        "images per class (replaces --n)",
    )
    p.add_argument("--per-class", type=int, default=10, help="images per class with --labels")
    p.set_defaults(func=_run_sample)


_SAMPLE_BATCH = 1000  # images generated (and copied to the host) at a time by `sample`


def _output_file(flag: str, value, suffixes: tuple[str, ...] = ()):
    """Check an output path before any work: not a directory, a known suffix; create parents."""
    from pathlib import Path

    path = Path(value)
    if str(value) == "" or path.is_dir():
        raise ValueError(f"{flag}: {str(value)!r} is a directory; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{flag}: expected a file name ending in {' or '.join(suffixes)}, got {str(value)!r}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"{flag}: cannot create the folder for {value}: {e}") from e
    if not os.access(path.parent, os.W_OK):
        raise OSError(f"{flag}: the folder {path.parent} is not writable")
    return path


def _check_seed(flag: str, seed: int) -> None:
    if seed < 0:
        raise ValueError(f"{flag}: expected an int >= 0, got {seed}")


def parse_labels(text: str) -> list[int]:
    """``"0-9"`` -> [0, ..., 9]; ``"1,3,7"`` -> [1, 3, 7]; ``"0-2,5"`` -> [0, 1, 2, 5].

    Raises
    ------
    ValueError
        A part that is not an int or a range ``a-b`` with a <= b.
    """
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ValueError(f"--labels: expected e.g. 0-9 or 1,3,7, got {text!r}") from None
        if a > b:
            raise ValueError(f"--labels: range {part!r} runs backwards")
        out.extend(range(a, b + 1))
    return out


def _run_sample(args) -> int:
    import numpy as np

    from .backend import to_numpy
    from .checkpoint import gan_from_checkpoint
    from .viz import IMAGE_SUFFIXES, MAX_GRID_IMAGES, save_image_grid

    labels = None
    if args.labels is not None:
        if args.per_class < 1:
            raise ValueError(f"--per-class: expected >= 1, got {args.per_class}")
        labels = np.repeat(parse_labels(args.labels), args.per_class)  # one row per class
        args.n = len(labels)
    if args.n < 1:
        raise ValueError(f"--n: expected >= 1, got {args.n}")
    if args.n > MAX_GRID_IMAGES:
        raise ValueError(
            f"--n: at most {MAX_GRID_IMAGES} images fit in one grid picture "
            f"({math.isqrt(MAX_GRID_IMAGES)} x {math.isqrt(MAX_GRID_IMAGES)} digits), got "
            f"{args.n}; draw several grids with different --seed"
        )
    _check_seed("--seed", args.seed)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint}: no such file")
    out = _output_file("--out", args.out, IMAGE_SUFFIXES)
    gan, _, _ = gan_from_checkpoint(args.checkpoint, device=args.device)
    if labels is None:
        labels = gan.balanced_labels(args.n)  # a conditional GAN without --labels: all classes
    host_dtype = np.float32 if "32" in str(gan.dtype) else np.float64
    rng = np.random.default_rng(args.seed)
    parts = []  # generated and copied to the host a batch at a time
    for start in range(0, args.n, _SAMPLE_BATCH):
        b = min(_SAMPLE_BATCH, args.n - start)
        z = rng.standard_normal((b, gan.latent_dim), host_dtype)
        part_labels = None if labels is None else labels[start : start + b]
        parts.append(to_numpy(gan.sample(b, z=z, labels=part_labels)))
    images = np.concatenate(parts, axis=0).reshape(args.n, *gan.image_shape)  # grey or RGB
    nrow = args.per_class if args.labels is not None else math.ceil(math.sqrt(args.n))
    path = save_image_grid(images, out, nrow=nrow)
    print(f"wrote {args.n} samples to {path}")
    return 0


# ----------------------------------------------------------------------------------------------
# check (coursework grader, minigan.grading)
# ----------------------------------------------------------------------------------------------
@command("check")
def _setup_check(sub) -> None:
    from .grading import DEFAULT_TIMEOUT, EXERCISES

    p = _add_parser(
        sub,
        "check",
        "grade a student's backward passes (RUNS the student's file)",
        "Grade a filled-in copy of exercises/student_layers.py (exercises 1-5) or\n"
        "exercises/student_conv.py (6-9; chosen by the names the file defines): gradient-check\n"
        "its backward passes against finite differences on several shapes and seeds, check the\n"
        "layer contract (accumulation, input_grad=False, frozen modules, no side effects), and\n"
        "print a per-tensor report with partial credit per exercise.\n\n"
        "This EXECUTES the student's Python code, in a separate process stopped after\n"
        "--timeout seconds, with your user's rights: grade untrusted files in a sandbox.\n"
        "The verdict comes only from the result the grading process writes; a file that ends\n"
        "the process early (sys.exit, os._exit, a crash, the time limit) fails.\n\n"
        "Exit status: 0 when every exercise passes, 1 otherwise, 2 on bad input.",
    )
    p.add_argument("path", help="the student's student_layers.py or student_conv.py")
    p.add_argument("--verbose", action="store_true", help="also list passing rows (text)")
    p.add_argument(
        "--format",
        default="text",
        choices=("text", "json", "gradescope"),
        help="text report, JSON report, or a Gradescope autograder results.json",
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument(
        "--output",
        default=None,
        metavar="PATH",
        help="write the report to PATH (e.g. /autograder/results/results.json) instead of "
        "stdout; parent directories are created",
    )
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated exercises to grade ({', '.join(e.key for e in EXERCISES)}); "
        "default: all",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the test inputs")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds the student's code may run in total",
    )
    p.set_defaults(func=_run_check)


def _run_check(args) -> int:
    import json
    from pathlib import Path

    from .grading import grade_file

    only = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else None
    out = Path(args.output) if args.output else None
    if out is not None:
        if out.is_dir():
            raise ValueError(f"--output: {out} is a directory; give a file name")
        out.parent.mkdir(parents=True, exist_ok=True)  # fail on a bad path before grading
    report = grade_file(args.path, exercises=only, seed=args.seed, timeout=args.timeout)
    fmt = "json" if args.json else args.format
    if fmt == "gradescope":
        text = json.dumps(report.to_gradescope(), indent=2)
    elif fmt == "json":
        text = json.dumps(report.to_dict(), indent=2)
    else:
        text = report.format(args.verbose)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {out}: score {report.score:g}/{report.total:g}")
    return 0 if report.passed else 1


# ----------------------------------------------------------------------------------------------
# evaluate (minigan.metrics)
# ----------------------------------------------------------------------------------------------
@command("evaluate")
def _setup_evaluate(sub) -> None:
    p = _add_parser(
        sub,
        "evaluate",
        "score a trained GAN: Parzen log-likelihood, classifier metrics, nearest neighbours",
        "Rebuild the GAN in a checkpoint, draw --n-samples images and print a table of:\n"
        "the Parzen-window log-likelihood of the MNIST test set with the protocol of\n"
        "Goodfellow et al. 2014 (next to the paper's Table 1), classifier-based Inception\n"
        "Score, Frechet classifier distance, class histogram and digits covered (next to the\n"
        "real test set's), and the distance to the nearest training image. The MNIST\n"
        "classifier is trained once (about a minute) and cached.",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz from train-mnist")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"), help="device")
    p.add_argument("--n-samples", type=int, default=10000, help="generated images")
    p.add_argument(
        "--data-dir",
        default=None,
        help="directory of the MNIST .gz files; None = $MINIGAN_DATA_DIR, else the user cache dir",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise z")
    p.add_argument(
        "--sigma", type=float, default=None, help="Parzen bandwidth; None = choose on validation"
    )
    p.add_argument("--no-reference", action="store_true", help="skip the real-data reference rows")
    p.add_argument("--figure", default=None, help="save the nearest-neighbour figure (PNG)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    import json

    from .metrics import evaluate_checkpoint, format_table

    _check_seed("--seed", args.seed)
    # Output paths are checked (and their folders created) before the evaluation runs.
    json_path = _output_file("--json", args.json) if args.json else None
    if args.figure:
        from .viz import IMAGE_SUFFIXES

        _output_file("--figure", args.figure, IMAGE_SUFFIXES)
    results = evaluate_checkpoint(
        args.checkpoint,
        device=args.device,
        data_dir=args.data_dir,
        n_samples=args.n_samples,
        seed=args.seed,
        sigma=args.sigma,
        reference=not args.no_reference,
        figure=args.figure,
    )
    print(format_table(results), end="")
    if json_path is not None:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {json_path}")
    return 0


# ----------------------------------------------------------------------------------------------
# export (minigan.export)
# ----------------------------------------------------------------------------------------------
@command("export")
def _setup_export(sub) -> None:
    from .export import EXPORT_FORMATS, NETS

    p = _add_parser(
        sub,
        "export",
        "export a trained generator (or discriminator) to PyTorch or ONNX",
        "Rebuild the GAN in a checkpoint and write one of its networks (eval mode, CPU):\n"
        "  --format onnx   an ONNX model (input 'input' of shape (N, ...), output 'output',\n"
        "                  dynamic batch N), for onnxruntime in Python, C++ or a browser;\n"
        "  --format torch  a torch.export program (.pt2) with a dynamic batch:\n"
        "                  torch.export.load(FILE).module() runs it without minigan.\n"
        'Needs onnx for --format onnx (pip install "minigan[export]"), torch for --format\n'
        "torch (pip install torch).",
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint.npz from train-mnist")
    p.add_argument("--format", required=True, choices=sorted(EXPORT_FORMATS), help="file format")
    p.add_argument(
        "--out", required=True, help="output file (.onnx or .pt2); its folder must exist"
    )
    p.add_argument("--net", default="generator", choices=NETS, help="which network")
    p.set_defaults(func=_run_export)


def _run_export(args) -> int:
    from .export import export_checkpoint

    try:
        path = export_checkpoint(args.checkpoint, args.out, format=args.format, net=args.net)
    except ImportError as e:  # a missing optional package: one line, like other bad input
        raise RuntimeError(str(e)) from e
    print(f"wrote the {args.net} as {args.format} to {path}")
    return 0


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``minigan`` parser with every registered subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="minigan",
        description="minigan: a from-scratch GAN library on NumPy/CuPy.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"minigan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for setup in COMMANDS.values():
        setup(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 diverged, 2 bad input, 130 Ctrl-C)."""
    args = build_parser().parse_args(argv)
    from .train import NonFiniteLossError

    try:
        return int(args.func(args) or 0)
    except NonFiniteLossError as e:
        print(f"minigan: training stopped: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP (train.Interrupted)
        print("minigan: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", EXIT_INTERRUPTED - 128)
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:
        msg = " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())
        print(f"minigan: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
