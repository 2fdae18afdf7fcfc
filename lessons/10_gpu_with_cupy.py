# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 10: Running on the GPU with CuPy
#
# Every op in minigan starts with `xp = array_namespace(x)` and then uses only functions of the
# Python array API standard. [CuPy](https://cupy.dev) implements that standard on NVIDIA GPUs,
# so the layers, the losses, Adam and `GAN.train_step` run on a GPU without a single changed
# line: you only say where the arrays live. This lesson moves the MNIST GAN to the GPU, times
# it against the CPU *correctly*, and explains where the speed comes from.
#
# No GPU? Every cell still runs: the GPU parts fall back to the CPU and say so, and the checks
# use array-api-strict's `"device1"`, a CPU stand-in that refuses host/device mixing exactly like
# CuPy does.

# %% [markdown]
# ## Goal
#
# - Put a model on a device with `device="cpu" | "gpu" | "auto"` and know what moves where.
# - Count the floating-point work of one GAN step from the layer shapes, and see why small
#   batches cannot keep a GPU busy.
# - Time GPU code honestly: warm-up, asynchronous kernels, and one synchronisation at the end.
# - Check that a GPU (or device1) run computes the same numbers as the NumPy run.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan import backend as mb
from minigan.data import load_mnist, preprocess

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"

HAS_GPU = mb.cupy_available()
auto = mb.resolve_device("auto")
print(f"CuPy sees a GPU: {HAS_GPU}; device='auto' resolves to {auto.name!r}")
if not HAS_GPU:
    print(
        "No GPU here (CuPy is not installed or sees no CUDA device): the 'gpu' cells below run "
        "on the CPU and are labelled so. Install CuPy with `pip install -e '.[gpu-cuda12]'` "
        "on a machine with an NVIDIA GPU to see the real comparison."
    )

# %% [markdown]
# ## Math with shapes
#
# **Where time goes.** Almost all of a GAN step is matrix products in `Linear` layers. For
# `x (N, i) @ W.T (i, o) -> y (N, o)` each of the `N * o` outputs is a dot product of length
# `i`: `N*i*o` multiply-adds, **2 N i o floating-point operations (FLOPs)**. The backward pass
# has two products of the same size (lesson 2):
#
# | product | shapes | FLOPs |
# | --- | --- | --- |
# | forward `y = x @ W.T` | `(N, i) @ (i, o)` | $2Nio$ |
# | input gradient `dx = dout @ W` | `(N, o) @ (o, i)` | $2Nio$ |
# | weight gradient `dW = dout.T @ x` | `(o, N) @ (N, i)` | $2Nio$ |
#
# Activations, Adam and the losses touch each number a few times: $O(N(i+o))$ or $O(io)$
# work, negligible next to the products.
#
# **One `GAN.train_step`** (lesson 8) runs: G forward on the noise; D forward + backward on
# the real batch and on the fake batch (weight gradients, no `dx` into the data); D forward
# again on the fakes and a backward that computes only `dx` (D is frozen); G backward (weight
# gradients, no `dx` into the noise). So per step D does 3 forwards, 2 weight-gradient
# passes and 3 input-gradient passes (minus the ones into the data), G one forward, one
# weight-gradient pass and one input-gradient pass.
#
# **Why batch size matters on a GPU.** A product does $2Nio$ FLOPs and reads
# $4(Ni + io + No)$ bytes in float32. With $i = o = 1024$ and $N = 64$ that is 134 MFLOP from
# 4.7 MB, about 28 FLOPs per byte: a modern GPU (tens of TFLOP/s, a few TB/s) finishes it in a
# few microseconds, and memory is not what holds it back. What does is the **launch overhead**:
# every array operation is one kernel that Python and CuPy have to prepare and queue, roughly
# 5 to 20 µs of CPU time each, and one `train_step` is on the order of a hundred of them
# (products, activations, losses, one Adam update per parameter). At small $N$ the GPU finishes
# each kernel before the CPU has queued the next, so the time per step hardly depends on $N$:
# it is set by the *number* of kernels, not their size. A larger $N$ does more work per
# launch, so images per second grow almost in proportion to $N$ until the products themselves
# take longer than the launches.
#
# **What crosses the bus.** minigan copies the dataset to the device once
# (`minigan.data.BatchIterator`). Per step only the noise `z (N, 100)` goes host -> device (it
# is drawn by the seeded host generator so CPU and GPU runs see the same numbers), and the
# losses stay on the device as 0-d arrays until they are logged.

