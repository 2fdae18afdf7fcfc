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
# # Lesson 1: Arrays, shapes and backends
#
# Everything in minigan is an array with a shape and a dtype, living on a device. Before we
# write a single layer we fix the conventions the rest of the course relies on.

# %% [markdown]
# ## Goal
#
# - Read and predict array shapes: a batch of `N` examples with `D` features is `(N, D)`.
# - Know how minigan runs the *same lines* on NumPy (CPU) and CuPy (GPU) through the
#   [Python array API standard](https://data-apis.org/array-api/latest/) and
#   `minigan.backend.array_namespace`.
# - Understand devices (where an array lives) and why mixing them is an error.
# - Choose between float32 (training) and float64 (gradient checks) knowingly.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan import backend

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
print("minigan", minigan.__version__, "| numpy", np.__version__, "| small mode:", SMALL)

# %% [markdown]
# ## Math with shapes
#
# A batch of `N` inputs with `D` features is a matrix `x` of shape `(N, D)`: one row per
# example. The three operations that fill this course are:
#
# | operation | shapes | rule |
# |---|---|---|
# | matrix product `x @ W.T` | `(N, in) @ (in, out) -> (N, out)` | inner sizes must agree |
# | broadcasting `y + b` | `(N, out) + (out,) -> (N, out)` | trailing sizes agree or are 1 |
# | reduction `sum(x, axis=0)` | `(N, D) -> (D,)` | the named axis disappears |
#
# A useful habit: write the shape next to every line, as minigan's source does
# (`y = x @ weight.T  # (N, out)`). If the shapes do not work out, the math is wrong too.

# %%
rng = np.random.default_rng(0)
N, D_in, D_out = 4, 3, 2
x = rng.standard_normal((N, D_in))  # (N, in)
W = rng.standard_normal((D_out, D_in))  # (out, in), PyTorch's layout
b = rng.standard_normal(D_out)  # (out,)
y = x @ W.T + b  # (N, out): b is broadcast over the N rows
print("x", x.shape, "W", W.shape, "b", b.shape, "->", "y", y.shape)
print("column sums", np.sum(y, axis=0).shape, "| row sums", np.sum(y, axis=1).shape)

# %% [markdown]
# Broadcasting is convenient and dangerous: `(N,) + (N, 1)` silently gives `(N, N)`.
# This is the most common shape bug in hand-written losses (labels of shape `(N,)` against
# logits of shape `(N, 1)`), which is why minigan's losses insist on equal shapes.

# %%
logits = rng.standard_normal((N, 1))  # (N, 1)
labels = np.ones(N)  # (N,)
print("(N, 1) - (N,) ->", (logits - labels).shape, "  <- not what anyone wanted")
try:
    minigan.BCEWithLogitsLoss()(logits, labels)
except ValueError as err:
    print("minigan refuses:", err)

# %% [markdown]
# ## Implement
#
# minigan's core never calls `np.` directly. Each op starts with
# `xp = array_namespace(x)` and then uses only functions of the array API standard:
# `xp.sum(x, axis=0)`, `xp.exp(x)`, `xp.where(...)`. The namespace is NumPy for NumPy arrays,
# CuPy for CuPy arrays, and `array_api_strict` (a deliberately minimal reference
# implementation) in the tests. Array *methods* such as `x.mean()` are not part of the
# standard, so we avoid them.
#
# Write a backend-agnostic `standardize(x)` that makes every column of `x (N, D)` have mean 0
# and standard deviation 1.

# %%
from minigan.backend import array_namespace


def standardize(x, eps=1e-8):
    """(x - mean) / std per column. x (N, D) -> (N, D), any array API backend."""
    xp = array_namespace(x)
    mean = xp.mean(x, axis=0)  # (D,)
    std = xp.std(x, axis=0)  # (D,)
    return (x - mean) / (std + eps)  # (N, D) - (D,) broadcasts


x = rng.normal(loc=5.0, scale=3.0, size=(1000, 3))
z = standardize(x)
print("means", np.round(np.mean(z, axis=0), 6), "stds", np.round(np.std(z, axis=0), 6))

# %% [markdown]
# ## Check
#
# Run the same function on a second backend. `array_api_strict` plays the role of a GPU
# library on a CPU-only machine: its arrays have only standard functions, and arrays placed
# on its fake `device1` refuse to mix with host (NumPy) data, exactly as CuPy arrays do.

# %%
try:
    import array_api_strict as xps
except ImportError:  # part of minigan's [dev] extra
    xps = None
    print("array_api_strict is not installed (pip install 'minigan[dev]'): skipping this check")

if xps is not None:
    dev = xps.Device("device1")
    x_strict = xps.asarray(x, device=dev)
    z_strict = standardize(x_strict)
    print("same result on array_api_strict:", np.allclose(backend.to_numpy(z_strict), z))
    print("device of the result:", z_strict.device)
    try:
        x_strict.mean()  # a NumPy method, not in the standard
    except AttributeError as err:
        print("methods are not portable:", err)
    try:
        array_namespace(x_strict, x, names=("x_strict", "x"))  # device array + host array
    except TypeError as err:
        print("mixing backends is refused:", err)

# %% [markdown]
# ### float32 or float64?
#
# A float32 has a 24-bit significand (about 7 decimal digits), a float64 has 53 bits (about
# 16). Neural networks train happily in float32: it halves memory and is much faster on GPUs.
# But two places in this course need float64:
#
# - **gradient checks** (lesson 5): a finite difference divides a rounding error of
#   ~1e-7 by a step of ~1e-6, so in float32 the "numerical gradient" is mostly noise;
# - **long sums**: adding many small numbers in float32 drifts.

