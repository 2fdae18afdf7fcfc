"""Time one full DCGAN training step of the ``dcgan`` presets against PyTorch CPU eager.

A speed check, not a test (nothing is asserted). For each case (preset, dataset shape, batch)
in one run, interleaved round by round so that machine noise hits both alike:

* ``minigan``: ``GAN.train_step`` of ``build_gan(preset)``: G forward, D on real and on fake in
  separate passes (D has BatchNorm), BCE with logits, Adam on D; D forward on the fakes with D
  frozen, G backward, Adam on G;
* ``torch``: the same step with ``torch.nn`` modules holding the same weights (state_dict
  copied, keys are PyTorch's), ``BCEWithLogitsLoss``, ``torch.optim.Adam`` with the preset's
  settings, D frozen (``requires_grad_(False)``) for G's loss;
* ``GEMM floor``: the matrix products of minigan's im2col formulation of that step (forward,
  input gradient and weight gradient of every Conv2d / ConvTranspose2d / Linear, as many times
  as the step needs them), each timed alone at its own shape: what the step would cost if
  everything but the GEMMs were free.

Then the peak memory of one step at batch 128 (``--memory-batch``): minigan's by tracemalloc
(NumPy reports its buffers to it) and, for both libraries, the growth of the process's peak
RSS over one step, each measured in a fresh subprocess. Then a cProfile split of minigan's
step (im2col, col2im, the GEMMs, BatchNorm, rest).

Run with the machine's native BLAS kernel (this environment pins OPENBLAS_CORETYPE)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \\
        python benchmarks/bench_dcgan.py
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from minigan.gan import build_gan
from minigan.layers import Conv2d, ConvTranspose2d, Linear

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_conv import blas_info, to_torch  # noqa: E402

#: The clock of every timing: CPU seconds of this process (both libraries run one thread here,
#: so it is their work; a loaded machine barely disturbs it), or wall time (``--clock wall``).
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]

#: (label, preset, image shape, batch) of the table.
CASES = (
    ("MNIST", "dcgan", (1, 28, 28), 64),
    ("MNIST", "dcgan", (1, 28, 28), 128),
    ("CIFAR-10", "dcgan-cifar10", (3, 32, 32), 64),
)


def make_minigan(preset: str, shape, batch: int):
    gan = build_gan(preset, image_shape=shape, seed=0)
    real = np.random.default_rng(1).uniform(-1, 1, (batch, *shape)).astype(np.float32)
    return gan, (lambda: gan.train_step(real))


def make_torch(torch, gan, shape, batch: int):
    """The same step in PyTorch eager, on copies of minigan's G and D."""
    tG, tD = to_torch(gan.generator, torch), to_torch(gan.discriminator, torch)
    p = gan.preset
    kw = {"lr": p.optimizer_args["lr"], "betas": p.optimizer_args["betas"]}
    g_opt, d_opt = torch.optim.Adam(tG.parameters(), **kw), torch.optim.Adam(tD.parameters(), **kw)
    bce = torch.nn.BCEWithLogitsLoss()
    real = torch.tensor(
        np.random.default_rng(1).uniform(-1, 1, (batch, *shape)), dtype=torch.float32
    )
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    gen = torch.Generator().manual_seed(0)

    def step():
        z = torch.randn(batch, p.latent_dim, generator=gen)
        fake = tG(z)
        d_opt.zero_grad()
        d_loss = bce(tD(real), ones) + bce(tD(fake.detach()), zeros)
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        tD.requires_grad_(False)
        g_loss = bce(tD(fake), ones)
        g_loss.backward()
        tD.requires_grad_(True)
        g_opt.step()

    return step