# %% [markdown]
# ## Implement
#
# ### FLOPs of one training step, from the layer shapes


# %%
def linear_shapes(model):
    """(in_features, out_features) of each Linear in a Sequential, in order."""
    return [
        (m.params["weight"].shape[1], m.params["weight"].shape[0])
        for m in model.modules()
        if isinstance(m, minigan.Linear)
    ]


def step_flops(gan, n):
    """Matrix-product FLOPs of one GAN.train_step on a batch of n (see Math with shapes)."""
    g, d = linear_shapes(gan.generator), linear_shapes(gan.discriminator)
    fwd = lambda shapes: sum(2 * n * i * o for i, o in shapes)  # noqa: E731
    # input gradients are not needed for the first layer (data or noise)
    dx = lambda shapes: sum(2 * n * i * o for i, o in shapes[1:])  # noqa: E731
    g_flops = fwd(g) + fwd(g) + dx(g)  # forward, weight grads, input grads
    d_flops = 3 * fwd(d) + 2 * fwd(d) + 2 * dx(d)  # 3 forwards, 2 x (dW + dx)
    d_flops += fwd(d)  # the frozen pass: dx of every layer, down to dfake
    return g_flops + d_flops


probe = minigan.build_gan("default", seed=0)
print("G:", linear_shapes(probe.generator))
print("D:", linear_shapes(probe.discriminator))
for n in (64, 256):
    print(f"batch {n:4d}: {step_flops(probe, n) / 1e9:.2f} GFLOP per step")

# %% [markdown]
# ### Timing that a GPU does not fool
#
# CuPy launches kernels **asynchronously**: `gan.train_step(real)` returns as soon as the work
# is queued, long before the GPU has finished. A timer read right after it measures the
# launching, not the computing. Three rules:
#
# 1. **Warm up** first: the first calls compile CUDA kernels and fill CuPy's memory pool.
# 2. **Synchronise before reading the clock**: pulling a result to the host
#    (`float(out["d_loss"])`) waits for every kernel queued before it.
# 3. **Do not synchronise inside the loop** you are timing (that is what slows real training
#    down too): keep the 0-d results on the device and read them once.


# %%
def time_train_steps(gan, real, steps, warmup=2):
    """Seconds per GAN.train_step on one device-resident batch `real (N, 784)`."""
    for _ in range(warmup):
        out = gan.train_step(real)
    float(out["d_loss"])  # wait for the warm-up to finish
    start = time.perf_counter()
    for _ in range(steps):
        out = gan.train_step(real)  # queued; no host sync here
    float(out["d_loss"])  # one sync: everything above has now run
    return (time.perf_counter() - start) / steps


# %% [markdown]
# ## Check
#
# **The same numbers on every device.** One seed gives the same initial weights and noise
# everywhere, because every random number is drawn on the host and then moved. We build the
# GAN on the CPU and on a second device (the GPU when there is one, else array-api-strict's
# `device1`, else, without array-api-strict, the CPU once more), feed both the same real batch, and compare the losses of the first steps.
# NumPy vs device1 runs the very same NumPy kernels, so it must agree exactly; NumPy vs CuPy
# agrees to float32 rounding (different but equally valid summation orders in the products).

# %%
images, _ = load_mnist("train")
real_host = preprocess(images[:1024])  # (1024, 784) float32 in [-1, 1]

if HAS_GPU:
    other = mb.resolve_device("gpu")
else:
    try:
        import array_api_strict  # in the dev extra; a plain `pip install -e .` lacks it
    except ImportError:
        array_api_strict = None
    if array_api_strict is not None:
        other = mb.resolve_device(array_api_strict.Device("device1"))
    else:
        print("array_api_strict is not installed (pip install -e '.[dev]'): comparing cpu with cpu")
        other = mb.resolve_device("cpu")
