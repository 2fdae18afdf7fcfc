"""Time one full GAN training step: minigan vs PyTorch eager vs the matmul floor.

One step = what :meth:`minigan.gan.GAN.train_step` does: draw noise, G forward, D update on
real + fake (fake detached), G update through the updated D with the non-saturating loss, Adam
on both, float32. The PyTorch comparison runs on the ``"classic"`` preset (plain MLPs
100-256-512-1024-784 and 784-1024-512-256-1, LeakyReLU(0.2), Adam(2e-4, betas=(0.5, 0.999)),
BCEWithLogits with targets 1 and 0), the network and game the PyTorch copy below mirrors. The
``"default"`` preset (BatchNorm1d in G, Dropout(0.3) in D, real label 0.9) is timed too, by
minigan alone: the copy has no twin for those, so a ratio there would compare different work.

In the same run, interleaved round by round so that machine noise hits every contender alike:

* ``minigan``   -- ``GAN.train_step`` on NumPy (``--device cpu``) or CuPy (``--device gpu``);
* ``torch``     -- PyTorch eager, the idiomatic step (``loss.backward()``, D's weight gradients
  are computed during the G step and thrown away by the next ``zero_grad``), when importable;
* ``torch_frozen`` -- the same with D frozen (``requires_grad_(False)``) for the G step, i.e.
  PyTorch doing exactly minigan's work (skip with ``--no-torch-frozen``);
* ``floor``     -- FLOPs of the minimum matmul work of a step divided by a sgemm rate measured
  on exactly those matrix shapes (see ``docs/benchmarks.md`` for the count).

Prints a table (ms/step, ratio to PyTorch, fraction of floor) and writes JSON + Markdown to
``benchmarks/results/step_<device>.{json,md}``. Thread settings are *not* changed: NumPy's BLAS
and PyTorch both use their defaults (reported in the output). Nothing here is a test; timing is
never asserted.

The BLAS kernel that ran (threadpoolctl's ``"architecture"``, e.g. ``Haswell``, ``SkylakeX``,
``Zen``) heads the table and is in the JSON (``blas_kernel``). ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` force another kernel than the one OpenBLAS picks for this CPU; when either
is set the script says so, and the unpinned run is
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_step.py``
(``docs/benchmarks.md``, "Which BLAS kernel").

``--presets classic default dcgan`` times several presets of ``build_gan`` in one run (default:
``classic default``); the matmul floor is counted for presets made of Linear layers only, and
PyTorch runs where ``torch_copy`` knows every layer and ``make_torch`` plays the preset's game
(else the table's notes and the JSON's ``no_torch_twin`` say what it lacked).

Usage::

    python benchmarks/bench_step.py                     # CPU, batch 64 128 256
    python benchmarks/bench_step.py --device gpu        # CuPy + PyTorch CUDA
    python benchmarks/bench_step.py --profile 256       # where minigan's time goes
    python benchmarks/bench_step.py --device gpu --presets classic default dcgan
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import minigan
from minigan.gan import build_gan
from minigan.layers import LeakyReLU, Linear, ReLU, Tanh
from minigan.presets import Preset

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THREADS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Reported when set: a knob of NumPy's OpenBLAS (not PyTorch's BLAS) that changes its threads.
TUNING_ENV = ("OPENBLAS_THREAD_TIMEOUT",)
# Variables that make OpenBLAS use another kernel than the one it picks for this CPU.
KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
UNPINNED = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_step.py"

# The clock of every timed block: wall time by default; ``--clock thread`` switches to the
# CPU time of the calling thread (valid only with ``--threads 1``, where every op runs on it),
# which other processes on a busy machine barely disturb.
clock = time.perf_counter


# ----------------------------------------------------------------------------------------------
# Devices and synchronisation (only around timed blocks, never inside a step)
# ----------------------------------------------------------------------------------------------
def _sync_minigan(device: str) -> None:
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()


def _sync_torch(torch, device: str) -> None:
    if device == "gpu":
        torch.cuda.synchronize()


def _import_torch(device: str):
    """PyTorch if importable (and CUDA-capable for ``--device gpu``), else ``None``."""
    try:
        import torch
    except ImportError:
        return None
    if device == "gpu" and not torch.cuda.is_available():
        return None
    return torch


# ----------------------------------------------------------------------------------------------
# The minigan contender
# ----------------------------------------------------------------------------------------------
def make_minigan(batch: int, device: str, seed: int = 0, preset: str = "classic"):
    """A fresh GAN of ``preset`` and one synthetic real batch in [-1, 1] on the device, shaped
    like G's output (so an image preset gets image batches)."""
    gan = build_gan(preset, device=device, seed=seed, dtype="float32")
    shape = tuple(gan.sample(1).shape[1:])
    host = np.random.default_rng(seed + 1).uniform(-1, 1, (batch, *shape)).astype(np.float32)
    real = gan.backend.asarray(host, dtype="float32")
    return gan, real, lambda: gan.train_step(real)