def layer_gemms(model, x) -> list[tuple[str, tuple[int, int, int]]]:
    """``(kind, (M, K, N))`` of the forward, input-gradient and weight-gradient GEMMs per layer.

    Conv2d (N, Cin, H, W) -> (N, Cout, Ho, Wo) as im2col: fwd (N*Ho*Wo, Cin*k*k) @ (.., Cout);
    ConvTranspose2d on (N, Cin, H, W): fwd (N*H*W, Cin) @ (Cin, Cout*k*k), then col2im;
    Linear: (N, in) @ (in, out). Each backward GEMM has the forward's FLOPs.
    """
    out = []
    for i, layer in enumerate(model.layers):
        n = x.shape[0]
        if isinstance(layer, Conv2d):
            y = layer.forward(x)
            kk = layer.in_channels * int(np.prod(layer.kernel_size))
            m = n * y.shape[2] * y.shape[3]
            shapes = {"fwd": (m, kk, layer.out_channels), "dx": (m, layer.out_channels, kk),
                      "dw": (layer.out_channels, m, kk)}  # fmt: skip
        elif isinstance(layer, ConvTranspose2d):
            y = layer.forward(x)
            kk = layer.out_channels * int(np.prod(layer.kernel_size))
            m = n * x.shape[2] * x.shape[3]
            shapes = {"fwd": (m, layer.in_channels, kk), "dx": (m, kk, layer.in_channels),
                      "dw": (layer.in_channels, m, kk)}  # fmt: skip
        elif isinstance(layer, Linear):
            y = layer.forward(x)
            a, b = layer.in_features, layer.out_features
            shapes = {"fwd": (n, a, b), "dx": (n, b, a), "dw": (b, n, a)}
        else:
            x = layer.forward(x)
            continue
        out += [(f"{k}{'-first' if i == 0 else ''}", s) for k, s in shapes.items()]
        x = y
    return out


#: How often one train_step needs each GEMM: G forward once, backward once (no dz);
#: D forward 3x (real, fake, fake for G), weight gradients 2x, input gradients 3x (the
#: first layer's only in the frozen pass, for G).
G_COUNTS = {"fwd": 1, "dx": 1, "dw": 1, "fwd-first": 1, "dx-first": 0, "dw-first": 1}
D_COUNTS = {"fwd": 3, "dx": 3, "dw": 2, "fwd-first": 3, "dx-first": 1, "dw-first": 2}


def gemm_floor(gan, batch: int, repeats: int = 7) -> tuple[float, float]:
    """Seconds and GFLOP of the step's GEMMs, each timed alone at its shape (best of ``repeats``:
    a floor, so the least disturbed run)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((batch, gan.latent_dim)).astype(np.float32)
    fake = gan.generator.forward(z)
    todo = [(G_COUNTS[k], s) for k, s in layer_gemms(gan.generator, z)]
    todo += [(D_COUNTS[k], s) for k, s in layer_gemms(gan.discriminator, fake)]
    total = flops = 0.0
    for count, (m, k, n) in todo:
        if count == 0:
            continue
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        a @ b
        times = []
        for _ in range(repeats):
            t0 = clock()
            a @ b
            times.append(clock() - t0)
        total += count * min(times)
        flops += count * 2 * m * k * n
    return total, flops / 1e9


def profile_split(step, reps: int = 3) -> dict[str, float]:
    """ms per step in im2col, col2im, the conv functions' own time (GEMMs), BatchNorm, rest."""
    prof = cProfile.Profile(clock)  # CPU seconds by default, as the table
    prof.enable()
    for _ in range(reps):
        step()
    prof.disable()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())
    split = {"im2col": 0.0, "col2im": 0.0, "conv/linear fns (GEMM + layout)": 0.0}
    split["BatchNorm"] = 0.0
    for (_, _, func), (_, _, tt, ct, _) in st.stats.items():
        if func in ("im2col", "col2im"):
            split[func] += ct
        elif func.startswith(("conv2d_", "conv_transpose2d_", "linear_")):
            split["conv/linear fns (GEMM + layout)"] += tt
        elif func.startswith("batch_norm_"):
            split["BatchNorm"] += ct
    split["rest (Adam, loss, activations, Python)"] = total - sum(split.values())
    return {k: 1e3 * v / reps for k, v in split.items()}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(v for v in f if v.startswith(field + ":"))
    return int(line.split()[1])