label = "gpu" if HAS_GPU else other.name
print("comparing cpu with", other.name)

cpu_gan = minigan.build_gan("default", seed=0, device="cpu")
dev_gan = minigan.build_gan("default", seed=0, device=other)
w_cpu = cpu_gan.generator.parameters()[0].data
w_dev = mb.to_numpy(dev_gan.generator.parameters()[0].data)
print("first weight identical after init:", np.array_equal(w_cpu, w_dev))
assert np.array_equal(w_cpu, w_dev)

batch_cpu = real_host[:64]
batch_dev = other.asarray(batch_cpu)  # one host -> device copy
worst = 0.0
for step in range(3):
    a = cpu_gan.train_step(batch_cpu)
    b = dev_gan.train_step(batch_dev)
    for k in a:
        worst = max(worst, abs(float(a[k]) - float(b[k])) / max(1e-6, abs(float(a[k]))))
    print(
        f"step {step}: d_loss on cpu {float(a['d_loss']):.6f}, on {label} {float(b['d_loss']):.6f}"
    )
print(f"largest relative difference of the metrics over 3 steps: {worst:.1e}")
assert worst < (1e-3 if HAS_GPU else 1e-12)

# %% [markdown]
# **The gradients on the device.** The gradient check of lesson 5 runs on any backend; on a
# GPU (or device1) it exercises the very kernels training uses. Float64, as always for
# finite differences.

# %%
rng = np.random.default_rng(0)
lin = minigan.Linear(6, 4, dtype="float64", device=other, rng=rng)
x = other.asarray(rng.standard_normal((5, 6)), dtype="float64")
report = minigan.check_module(lin, x)
print(report)
assert report.passed

# %% [markdown]
# ## Use minigan
#
# ### CPU vs GPU, by batch size
#
# The default MNIST GAN (1.5 M parameters in G, 1.5 M in D) at several batch sizes. Each
# timing is a few steps after a warm-up, on a batch already on the device.

# %%
batch_sizes = [32, 128] if SMALL else [16, 32, 64, 128, 256, 512, 1024]
n_steps = 3 if SMALL else 20
devices = ["cpu", "gpu"] if HAS_GPU else ["cpu"]
timings = {}
for dev in devices:
    be = mb.resolve_device(dev)
    gan = minigan.build_gan("default", seed=0, device=be)
    for n in batch_sizes:
        real = be.asarray(real_host[:n])
        timings[dev, n] = time_train_steps(gan, real, n_steps)
        flops = step_flops(gan, n)
        print(
            f"{dev}: batch {n:5d}  {1e3 * timings[dev, n]:8.2f} ms/step  "
            f"{n / timings[dev, n]:9.0f} images/s  {flops / timings[dev, n] / 1e9:7.1f} GFLOP/s"
        )