# ----------------------------------------------------------------------------------------------
# The PyTorch contender: the identical network, weights copied from minigan
# ----------------------------------------------------------------------------------------------
def torch_copy(torch, module, device: str):
    """A ``torch.nn.Sequential`` with the same layers and weights as a minigan Sequential."""
    nn = torch.nn
    layers = []
    for m in module.layers:
        if isinstance(m, Linear):
            t = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            with torch.no_grad():
                t.weight.copy_(torch.from_numpy(minigan.to_numpy(m.weight)))
                if m.bias is not None:
                    t.bias.copy_(torch.from_numpy(minigan.to_numpy(m.bias)))
            layers.append(t)
        elif isinstance(m, LeakyReLU):
            layers.append(nn.LeakyReLU(m.negative_slope))
        elif isinstance(m, ReLU):
            layers.append(nn.ReLU())
        elif isinstance(m, Tanh):
            layers.append(nn.Tanh())
        else:
            raise TypeError(f"no PyTorch twin for {type(m).__name__}")
    return nn.Sequential(*layers).to("cuda" if device == "gpu" else "cpu")


#: The preset fields whose value ``make_torch``'s step plays only at the dataclass default:
#: the non-saturating BCE game with targets 1 / 0, one Adam for both players, no EMA, no
#: instance noise, no gradient clipping (learning rate, betas and eps are copied).
GAME_FIELDS = (
    "objective",
    "objective_args",
    "optimizer",
    "d_optimizer_args",
    "ema_decay",
    "instance_noise",
    "max_grad_norm",
)


def game_twin_gap(gan) -> str | None:
    """What of ``gan``'s game :func:`make_torch` does not play, or None when it plays all of it."""
    plain = Preset("plain")
    for name in GAME_FIELDS:
        if getattr(gan.preset, name) != getattr(plain, name):
            return f"no PyTorch twin for {name}={getattr(gan.preset, name)!r}"
    return None


