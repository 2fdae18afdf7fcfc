"""Pictures of training: image grids (PNG), loss curves (PNG) and an animated GIF.

Image grids are written with Pillow (exact pixels, small files); plots use matplotlib's
object-oriented API on the Agg canvas (``matplotlib.figure.Figure``), which never opens a
window and does not touch pyplot's global state, so it works on servers and in CI.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from .backend import to_numpy
from .files import atomic_write

__all__ = [
    "to_uint8",
    "image_grid",
    "save_image_grid",
    "plot_losses",
    "make_gif",
    "BCE_REFERENCE",
    "MAX_GRID_IMAGES",
    "IMAGE_SUFFIXES",
]

#: Most images :func:`image_grid` tiles: 100 x 100 MNIST digits are already a 6,000-pixel-wide
#: picture (12,000 at ``scale=2``); a grid of a million would be a 30,000 x 30,000 picture that
#: no viewer shows and that needs gigabytes to build.
MAX_GRID_IMAGES = 10_000

#: File endings the image writers accept (Pillow's formats for a grayscale grid).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def to_uint8(images) -> np.ndarray:
    """Map images in [-1, 1] (any backend) to host uint8 pixels: ``round((x + 1) * 127.5)``.

    Values outside [-1, 1] are clipped; NaN becomes 0. Shapes: any shape in, the same shape
    out, host uint8. Raises nothing of its own.
    """
    x = to_numpy(images).astype(np.float64)
    x = np.nan_to_num(x, nan=-1.0)
    return np.round((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _as_nhwc(pix: np.ndarray, side: int | None) -> np.ndarray:
    """uint8 images (N, D), (N, H, W) or (N, C, H, W) with C in {1, 3} -> (N, H, W, C)."""
    if pix.ndim == 2:
        n, d = pix.shape
        s = side or math.isqrt(d)
        if s * s != d:
            raise ValueError(f"images: {d} values per image is not a square image; pass side=")
        pix = pix.reshape(n, s, s)
    if pix.ndim == 3:
        pix = pix[:, None]
    if pix.ndim != 4 or pix.shape[0] == 0 or pix.shape[1] not in (1, 3):
        raise ValueError(
            "images: expected shape (N, D), (N, H, W) or (N, C, H, W) with C = 1 or 3 and "
            f"N >= 1, got {pix.shape}"
        )
    return np.transpose(pix, (0, 2, 3, 1))


def image_grid(images, nrow: int = 8, padding: int = 2, side: int | None = None) -> np.ndarray:
    """Tile images into one picture: grayscale for one channel, RGB for three.

    Parameters
    ----------
    images : array (N, side*side), (N, H, W) or (N, C, H, W) with C = 1 or 3, values in
        [-1, 1], any backend
    nrow : int
        Images per row (as ``torchvision.utils.make_grid``).
    padding : int
        Pixels of black border between and around images.
    side : int, optional
        Image side for flat input; default ``sqrt(D)``.

    Returns
    -------
    numpy.ndarray uint8 (rows * (H + padding) + padding, ncol * (W + padding) + padding), with a
    last axis of 3 for RGB images

    Raises
    ------
    ValueError
        Empty input, more than :data:`MAX_GRID_IMAGES` images, flat vectors that are not
        square images, a channel count other than 1 or 3, or ``nrow < 1``.
    """
    if images.shape[0] > MAX_GRID_IMAGES:
        raise ValueError(
            f"images: at most {MAX_GRID_IMAGES} fit in one grid (MAX_GRID_IMAGES), got "
            f"{images.shape[0]}"
        )
    pix = _as_nhwc(to_uint8(images), side)
    if nrow < 1:
        raise ValueError(f"nrow: expected >= 1, got {nrow}")
    n, h, w, c = pix.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    grid = np.zeros((rows * (h + padding) + padding, ncol * (w + padding) + padding, c), np.uint8)
    for i in range(n):
        r, col = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = pix[i]
    return grid[:, :, 0] if c == 1 else grid


def save_image_grid(
    images, path: str | os.PathLike, nrow: int = 8, *, padding: int = 2, scale: int = 2
) -> Path:
    """Write a grid of images in [-1, 1] as a PNG (grayscale, or RGB for 3 channels).

    Parameters
    ----------
    images : array (N, 784), (N, 28, 28) or (N, C, H, W), values in [-1, 1]
        (e.g. ``gan.sample(64)``)
    path : output ``.png`` path (parent directories are created)
    nrow : int
        Images per row.
    padding : int
        Border pixels between images.
    scale : int
        Integer upscaling (nearest neighbour) so the images are easy to see.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ValueError
        ``images`` of a shape :func:`image_grid` refuses; ``nrow < 1``.
    OSError
        ``path`` cannot be created or written.
    """
    from PIL import Image

    grid = image_grid(images, nrow=nrow, padding=padding)
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path: expected an image file name such as grid.png, got {path}")
    with atomic_write(path) as f:  # a link at path is replaced, never written through
        Image.fromarray(grid).save(f, format=fmt, optimize=True)
    return path


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or y.size < window:
        return y
    kernel = np.ones(window) / window
    return np.convolve(y, kernel, mode="valid")


#: minigan 0.1's reference lines, for callers that pass no ``reference`` (the BCE games).
BCE_REFERENCE = {"d_loss": 2 * math.log(2), "d_real": 0.5, "d_fake": 0.5}
_LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))"}


def _plot_panel(ax, x, steps, keys, window, reference) -> None:
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    for key, color in zip(keys, colors * len(keys), strict=False):
        y = np.asarray([s[key] for s in steps], dtype=np.float64)
        label = _LABELS.get(key, key)
        if window > 1 and y.size >= window:
            ax.plot(x, y, color=color, alpha=0.25, linewidth=0.6)
            xs = x[window - 1 :]
            ax.plot(xs, _moving_average(y, window), color=color, label=label, linewidth=1.4)
        else:
            ax.plot(x, y, color=color, label=label, linewidth=1.2)
    for value in sorted({reference[k] for k in keys if k in reference}):
        ax.axhline(value, color="gray", linestyle="--", linewidth=0.8)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)


def plot_losses(
    steps: Sequence[Mapping[str, float]],
    path: str | os.PathLike,
    smooth: int | None = None,
    *,
    reference: Mapping[str, float] | None = None,
) -> Path:
    """Plot the losses (top) and the other per-step metrics (bottom) against the step, as a PNG.

    Parameters
    ----------
    steps : sequence of dicts with ``step`` and the metrics (``History.steps``)
        Keys ending in ``_loss`` go to the top panel, the others (but ``epoch``) below.
    path : output ``.png`` path
    smooth : int, optional
        Moving-average window drawn over the raw curves; default ``len(steps) // 50``.
    reference : dict of metric -> value, optional
        Dashed lines (``Objective.reference_lines``); default :data:`BCE_REFERENCE`, the
        equilibrium of the BCE games; ``{}`` for none.

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ValueError
        ``steps`` is empty.
    KeyError
        A step lacks ``step`` or a metric of the first step.
    OSError
        ``path`` cannot be created or written.

    Notes
    -----
    At the equilibrium of the GAN game D(x) = D(G(z)) = 1/2 and the D loss is
    ``2 log 2 ~= 1.386`` (Goodfellow et al. 2014, Thm. 1). The y axes follow the data; the
    bottom one is fixed to [0, 1] when every value there is a probability.
    """
    from matplotlib.figure import Figure

    if len(steps) == 0:
        raise ValueError("steps: nothing to plot (empty list)")
    reference = BCE_REFERENCE if reference is None else reference
    keys = [k for k in steps[0] if k not in ("step", "epoch")]
    losses = [k for k in keys if k.endswith("_loss")]
    others = [k for k in keys if not k.endswith("_loss")]
    x = np.asarray([s["step"] for s in steps], dtype=np.float64)
    window = smooth if smooth is not None else max(1, len(steps) // 50)
    fig = Figure(figsize=(8, 6 if others else 3.5), dpi=100, layout="constrained")
    axes = fig.subplots(2 if others else 1, 1, sharex=True, squeeze=False)[:, 0]
    _plot_panel(axes[0], x, steps, losses, window, reference)
    axes[0].set_ylabel("loss")
    axes[0].set_title("GAN training")
    if others:
        _plot_panel(axes[1], x, steps, others, window, reference)
        values = np.asarray([[s[k] for k in others] for s in steps], dtype=np.float64)
        if np.all((values >= 0) & (values <= 1)):
            axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_ylabel("mean discriminator output")
    axes[-1].set_xlabel("step")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        fig.savefig(f, format=path.suffix[1:].lower() or "png")
    return path


def make_gif(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    duration_ms: int = 400,
    hold_last_ms: int = 1500,
) -> Path:
    """Join PNG frames (e.g. the per-epoch sample grids) into an animated, looping GIF.

    Grey frames stay grey; RGB frames are kept in colour (Pillow picks a palette per frame).

    Parameters
    ----------
    paths : frame image paths, in order (all of one size)
    out : output ``.gif`` path
    duration_ms : display time of each frame
    hold_last_ms : display time of the last frame

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ValueError
        No frames.
    """
    from PIL import Image

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("make_gif: no frames given")
    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(im.convert("L" if im.mode in ("L", "1", "P") else "RGB"))
    if len({f.mode for f in frames}) > 1:
        frames = [f.convert("RGB") for f in frames]
    durations = [duration_ms] * (len(frames) - 1) + [hold_last_ms]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        _save_gif(frames, f, durations, hold_last_ms)
    return out


def _save_gif(frames, f, durations, hold_last_ms) -> None:
    frames[0].save(
        f,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations if len(frames) > 1 else hold_last_ms,
        loop=0,
    )