if not HAS_GPU:
    print("(no GPU: only the CPU row exists; see the benchmarks page for GPU figures)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for dev in devices:
    t = np.array([timings[dev, n] for n in batch_sizes])
    axes[0].plot(batch_sizes, 1e3 * t, "o-", label=dev)
    axes[1].plot(batch_sizes, np.array(batch_sizes) / t, "o-", label=dev)
axes[0].set_ylabel("ms per training step")
axes[1].set_ylabel("images per second")
for ax in axes:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.legend()
    ax.grid(alpha=0.3)
fig.suptitle("default MNIST GAN, one train_step" + ("" if HAS_GPU else " (CPU only: no GPU)"))
plt.tight_layout()
plt.show()

# %% [markdown]
# On a CPU, images per second grow with the batch at first (larger products use the BLAS
# library better) and level off once the arithmetic units are busy: in a full-mode run on
# one CPU core, from about 430 images/s at batch 16 to about 1,800 at batch 512-1024 (some
# 50 GFLOP/s), with the time per step roughly proportional to the batch from 256 on. On a
# GPU the time per step barely grows at first (bound by kernel launches, as "Math with shapes" explains), so
# images per second climb with the batch until the arithmetic finally saturates the device.
# At the default batch of 64 the GPU is far from full; this is why GPU training of small MLPs
# gains less than the GPU's peak FLOP/s suggest. The measured comparison of minigan and
# PyTorch on both devices is on the [benchmarks page](../docs/benchmarks.md).
#
# ### A host sync in the loop
#
# What rule 3 costs: the same loop, but reading the loss after every step, as a naive
# training loop that prints or checks the loss each step would.

# %%
be = auto
gan = minigan.build_gan("default", seed=0, device=be)
real = be.asarray(real_host[:64])
steps = 5 if SMALL else 50
t_async = time_train_steps(gan, real, steps)
start = time.perf_counter()
for _ in range(steps):
    float(gan.train_step(real)["d_loss"])  # host sync every step
t_sync = (time.perf_counter() - start) / steps
print(
    f"{be.name}: {1e3 * t_async:.2f} ms/step without syncs, {1e3 * t_sync:.2f} with a sync per step"
)
if not HAS_GPU:
    print("On the CPU there is nothing to wait for, so both are the same up to noise.")

# %% [markdown]
# On a GPU the synchronising loop is slower: each step, the CPU waits for the GPU to drain
# its queue before it can launch the next step's kernels, so the two never work at the same
# time. `train_mnist` therefore keeps each step's losses on the device and copies them to the
# host once every `log_every` steps (one transfer of a `(log_every, 4)` array).
#
# ### `train_mnist` on the GPU
#
# The whole training job takes the same `device` argument (`minigan train-mnist --device gpu`
# on the command line). `"auto"` picks the GPU when CuPy sees one.

# %%
import tempfile  # noqa: E402

out_dir = tempfile.mkdtemp(prefix="minigan-lesson10-")
start = time.perf_counter()
history = minigan.train_mnist(
    epochs=1,
    device="auto",
    limit=2048 if SMALL else 12800,
    max_steps=20 if SMALL else 200,
    out_dir=out_dir,
    progress=False,
    log_every=10,
)
seconds = time.perf_counter() - start
n_done = len(history.steps)
print(f"device {auto.name}: {n_done} steps in {seconds:.1f} s (including start-up and plots)")
print("model lives on:", mb.backend_of(history.gan.generator.parameters()[0].data).name)
print("last step:", {k: round(v, 3) for k, v in history.steps[-1].items()})

# %% [markdown]
# ## Summary
#
# - One code path: `device="cpu"` gives NumPy arrays, `"gpu"` CuPy arrays, `"auto"` the GPU
#   when CuPy sees one. Layers, losses, optimizers and `GAN.train_step` are unchanged.
# - Random numbers are drawn on the host from one seed, so CPU and GPU runs start identical
#   and agree to float32 rounding; array-api-strict's `device1` checks GPU-readiness on a CPU.
# - A step is dominated by `Linear` products of $2Nio$ FLOPs each (forward, `dx`, `dW`).
#   Small batches leave a GPU idle; throughput grows with the batch.
# - Time GPU code with a warm-up and one synchronisation after the timed loop; keep host
#   syncs (`float(...)`, printing a loss) out of training loops.

# %% [markdown]
# ## Exercises
#
# 1. Extend `step_flops` to count the elementwise work too (LeakyReLU forward and backward,
#    Tanh, Adam's update of every parameter). What fraction of the total is it at batch 64?
# 2. Using your timings, compute the achieved GFLOP/s for each batch size and compare it with
#    your CPU's (or GPU's) peak. At which batch size does the GPU reach half of its best
#    throughput?
# 3. Time `gan.sample(n)` alone (G's forward pass) for `n` from 16 to 4096 on each device.
#    Where does the GPU start to win, and why is it earlier or later than for a full step?
# 4. The noise `z` is drawn on the host and copied every step. Estimate the bytes per second
#    that copy needs at the throughput you measured. Would drawing it on the GPU with
#    `cupy.random` be worth it, and what would you lose?
# 5. **Gradient-check exercise.** Run `minigan.check_module` on your `Linear` from
#    `exercises/student_layers.py` with float64 inputs on array-api-strict's `device1`. If it
#    fails with a TypeError or ValueError about devices, find the NumPy call or the host array
#    that sneaked into your backward pass.
