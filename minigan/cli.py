"""The ``minigan`` command line (also ``python -m minigan``).

Subcommands::

    minigan train --preset default --dataset fashion-mnist [--epochs 30 --batch-size 64 ...]
    minigan train-mnist [--epochs 30 --batch-size 64 --preset default --device auto ...]
    minigan presets
    minigan sample --checkpoint runs/.../checkpoint.npz --n 64 --out grid.png
    minigan check path/to/student_layers.py [--verbose --json --only linear,sigmoid]
    minigan evaluate --checkpoint runs/.../checkpoint.npz [--device auto --n-samples 10000]

Every subcommand is a setup function registered with :func:`command`: it adds its parser to
the subparsers and sets ``func`` (what runs it). Adding one is a new decorated function.

Bad input (``ValueError``, missing files, ``--device gpu`` without CuPy, ...) prints one line
``minigan: error: ...`` to stderr and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import math
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
    if dataset:  # train: None = the preset's values
        p.add_argument("--epochs", type=int, default=None, help="epochs; None = the preset's")
        p.add_argument("--batch-size", type=int, default=None, help="None = the preset's")
    else:
        p.add_argument("--epochs", type=int, default=30, help="total number of epochs")
        p.add_argument("--batch-size", type=int, default=64, help="real images per step")
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
        help="continue from this checkpoint.npz (with its settings)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line/epoch)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument(
        "--limit", type=int, default=None, help="train on the first N images only (small mode)"
    )
    p.add_argument("--log-every", type=int, default=50, help="steps between loss transfers")
    p.add_argument("--lr", type=float, default=None, help="learning rate; None = the preset's")


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
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        data_dir=args.data_dir,
        out_dir=args.out,
        resume=args.resume,
        progress=not args.no_progress,
        log_every=args.log_every,
        max_steps=args.max_steps,
        limit=args.limit,
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
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--out", default="grid.png", help="output PNG")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "gpu"), help="device")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise z")
    p.set_defaults(func=_run_sample)


def _run_sample(args) -> int:
    import numpy as np

    from .checkpoint import gan_from_checkpoint
    from .viz import save_image_grid

    if args.n < 1:
        raise ValueError(f"--n: expected >= 1, got {args.n}")
    gan, _, _ = gan_from_checkpoint(args.checkpoint, device=args.device)
    host_dtype = np.float32 if "32" in str(gan.dtype) else np.float64
    z = np.random.default_rng(args.seed).standard_normal((args.n, gan.latent_dim), host_dtype)
    images = gan.sample(args.n, z=z)
    images = gan.backend.xp.reshape(images, (args.n, *gan.image_shape))  # grey or RGB
    path = save_image_grid(images, args.out, nrow=math.ceil(math.sqrt(args.n)))
    print(f"wrote {args.n} samples to {path}")
    return 0


# ----------------------------------------------------------------------------------------------
# check (coursework grader, minigan.grading)
# ----------------------------------------------------------------------------------------------
@command("check")
def _setup_check(sub) -> None:
    p = _add_parser(
        sub,
        "check",
        "grade a student's backward passes (exercises/student_layers.py)",
        "Import a filled-in copy of exercises/student_layers.py, gradient-check its backward\n"
        "passes against finite differences, and print a per-tensor report and a score.\n"
        "Exit status: 0 when every exercise passes, 1 otherwise. The file is executed: grade\n"
        "untrusted files in a sandbox.",
    )
    p.add_argument("path", help="the student's student_layers.py")
    p.add_argument("--verbose", action="store_true", help="also list passing rows")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated exercises to grade (leaky_relu, sigmoid, linear, "
        "bce_with_logits, d_loss_grad_fake); default: all",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the test inputs")
    p.set_defaults(func=_run_check)


def _run_check(args) -> int:
    import json

    from .grading import grade_file

    only = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else None
    report = grade_file(args.path, exercises=only, seed=args.seed)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format(args.verbose))
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

    from .checkpoint import load_checkpoint
    from .data import DATASETS, get_dataset
    from .metrics import evaluate_checkpoint, format_table

    dataset = get_dataset(load_checkpoint(args.checkpoint)[1].get("dataset", "mnist"))
    if not dataset.classifier_metrics:
        have = sorted(k for k, d in DATASETS.items() if d.classifier_metrics)
        print(
            f"{dataset.title}: the Parzen log-likelihood and the classifier metrics exist only "
            f"for {have} so far; nearest training images only:"
        )
        return _evaluate_nearest(args, dataset)
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def _evaluate_nearest(args, dataset) -> int:
    """Distance of samples (and of test images) to their nearest training image, any dataset."""
    import numpy as np

    from .checkpoint import _overrides_from_json, gan_from_checkpoint
    from .data import load
    from .metrics import generate_samples, nearest_neighbours

    gan, _, config = gan_from_checkpoint(args.checkpoint, device=args.device)
    data_options = _overrides_from_json(config.get("data_options", {}))  # the training subset

    def flat(u8):  # uint8 (N, C, H, W) -> (N, C*H*W) in [0, 1] on the device
        return gan.backend.asarray(u8.reshape(u8.shape[0], -1).astype(np.float32) / 255.0)

    train = flat(load(dataset.name, "train", root=args.data_dir, **data_options)[0])
    n = min(args.n_samples, 1000)
    samples = gan.backend.xp.reshape(generate_samples(gan, n, seed=args.seed), (n, -1))
    rows = [("samples", samples)]
    if not args.no_reference:
        rows.append(
            ("real test images", flat(load(dataset.name, "test", root=args.data_dir)[0])[:n])
        )
    for name, queries in rows:
        _, d = nearest_neighbours(queries, train)
        print(
            f"  {name:<18} nearest training image: median {np.median(d):.3f}, mean {d.mean():.3f}"
        )
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
    except KeyboardInterrupt:
        print("minigan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:
        msg = " ".join(str(e.args[0] if isinstance(e, KeyError) and e.args else e).split())
        print(f"minigan: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
