"""Time minigan's convolutions and a DCGAN G+D forward/backward against PyTorch CPU eager.

A speed check, not a test (nothing is asserted). In one run, interleaved round by round:

* ``conv2d``            -- forward + backward of one Conv2d of the MNIST discriminator;
* ``conv_transpose2d``  -- forward + backward of one ConvTranspose2d of the MNIST generator;
* ``dcgan G+D``         -- G forward, D forward on the fakes, D backward, G backward, and D
  forward + backward on a real batch: the layer work of one DCGAN step (no loss, no Adam);

each in float32 against ``torch.nn`` layers holding the same weights. Then a cProfile of
minigan's ``dcgan G+D`` splits its time into im2col, col2im, the conv functions' own time
(the GEMMs and their layout copies), BatchNorm and the rest.

Run with the machine's native BLAS kernel (this environment pins OPENBLAS_CORETYPE)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv.py
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_conv.py --base-channels 32
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time

import numpy as np

import minigan
from minigan.layers import BatchNorm2d, Conv2d, ConvTranspose2d, Flatten, Linear, Unflatten


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(
        f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')} "
        f"threads={d.get('num_threads')}"
        for d in threadpool_info()
    )


def to_torch(model, torch):
    """The torch.nn.Sequential with the same layers and weights as a minigan Sequential."""
    nn = torch.nn
    mods = []
    for m in model.layers:
        name = type(m).__name__
        if isinstance(m, Conv2d):
            t = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                          bias=m.bias is not None)  # fmt: skip
        elif isinstance(m, ConvTranspose2d):
            t = nn.ConvTranspose2d(
                m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                m.output_padding, bias=m.bias is not None,
            )  # fmt: skip
        elif isinstance(m, Linear):
            t = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif isinstance(m, BatchNorm2d):
            t = nn.BatchNorm2d(m.num_features)
        elif isinstance(m, Unflatten):
            t = nn.Unflatten(m.dim, m.unflattened_size)
        elif isinstance(m, Flatten):
            t = nn.Flatten()
        elif name == "LeakyReLU":
            t = nn.LeakyReLU(m.negative_slope)
        else:
            t = getattr(nn, name)()
        mods.append(t)
    ref = nn.Sequential(*mods)
    ref.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in model.state_dict().items()})
    return ref


def minigan_gd(G, D, z, real):
    fake = G.forward(z)
    logits = D.forward(fake)
    dfake = D.backward(np.ones_like(logits) / logits.shape[0])
    G.backward(dfake, input_grad=False)
    logits = D.forward(real)
    D.backward(np.ones_like(logits) / logits.shape[0], input_grad=False)


def torch_gd(tG, tD, z, real):
    fake = tG(z)
    tD(fake).mean().backward()
    tD(real).mean().backward()


def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def profile_split(G, D, z, real, reps: int = 3) -> dict[str, float]:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        minigan_gd(G, D, z, real)
    prof.disable()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # tottime of everything
    split = {"im2col": 0.0, "col2im": 0.0, "conv fns (GEMM + layout)": 0.0, "BatchNorm": 0.0}
    for (_, _, func), (_, _, tt, ct, _) in st.stats.items():
        if func == "im2col":
            split["im2col"] += ct
        elif func == "col2im":
            split["col2im"] += ct
        elif func.startswith(("conv2d_", "conv_transpose2d_")):
            split["conv fns (GEMM + layout)"] += tt
        elif func.startswith("batch_norm_"):
            split["BatchNorm"] += ct
    split["rest"] = total - sum(split.values())
    return {k: 1e3 * v / reps for k, v in split.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--base-channels", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    n, bc = args.batch, args.base_channels
    rng = np.random.default_rng(0)
    print(f"batch {n}, base_channels {bc}, float32; BLAS: {blas_info()}")
    print(f"env OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r}, "
          f"torch threads {torch.get_num_threads() if torch else '-'}")  # fmt: skip
    G = minigan.dcgan_generator(100, (1, 28, 28), bc, rng=1)
    D = minigan.dcgan_discriminator((1, 28, 28), bc, rng=2)
    z = rng.standard_normal((n, 100)).astype(np.float32)
    real = rng.uniform(-1, 1, (n, 1, 28, 28)).astype(np.float32)
    conv, convt = D[2], G[4]  # Conv2d(bc, 2bc, 4, 2, 1) on 14x14; ConvT(2bc, bc) on 7x7
    xc = rng.standard_normal((n, bc, 14, 14)).astype(np.float32)
    xt = rng.standard_normal((n, 2 * bc, 7, 7)).astype(np.float32)

    def conv_fb(layer, x):
        y = layer.forward(x)
        layer.backward(np.ones_like(y))

    cases = {
        "conv2d": (lambda: conv_fb(conv, xc), None),
        "conv_transpose2d": (lambda: conv_fb(convt, xt), None),
        "dcgan G+D": (lambda: minigan_gd(G, D, z, real), None),
    }
    if torch is not None:
        tG, tD = to_torch(G, torch), to_torch(D, torch)
        tconv, tconvt = tD[2], tG[4]
        txc, txt = torch.tensor(xc, requires_grad=True), torch.tensor(xt, requires_grad=True)
        tz, treal = torch.tensor(z), torch.tensor(real)
        cases = {
            "conv2d": (cases["conv2d"][0], lambda: tconv(txc).sum().backward()),
            "conv_transpose2d": (
                cases["conv_transpose2d"][0],
                lambda: tconvt(txt).sum().backward(),
            ),
            "dcgan G+D": (cases["dcgan G+D"][0], lambda: torch_gd(tG, tD, tz, treal)),
        }
    print(f"{'case':<20} {'minigan ms':>11} {'torch ms':>9} {'ratio':>6}")
    for name, (ours, theirs) in cases.items():
        ours()
        if theirs:
            theirs()
        a, b = [], []
        for _ in range(args.rounds):  # interleaved: machine noise hits both alike
            a += timed(ours, 1)
            if theirs:
                b += timed(theirs, 1)
        ma = 1e3 * statistics.median(a)
        mb = 1e3 * statistics.median(b) if b else float("nan")
        print(f"{name:<20} {ma:>11.2f} {mb:>9.2f} {ma / mb:>6.2f}")
    print("split of minigan's dcgan G+D (ms per call, cProfile adds overhead):")
    for k, v in profile_split(G, D, z, real).items():
        print(f"  {k:<28} {v:8.2f}")


if __name__ == "__main__":
    main()