def make_torch(torch, batch: int, device: str, *, freeze_d: bool, seed=0, preset="classic"):
    """PyTorch eager twin of :func:`make_minigan`; returns ``(step, max_rel_diff)``.

    ``max_rel_diff`` is the largest relative difference between minigan's and PyTorch's G(z)
    and D(x) on one batch before training: proof that the two networks are the same function.

    Raises
    ------
    TypeError
        The preset has a layer :func:`torch_copy` cannot copy, or a game setting the step below
        does not play (:func:`game_twin_gap`): a PyTorch time there would be of other work.
    """
    gan, real_m, _ = make_minigan(batch, device, seed, preset)
    dev = "cuda" if device == "gpu" else "cpu"
    G = torch_copy(torch, gan.generator, device)  # layers first: they are the usual gap
    D = torch_copy(torch, gan.discriminator, device)
    gap = game_twin_gap(gan)
    if gap is not None:
        raise TypeError(gap)
    p = gan.preset
    g_opt = torch.optim.Adam(G.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    d_opt = torch.optim.Adam(D.parameters(), lr=p.lr, betas=p.betas, eps=p.eps)
    bce = torch.nn.BCEWithLogitsLoss()
    real = torch.from_numpy(minigan.to_numpy(real_m)).to(dev)
    ones = torch.ones(batch, 1, device=dev)
    zeros = torch.zeros(batch, 1, device=dev)
    d_params = list(D.parameters())

    def step():
        z = torch.randn(batch, p.latent_dim, device=dev)
        fake = G(z)
        d_opt.zero_grad()
        d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        if freeze_d:
            for q in d_params:
                q.requires_grad_(False)
        g_loss = bce(D(fake), ones)  # non-saturating: -log D(G(z))
        g_loss.backward()
        if freeze_d:
            for q in d_params:
                q.requires_grad_(True)
        g_opt.step()
        return d_loss.detach(), g_loss.detach()

    def check() -> float:
        z = np.random.default_rng(seed + 2).standard_normal((batch, p.latent_dim))
        z = z.astype(np.float32)
        with torch.no_grad():
            tg = G(torch.from_numpy(z).to(dev)).cpu().numpy()
            td = D(real).cpu().numpy()
        mg = minigan.to_numpy(gan.sample(batch, z))
        md = minigan.to_numpy(gan.discriminator.forward(real_m))
        return max(
            float(np.max(np.abs(tg - mg)) / max(1e-12, float(np.max(np.abs(mg))))),
            float(np.max(np.abs(td - md)) / max(1e-12, float(np.max(np.abs(md))))),
        )

    return step, check()


# ----------------------------------------------------------------------------------------------
# The matmul floor
# ----------------------------------------------------------------------------------------------
def linear_shapes(model) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of every Linear layer, in order."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, Linear)]


def step_gemms(g_layers, d_layers, n: int) -> dict[tuple[str, int, int, int], int]:
    """The matrix products of the minimum work of one GAN step, with multiplicities.

    Key ``(kind, n, in, out)``; kind ``fwd`` is ``x @ W.T``, ``dx`` is ``dout @ W`` and ``dw``
    is ``dout.T @ x``; each costs ``2 n in out`` FLOPs. The minimum work of a step:

    * G forward                                            (fwd of every G layer)
    * D forward + backward on real and on fake, no input gradient of D's first layer
                                                           (2 x [fwd, dw, dx but first])
    * G step: D forward and input-gradient-only backward   (fwd, dx of every D layer)
      then G backward without G's first-layer input grad   (dw, dx but first)
    """
    count: dict[tuple[str, int, int, int], int] = {}

    def add(kind, layers, skip_first=False):
        for i, (a, b) in enumerate(layers):
            if skip_first and i == 0:
                continue
            key = (kind, n, a, b)
            count[key] = count.get(key, 0) + 1

    add("fwd", g_layers)  # G forward
    for _ in range(2):  # D on real, D on fake
        add("fwd", d_layers)
        add("dw", d_layers)
        add("dx", d_layers, skip_first=True)
    add("fwd", d_layers)  # G step through D
    add("dx", d_layers)
    add("dw", g_layers)  # G backward
    add("dx", g_layers, skip_first=True)
    return count


def gemm_flops(gemms) -> int:
    return sum(2 * n * a * b * c for (_, n, a, b), c in gemms.items())


def measure_gemm_rate(xp, device: str, gemms, repeats: int = 20) -> dict:
    """Time each product of ``gemms`` alone (median of ``repeats``); the sgemm rate is
    total FLOPs / total time: the speed this BLAS reaches on exactly this step's shapes."""
    rng = np.random.default_rng(0)

    def arr(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(np.float32))

    total_s = 0.0
    rows = []
    for (kind, n, a, b), c in gemms.items():
        w = arr(b, a)  # weight (out, in)
        if kind == "fwd":
            x = arr(n, a)
            fn = lambda x=x, w=w: x @ w.T  # noqa: E731
        elif kind == "dx":
            d = arr(n, b)
            fn = lambda d=d, w=w: d @ w  # noqa: E731
        else:
            d, x = arr(n, b), arr(n, a)
            fn = lambda d=d, x=x: d.T @ x  # noqa: E731
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            _sync_minigan(device)
            t0 = clock()
            fn()
            _sync_minigan(device)
            times.append(clock() - t0)
        med = statistics.median(times)
        total_s += c * med
        flops = 2 * n * a * b
        rows.append(
            {
                "kind": kind,
                "n": n,
                "in": a,
                "out": b,
                "count": c,
                "ms": 1e3 * med,
                "gflops": flops / med / 1e9,
            }
        )
    flops = gemm_flops(gemms)
    return {"gemm_ms": 1e3 * total_s, "gflops": flops / total_s / 1e9, "shapes": rows}


def square_rate(xp, device: str, size: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of one large square sgemm, for context (the best case for BLAS)."""
    rng = np.random.default_rng(0)
    a = xp.asarray(rng.standard_normal((size, size)).astype(np.float32))
    b = xp.asarray(rng.standard_normal((size, size)).astype(np.float32))
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        _sync_minigan(device)
        t0 = clock()
        a @ b
        _sync_minigan(device)
        times.append(clock() - t0)
    return 2 * size**3 / statistics.median(times) / 1e9


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------
def time_block(step, steps: int, sync) -> float:
    """Seconds per step of ``steps`` consecutive steps, synchronised at both ends only."""
    sync()
    t0 = clock()
    for _ in range(steps):
        step()
    sync()
    return (clock() - t0) / steps


def summarize(samples: list[float]) -> dict:
    q = np.percentile(samples, [25, 50, 75])
    return {
        "median_ms": 1e3 * float(q[1]),
        "p25_ms": 1e3 * float(q[0]),
        "p75_ms": 1e3 * float(q[2]),
        "samples": len(samples),
    }


def blas_kernel() -> str:
    """The kernel NumPy's BLAS runs, from threadpoolctl (``"architecture"``, e.g. "Haswell")."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl)"
    found = [
        f"{d.get('internal_api')} {d.get('architecture') or '?'}"
        for d in threadpool_info()
        if d.get("user_api") == "blas"
    ]
    return ", ".join(found) or "no BLAS found by threadpoolctl"


def kernel_pin_note() -> str | None:
    """A warning when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE pin the kernel, else None."""
    pinned = {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}
    if not pinned:
        return None
    return (
        f"note: {pinned} pin OpenBLAS's kernel, so this run does not measure the kernel "
        f"OpenBLAS would pick for this CPU; run unpinned with: {UNPINNED}"
    )


def thread_info(torch) -> dict:
    info = {
        "os.cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "env": {k: os.environ[k] for k in THREADS_ENV + TUNING_ENV + KERNEL_ENV if k in os.environ},
    }
    try:
        from threadpoolctl import threadpool_info

        info["numpy_blas"] = [
            {k: d.get(k) for k in ("internal_api", "num_threads", "version", "architecture")}
            for d in threadpool_info()
        ]
    except ImportError:
        info["numpy_blas"] = "threadpoolctl not installed"
    if torch is not None:
        info["torch_num_threads"] = torch.get_num_threads()
    return info


def gpu_info(torch) -> dict:
    """The GPU, CuPy's version, and whether either side may use TF32 (both should not: the
    comparison is float32 against float32)."""
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    info = {
        "name": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "cupy": cupy.__version__,
        "CUPY_TF32": os.environ.get("CUPY_TF32", "0"),
    }
    if torch is not None:
        info["torch_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
    return info


def profile_minigan(batch: int, device: str, steps: int, preset: str = "classic") -> str:
    """cProfile of ``steps`` minigan steps, grouped by where the time goes, plus the top list."""
    _, _, step = make_minigan(batch, device, preset=preset)
    for _ in range(5):
        step()
    prof = cProfile.Profile(clock)  # --clock thread: CPU time of this thread, for a busy machine
    _sync_minigan(device)
    t0 = clock()
    prof.enable()
    for _ in range(steps):
        step()
    _sync_minigan(device)
    prof.disable()
    wall = clock() - t0
    stats = pstats.Stats(prof)
    groups: dict[str, float] = {}
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        if "minigan" in file:
            key = f"{Path(file).stem}.{func}"
        elif "array_api_compat" in file:
            key = "array_api_compat (namespace lookups)"
        else:
            key = f"builtin {func}" if file == "~" else f"other {Path(file).stem}.{func}"
        groups[key] = groups.get(key, 0.0) + tt
    lines = [
        f"minigan profile, preset {preset}, batch {batch}, {steps} steps, "
        f"{1e3 * wall / steps:.2f} ms/step (with cProfile overhead; {clock.__name__} clock); "
        "NumPy BLAS kernel "
        f"{blas_kernel()}; self time per step:",
        "",
    ]
    for key, tt in sorted(groups.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"  {1e3 * tt / steps:8.3f} ms  {100 * tt / wall:5.1f}%  {key}")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(15)
    return "\n".join(lines) + "\n\n" + buf.getvalue()


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------
def only_linear(model) -> bool:
    """True when every module with parameters is a Linear (the floor counts only those)."""
    return all(isinstance(m, Linear) or not m.params for m in model.modules())


def build_contenders(args, torch, preset: str) -> tuple[dict, dict, str | None]:
    """``{(preset, name, batch): step}``, ``{batch: max_rel_diff_vs_torch}`` and why PyTorch
    is missing for this preset (None when it is there or was not asked for)."""
    contenders, checks, why = {}, {}, None
    for n in args.batch_sizes:
        contenders[(preset, "minigan", n)] = make_minigan(n, args.device, preset=preset)[2]
        if torch is None or why is not None:
            continue
        torch.manual_seed(0)
        try:
            step, checks[n] = make_torch(torch, n, args.device, freeze_d=False, preset=preset)
        except TypeError as e:  # a layer or game setting without a PyTorch twin
            why = str(e)
            continue
        contenders[(preset, "torch", n)] = step
        if not args.no_torch_frozen:
            frozen = make_torch(torch, n, args.device, freeze_d=True, preset=preset)[0]
            contenders[(preset, "torch_frozen", n)] = frozen
    return contenders, checks, why


def time_contenders(args, contenders: dict, syncs: dict, block: int) -> dict:
    """Warm up every contender, then time them round by round; samples per contender."""
    for key, step in contenders.items():  # warm-up: allocator, BLAS threads, caches
        time_block(step, args.warmup, syncs[key[1]])
    samples: dict = {k: [] for k in contenders}
    for r in range(args.rounds):  # interleaved, so that load changes hit everyone alike
        for key, step in contenders.items():
            for _ in range(args.steps // block):
                samples[key].append(time_block(step, block, syncs[key[1]]))
        print(f"  round {r + 1}/{args.rounds} done", file=sys.stderr)
    return samples


def preset_rows(args, preset: str, samples: dict, checks: dict) -> list[dict]:
    """One table row per batch size of ``preset``: times, ratios, the floor where counted."""
    gan0, _, _ = make_minigan(8, args.device, preset=preset)
    G, D = gan0.generator, gan0.discriminator
    rows = []
    for n in args.batch_sizes:
        row: dict = {"preset": preset, "batch": n}
        for name in ("minigan", "torch", "torch_frozen"):
            if (preset, name, n) in samples:
                row[name] = summarize(samples[(preset, name, n)])
        m = row["minigan"]["median_ms"]
        if only_linear(G) and only_linear(D):
            gemms = step_gemms(linear_shapes(G), linear_shapes(D), n)
            rate = measure_gemm_rate(gan0.backend.xp, args.device, gemms)
            row |= {"gemm_gflop": gemm_flops(gemms) / 1e9, "sgemm": rate}
            row["floor_ms"] = row["gemm_gflop"] / rate["gflops"] * 1e3
            row["fraction_of_floor"] = row["floor_ms"] / m
        if "torch" in row:
            row["ratio_to_torch"] = m / row["torch"]["median_ms"]
            row["max_rel_diff_vs_torch"] = checks[n]
        if "torch_frozen" in row:
            row["ratio_to_torch_frozen"] = m / row["torch_frozen"]["median_ms"]
        rows.append(row)
    return rows


def run(args) -> dict:
    device = args.device
    if device == "gpu" and not minigan.backend.cupy_available():
        raise SystemExit("--device gpu: CuPy with a visible CUDA device is needed")
    torch = None if args.no_torch else _import_torch(device)
    if torch is not None and args.threads:
        torch.set_num_threads(args.threads)
    block = args.block or (1 if device == "cpu" else 10)
    contenders, checks, no_torch = {}, {}, {}
    for preset in args.presets:
        c, checks[preset], why = build_contenders(args, torch, preset)
        contenders |= c
        if why is not None:
            no_torch[preset] = why
    syncs = {"minigan": lambda: _sync_minigan(device)}
    if torch is not None:
        syncs["torch"] = syncs["torch_frozen"] = lambda: _sync_torch(torch, device)
    samples = time_contenders(args, contenders, syncs, block)
    rows = [r for p in args.presets for r in preset_rows(args, p, samples, checks[p])]
    xp = make_minigan(8, device)[0].backend.xp
    return {
        "device": device,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "minigan": minigan.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "blas_kernel": blas_kernel(),
        "kernel_pinned_by": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
        "threads": thread_info(torch),
        "gpu": gpu_info(torch) if device == "gpu" else None,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "square_sgemm_gflops": square_rate(xp, device),
        "settings": {
            "threads": args.threads or "default",
            "clock": args.clock,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "steps_per_round": args.steps,
            "block": block,
            "presets": list(args.presets),
            "dtype": "float32",
        },
        "no_torch_twin": no_torch,
        "rows": rows,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def markdown(res: dict) -> str:
    has_t = any("torch" in r for r in res["rows"])
    has_tf = any("torch_frozen" in r for r in res["rows"])
    many = len(res["settings"]["presets"]) > 1
    head = (["preset"] if many else []) + ["batch", "minigan ms/step"]
    if has_t:
        head += ["PyTorch ms/step", "minigan / PyTorch"]
    if has_tf:
        head += ["PyTorch (D frozen) ms/step", "minigan / PyTorch (D frozen)"]
    head += ["matmul floor ms", "sgemm GFLOP/s (step shapes)", "fraction of floor"]
    pinned = res.get("kernel_pinned_by")
    lines = [
        f"NumPy BLAS kernel: {res['blas_kernel']} "
        + (f"(pinned by {pinned})" if pinned else "(OpenBLAS's own choice for this CPU)"),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    gpu = res.get("gpu")
    for r in res["rows"]:
        cells = ([r["preset"]] if many else []) + [str(r["batch"]), _ms(r["minigan"])]
        if has_t:
            cells += [_ms(r["torch"]), f"{r['ratio_to_torch']:.2f}"] if "torch" in r else ["-"] * 2
        if has_tf:
            frozen = "torch_frozen" in r
            cells += (
                [_ms(r["torch_frozen"]), f"{r['ratio_to_torch_frozen']:.2f}"]
                if frozen
                else ["-"] * 2
            )
        if "floor_ms" in r:
            cells += [
                f"{r['floor_ms']:.1f}",
                f"{r['sgemm']['gflops']:.0f}",
                f"{r['fraction_of_floor']:.2f}",
            ]
        else:
            cells += ["-", "-", "- (floor counts Linear layers only)"]
        lines.append("| " + " | ".join(cells) + " |")
    th = res["threads"]
    blas = th.get("numpy_blas")
    if isinstance(blas, list):
        blas = ", ".join(f"{d['internal_api']} {d['version']} x{d['num_threads']}" for d in blas)
    s = res["settings"]
    notes = [
        "",
        f"Device: {res['device']} "
        + (f"({gpu['name']}, CuPy {gpu['cupy']}; host " if gpu else "(")
        + f"{res['processor']}, {th['os.cpu_count']} logical CPUs); "
        f"Python {res['python']}, NumPy {res['numpy']}, PyTorch {res['torch']}, "
        f"minigan {res['minigan']}; {res['date']}.",
        f"Threads: NumPy BLAS {blas}; PyTorch {th.get('torch_num_threads')} "
        + (
            "(defaults, not changed). "
            if s["threads"] == "default"
            else f"(both set to {s['threads']} by --threads; env {th['env']}). "
        )
        + (
            f"Tuning variables set: {tuned}. "
            if (tuned := {k: v for k, v in th["env"].items() if k in TUNING_ENV})
            else ""
        )
        + f"Load average after the run: {res['loadavg_after']}.",
        "Clock: "
        + (
            "wall time."
            if s["clock"] == "wall"
            else "CPU time of the one thread doing all the work (time.thread_time), so that "
            "other processes on the machine do not count; not a wall-clock figure."
        ),
        f"Median of {s['rounds']} x {s['steps_per_round']} timed steps per cell after "
        f"{s['warmup']} warm-up steps, contenders interleaved round by round; ms/step shown as "
        "median (p25-p75). Large square sgemm (1024^3): "
        f"{res['square_sgemm_gflops']:.0f} GFLOP/s.",
        "Floor = GEMM FLOPs of the minimum work of a step / sgemm rate measured on the same "
        "shapes; fraction of floor = floor / minigan time (1.0 = nothing but matmuls).",
    ]
    for preset, why in res.get("no_torch_twin", {}).items():
        notes.append(
            f"No PyTorch column for preset {preset!r} ({why}): minigan's time alone. The "
            "PyTorch copy mirrors Linear, LeakyReLU, ReLU and Tanh and the plain BCE game; "
            "preset 'classic' is the MLP it can copy."
        )
    return "\n".join(lines + notes) + "\n"


def _ms(s: dict) -> str:
    return f"{s['median_ms']:.1f} ({s['p25_ms']:.1f}-{s['p75_ms']:.1f})"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument(
        "--presets",
        nargs="+",
        default=["classic", "default"],
        help="presets of build_gan to time (default: classic, the plain MLP that PyTorch "
        "mirrors, and default, timed by minigan alone)",
    )
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps per contender")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per contender per round")
    ap.add_argument(
        "--block", type=int, default=0, help="steps per timed block (default 1 on CPU, 10 on GPU)"
    )
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    ap.add_argument(
        "--no-torch-frozen",
        action="store_true",
        help="skip the PyTorch variant with D frozen in the G step",
    )
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    ap.add_argument("--no-save", action="store_true", help="print only")
    ap.add_argument(
        "--profile",
        type=int,
        metavar="BATCH",
        help="instead of the table, profile minigan at this batch size",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="run NumPy's BLAS and PyTorch with N threads (default: leave both at their "
        "defaults); sets OMP/OPENBLAS/MKL_NUM_THREADS and restarts the script",
    )
    ap.add_argument(
        "--clock",
        choices=("wall", "thread"),
        default="wall",
        help="'thread': CPU time of the calling thread, for a busy machine (needs --threads 1)",
    )
    ap.add_argument("--tag", default="", help="suffix of the result file names")
    args = ap.parse_args(argv)
    if args.clock == "thread" and (args.threads != 1 or args.device != "cpu"):
        ap.error("--clock thread needs --threads 1 and --device cpu (all work on one thread)")
    if args.threads and any(os.environ.get(k) != str(args.threads) for k in THREADS_ENV):
        # BLAS reads its thread count when NumPy is imported: restart with the variables set.
        env = {**os.environ, **{k: str(args.threads) for k in THREADS_ENV}}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    if args.clock == "thread":
        global clock
        clock = time.thread_time

    note = kernel_pin_note()
    if note:
        print(note, file=sys.stderr)
    print(f"NumPy BLAS kernel: {blas_kernel()}", file=sys.stderr)
    if args.profile:
        text = profile_minigan(args.profile, args.device, max(args.steps, 20), args.presets[0])
        print(text)
        if not args.no_save:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"profile_{args.device}_b{args.profile}.txt"
            path.write_text(text)
            print(f"wrote {path}")
        return

    res = run(args)
    md = markdown(res)
    print(md)
    if not args.no_save:
        args.out.mkdir(parents=True, exist_ok=True)
        name = f"step_{args.device}" + (f"_{args.tag}" if args.tag else "")
        if args.threads:
            name += f"_threads{args.threads}"
        if args.clock == "thread":
            name += "_cputime"
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(md)
        print(f"wrote {args.out / name}.json and .md")


if __name__ == "__main__":
    main()