# %%
for dt in (np.float32, np.float64):
    fi = np.finfo(dt)
    one_plus = dt(1) + dt(1e-8)
    print(f"{dt.__name__}: eps={fi.eps:.1e}  max={fi.max:.1e}  1 + 1e-8 == 1? {one_plus == 1}")

n_terms = 100_000 if SMALL else 1_000_000
tenth = np.full(n_terms, 0.1, dtype=np.float32)
running32 = np.cumsum(tenth, dtype=np.float32)  # left-to-right sum, like a naive loop
running64 = np.cumsum(tenth.astype(np.float64))
exact = np.float64(tenth[0]) * np.arange(1, n_terms + 1)  # the same float32 0.1, summed exactly
plt.figure(figsize=(6, 3))
plt.loglog(np.arange(1, n_terms + 1), np.abs(running32 - exact) / exact + 1e-17, label="float32")
plt.loglog(np.arange(1, n_terms + 1), np.abs(running64 - exact) / exact + 1e-17, label="float64")
plt.xlabel("number of terms added")
plt.ylabel("relative error of the running sum")
plt.title("Summing 0.1 over and over")
plt.legend()
plt.tight_layout()
plt.show()
print(f"after {n_terms} terms: float32 {running32[-1]:.2f}, float64 {running64[-1]:.2f}")
print("(float64 is exact here: its curve sits on the plot's floor of 1e-17)")

# %% [markdown]
# minigan keeps the dtype you give it: a float32 input to a float32 layer stays float32
# (constants are Python scalars, which do not upcast), and a float64 layer is one argument
# away.

# %%
layer32 = minigan.Linear(3, 2)  # float32 by default, like PyTorch
layer64 = minigan.Linear(3, 2, dtype="float64")
print(layer32.weight.dtype, layer32(np.ones((5, 3), dtype=np.float32)).dtype)
print(layer64.weight.dtype, layer64(np.ones((5, 3))).dtype)
try:
    layer32(np.ones((5, 3)))  # float64 input into a float32 layer
except TypeError as err:
    print("no silent casts:", err)

# %% [markdown]
# ## Use minigan
#
# `minigan.resolve_device` turns `"cpu"`, `"gpu"` or `"auto"` into a `Backend`: a namespace
# plus a device. Layers take `device=`; `to_device` / `to_numpy` move arrays. Random numbers
# are always drawn on the host from a seeded NumPy generator and then copied, so a seed gives
# the same weights on every backend.

# %%
cpu = minigan.resolve_device("cpu")
print("cpu backend:", cpu, "| namespace:", cpu.xp.__name__)
print("CuPy with a GPU available:", backend.cupy_available())

# %%
if backend.cupy_available():
    gpu = minigan.resolve_device("gpu")
    lin_cpu = minigan.Linear(784, 256, rng=0)
    lin_gpu = minigan.Linear(784, 256, device="gpu", rng=0)
    same = np.array_equal(backend.to_numpy(lin_gpu.weight), lin_cpu.weight)
    print("same initial weights on CPU and GPU:", same)
    xb = rng.standard_normal((64, 784)).astype(np.float32)
    y_cpu = lin_cpu(xb)
    y_gpu = lin_gpu(gpu.asarray(xb))  # host -> device copy
    print("max |cpu - gpu|:", float(np.max(np.abs(backend.to_numpy(y_gpu) - y_cpu))))
else:
    print(
        "No GPU here (CuPy missing or no CUDA device), so this lesson runs on the CPU only.\n"
        "On a machine with CuPy, Linear(..., device='gpu') builds the same layer on the GPU\n"
        "and this cell compares CPU and GPU outputs; resolve_device('gpu') would raise:"
    )
    try:
        minigan.resolve_device("gpu")
    except RuntimeError as err:
        print("  RuntimeError:", err)

# %% [markdown]
# The same seed gives the same weights whatever the device (here: NumPy and the strict
# backend's fake device), because the numbers are drawn on the host and copied.

# %%
lin_a = minigan.Linear(4, 3, rng=123)
print("weights from seed 123:\n", lin_a.weight)
if xps is not None:
    lin_b = minigan.Linear(4, 3, device=xps.Device("device1"), rng=123)
    print(
        "identical on array_api_strict:",
        np.array_equal(backend.to_numpy(lin_b.weight), lin_a.weight),
    )
    out = lin_b(xps.ones((2, 4), dtype=xps.float32, device=xps.Device("device1")))
    print("output lives on", out.device, "with shape", out.shape)

# %% [markdown]
# ## Summary
#
# - Shapes are part of the math: `(N, in) @ (in, out) -> (N, out)`, bias `(out,)` broadcasts.
#   Watch out for `(N,)` vs `(N, 1)`.
# - minigan writes each op once with `xp = array_namespace(x)` and standard functions only;
#   NumPy, CuPy and array-api-strict then run the same lines.
# - Arrays live on a device; mixing host and device arrays is an error, not a silent copy.
# - float32 for training, float64 for gradient checks; minigan never changes the dtype
#   behind your back.

# %% [markdown]
# ## Exercises
#
# 1. Write `l2_normalize_rows(x)` (each row divided by its Euclidean norm) using only
#    `xp = array_namespace(x)` functions, and check it on NumPy and on
#    `array_api_strict.Device("device1")`.
# 2. Predict, then verify, the shape of `np.ones((5, 1)) * np.ones(5)` and of
#    `np.ones((5, 1)) @ np.ones((1, 5))`.
# 3. Sum `0.1` ten million times in float32 with `np.sum` (pairwise summation) and with
#    `np.cumsum` (left to right). Why is `np.sum` so much more accurate?
# 4. With a GPU: time `x @ W.T` for `x (4096, 4096)` in float32 and float64 with CuPy and
#    NumPy (call `cupy.cuda.Device().synchronize()` before stopping the clock; lesson 10
#    explains why).