def memory_child(lib: str, preset: str, shape, batch: int) -> dict:
    """Run in a fresh process: how far one step (the first, so Adam's moments are included
    for both) raises the resident set above what it was before, via Linux's VmHWM reset
    (``/proc/self/clear_refs`` 5); for minigan also the tracemalloc peak of a second step."""
    gan, step = make_minigan(preset, shape, batch)
    if lib == "torch":
        import torch

        torch.set_num_threads(1)
        step = make_torch(torch, gan, shape, batch)
    base = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    step()
    out = {"rss_growth_mib": (_status_kib("VmHWM") - base) / 1024}
    if lib == "minigan":
        tracemalloc.start()
        step()
        out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    return out


def memory(preset: str, shape, batch: int) -> dict:
    res = {}
    for lib in ("minigan", "torch"):
        code = (f"import json, bench_dcgan as b; print(json.dumps(b.memory_child({lib!r}, "
                f"{preset!r}, {tuple(shape)!r}, {batch})))")  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        cwd = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, cwd=cwd, check=True)  # fmt: skip
        res[lib] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def check_same(torch, gan, batch: int) -> float:
    """max |G(z) - G_torch(z)| + max |D(x) - D_torch(x)| in training mode, before timing."""
    tG, tD = to_torch(gan.generator, torch), to_torch(gan.discriminator, torch)
    z = np.random.default_rng(2).standard_normal((batch, gan.latent_dim)).astype(np.float32)
    x = gan.generator.forward(z)
    with torch.no_grad():
        tx = tG(torch.tensor(z))
        err = float(np.abs(np.asarray(x) - tx.numpy()).max())
        err += float(np.abs(np.asarray(gan.discriminator.forward(x)) - tD(tx).numpy()).max())
    return err


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds per case")
    ap.add_argument("--memory-batch", type=int, default=128)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    args = ap.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(f"float32, clock {args.clock}; BLAS: {blas_info()}")
    print(f"env OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, torch "
          f"{torch.__version__} threads {torch.get_num_threads()}")  # fmt: skip
    print(f"{'case':<26} {'minigan ms':>10} {'torch ms':>9} {'ratio':>6} {'GEMM floor ms':>13} "
          f"{'GFLOP':>6}")  # fmt: skip
    for label, preset, shape, batch in CASES:
        gan, ours = make_minigan(preset, shape, batch)
        err = check_same(torch, gan, batch)
        assert err < 1e-4, f"{preset}: minigan and torch differ by {err:.2e} before timing"
        theirs = make_torch(torch, gan, shape, batch)
        ours(), theirs()
        a, b = [], []
        for _ in range(args.rounds):
            for fn, acc in ((ours, a), (theirs, b)):
                t0 = clock()
                fn()
                acc.append(clock() - t0)
        ma, mb = 1e3 * statistics.median(a), 1e3 * statistics.median(b)
        floor, gflop = gemm_floor(gan, batch)
        floor *= 1e3
        name = f"{label} {preset} b{batch}"
        print(f"{name:<26} {ma:>10.1f} {mb:>9.1f} {ma / mb:>6.2f} {floor:>13.1f} {gflop:>6.2f}")
        if batch == 64:
            split = profile_split(ours)
            print("  minigan split (ms per step, cProfile adds overhead): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in split.items()))  # fmt: skip
    mem = memory("dcgan", (1, 28, 28), args.memory_batch)
    print(f"peak memory of one step, MNIST dcgan batch {args.memory_batch}: minigan "
          f"tracemalloc {mem['minigan']['tracemalloc_peak_mib']:.1f} MiB, RSS growth "
          f"{mem['minigan']['rss_growth_mib']:.1f} MiB; torch RSS growth "
          f"{mem['torch']['rss_growth_mib']:.1f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
