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
# # Lesson 2: The Linear layer
#
# The fully connected (Linear) layer is the workhorse of every network in this course:
# the generator and the discriminator of our GAN are stacks of Linear layers with
# activations in between. Here we derive its backward pass by hand, shape by shape.

# %% [markdown]
# ## Goal
#
# - Write the forward pass `y = x @ W.T + b` and its backward pass: `dx`, `dW`, `db`.
# - Derive each gradient from the index form and check it with the shapes.
# - Meet minigan's layer contract: `forward` keeps a cache, `backward(dout)` returns `dx`
#   and **adds** into `grads`.

# %%
import importlib.util
import os

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan.gradcheck import numerical_gradient, rel_error

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# Forward, with PyTorch's layout (`weight` is `(out_features, in_features)`):
#
# $$y = x W^\top + b, \qquad x\,(N, \text{in}),\; W\,(\text{out}, \text{in}),\;
#   b\,(\text{out},),\; y\,(N, \text{out}).$$
#
# In indices: $y_{nj} = \sum_i x_{ni} W_{ji} + b_j$.
#
# Backward. Some scalar loss $L$ sits downstream; we receive the *upstream gradient*
# `dout` $= \partial L / \partial y$, of the same shape as $y$: `(N, out)`. The chain rule
# sums over every $y_{nj}$ that a parameter touches:
#
# - $W_{ji}$ appears in $y_{nj}$ for every $n$ with coefficient $x_{ni}$:
#   $\;\partial L/\partial W_{ji} = \sum_n \text{dout}_{nj}\, x_{ni}$, i.e.
#   **`dW = dout.T @ x`**: `(out, N) @ (N, in) -> (out, in)`, the shape of `W`.
# - $b_j$ appears in $y_{nj}$ for every $n$ with coefficient 1:
#   **`db = sum(dout, axis=0)`**: `(N, out) -> (out,)`.
# - $x_{ni}$ appears in $y_{nj}$ for every $j$ with coefficient $W_{ji}$:
#   $\;\partial L/\partial x_{ni} = \sum_j \text{dout}_{nj} W_{ji}$, i.e.
#   **`dx = dout @ W`**: `(N, out) @ (out, in) -> (N, in)`, the shape of `x`.
#
# A gradient always has the shape of the thing it is the gradient of. That alone nearly
# fixes the formulas: the only way to combine `dout (N, out)` and `x (N, in)` into
# `(out, in)` is `dout.T @ x`; the sum over the batch appears by itself.
#
# The forward pass must keep `x` for the backward pass (for `dW`) and `W` (for `dx`): that is
# the **cache**.

# %% [markdown]
# ## Implement
#
# Write both passes in plain NumPy.


# %%
def my_linear_forward(x, W, b):
    """y = x @ W.T + b. x (N, in), W (out, in), b (out,) -> y (N, out), cache."""
    y = x @ W.T + b  # (N, out)
    return y, (x, W)


def my_linear_backward(dout, cache):
    """dout (N, out) -> dx (N, in), dW (out, in), db (out,)."""
    x, W = cache
    dx = dout @ W  # (N, out) @ (out, in) -> (N, in)
    dW = dout.T @ x  # (out, N) @ (N, in) -> (out, in)
    db = np.sum(dout, axis=0)  # (out,)
    return dx, dW, db


N, n_in, n_out = 5, 4, 3
x = rng.standard_normal((N, n_in))
W = rng.standard_normal((n_out, n_in))
b = rng.standard_normal(n_out)
y, cache = my_linear_forward(x, W, b)
dout = rng.standard_normal(y.shape)  # a random upstream gradient (never all ones)
dx, dW, db = my_linear_backward(dout, cache)
print("y", y.shape, "| dx", dx.shape, "dW", dW.shape, "db", db.shape)

# %% [markdown]
# ## Check
#
# Is it right? Compare with central finite differences (lesson 5 explains the method in
# depth). `numerical_gradient(f, a, dout)` perturbs each element of `a` in place and returns
# the numerical gradient of $L = \sum f(\cdot) \odot \text{dout}$, whose exact gradient is
# what our backward pass computes. We work in float64.

# %%
num_dx = numerical_gradient(lambda _: my_linear_forward(x, W, b)[0], x, dout)
num_dW = numerical_gradient(lambda _: my_linear_forward(x, W, b)[0], W, dout)
num_db = numerical_gradient(lambda _: my_linear_forward(x, W, b)[0], b, dout)
for name, a, n in (("dx", dx, num_dx), ("dW", dW, num_dW), ("db", db, num_db)):
    print(f"{name}: relative error {rel_error(a, n):.2e}")
    assert rel_error(a, n) < 1e-6

# %% [markdown]
# Relative errors around 1e-10 mean the formulas are right; a wrong formula gives errors of
# order 1. What does a *typical* mistake look like? Forgetting the transpose in `dW` does not
# even have the right shape when `in != out`; with a square layer it runs and is silently
# wrong:

# %%
Ws = rng.standard_normal((n_in, n_in))  # square: (in, in)
ys, cache_s = my_linear_forward(x, Ws, np.zeros(n_in))
dout_s = rng.standard_normal(ys.shape)
wrong_dW = x.T @ dout_s  # (in, in): right shape, transposed values
num = numerical_gradient(lambda _: my_linear_forward(x, Ws, np.zeros(n_in))[0], Ws, dout_s)
print(f"transposed dW: relative error {rel_error(wrong_dW, num):.2f}")
print(f"correct    dW: relative error {rel_error(my_linear_backward(dout_s, cache_s)[1], num):.1e}")

# %% [markdown]
# ## Use minigan
#
# `minigan.Linear(in_features, out_features, bias=True)` follows `torch.nn.Linear`: same
# argument names, same weight layout, same initialisation
# ($U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})$). Its backward pass calls
# `minigan.functional.linear_backward`, the function we just re-derived. Two details of the
# layer contract:
#
# 1. `backward(dout)` **adds** into `layer.grads` (so gradients from two losses, or two
#    batches, accumulate, as in PyTorch); call `zero_grad()` before each step.
# 2. `backward(dout, input_grad=False)` skips `dx`: the first layer of a network does not
#    need the gradient with respect to the data, and skipping it saves a matrix product.

# %%
layer = minigan.Linear(n_in, n_out, dtype="float64", rng=0)
print(layer, "| weight", layer.weight.shape, "| bias", layer.bias.shape)
y_layer = layer(x)
dx_layer = layer.backward(dout)
my_dx, my_dW, my_db = my_linear_backward(dout, (x, layer.weight))
print("dx matches:", np.allclose(dx_layer, my_dx))
print("dW matches:", np.allclose(layer.grads["weight"], my_dW))
print("db matches:", np.allclose(layer.grads["bias"], my_db))

layer.forward(x)
layer.backward(dout)  # a second backward without zero_grad
print("after two backward calls, grads are 2x:", np.allclose(layer.grads["weight"], 2 * my_dW))
layer.zero_grad()
print("after zero_grad:", float(np.abs(layer.grads["weight"]).max()))
print("input_grad=False returns:", layer.backward(dout, input_grad=False))

# %% [markdown]
# `minigan.check_module` runs this whole check for the input and every parameter, and prints
# a per-tensor table:

# %%
report = minigan.check_module(layer, x)
print(report)
assert report.passed

# %% [markdown]
# Because minigan uses PyTorch's names and layout, a one-to-one comparison with autograd is
# easy (PyTorch is optional; this cell is skipped without it).

# %%
if importlib.util.find_spec("torch") is None:
    print("PyTorch is not installed: skipping the comparison with torch.autograd")
else:
    import torch

    tl = torch.nn.Linear(n_in, n_out, dtype=torch.float64)
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(layer.weight))
        tl.bias.copy_(torch.from_numpy(layer.bias))
    tx = torch.from_numpy(x).requires_grad_(True)
    tl(tx).backward(torch.from_numpy(dout))
    layer.zero_grad()
    layer.forward(x)
    dx_m = layer.backward(dout)
    print("torch dx:", np.allclose(tx.grad.numpy(), dx_m))
    print("torch dW:", np.allclose(tl.weight.grad.numpy(), layer.grads["weight"]))
    print("torch db:", np.allclose(tl.bias.grad.numpy(), layer.grads["bias"]))

# %% [markdown]
# A first taste of training: fit a Linear layer to noisy data from a known linear map with
# plain gradient descent on the mean squared error. The gradient of
# $\frac{1}{N}\sum (y - t)^2$ with respect to $y$ is $2(y - t)/N$: that is the `dout` we
# feed into `backward`.

# %%
true_W = np.array([[2.0, -1.0]])  # (1, 2)
true_b = np.array([0.5])
X = rng.standard_normal((256, 2))
T = X @ true_W.T + true_b + 0.1 * rng.standard_normal((256, 1))
model = minigan.Linear(2, 1, dtype="float64", rng=1)
losses = []
for _ in range(60 if SMALL else 200):
    pred = model(X)  # (256, 1)
    losses.append(float(np.mean((pred - T) ** 2)))
    model.zero_grad()
    model.backward(2 * (pred - T) / len(X), input_grad=False)
    for p in model.parameters():
        p.data[...] -= 0.1 * p.grad  # gradient descent, in place
print("learned W", np.round(model.weight, 3), "b", np.round(model.bias, 3))
plt.figure(figsize=(5, 3))
plt.semilogy(losses)
plt.xlabel("step")
plt.ylabel("mean squared error")
plt.title("Fitting a Linear layer by gradient descent")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - Forward `y = x @ W.T + b`; backward `dx = dout @ W`, `dW = dout.T @ x`,
#   `db = sum(dout, axis=0)`.
# - A gradient has the shape of its variable; matching shapes nearly derives the formulas.
# - The cache keeps `x` and `W` from the forward pass.
# - minigan layers accumulate gradients (`zero_grad()` resets them) and can skip `dx`.
# - Always check a hand-written backward pass numerically, with a random `dout`.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** Open `exercises/student_layers.py` and implement
#    `Linear.backward`: return `dx`, and *add* `dW` and `db` into `self.grads` (remember the
#    layer may have `bias=False`). Check it with
#    `minigan.check_module(Linear(4, 3, dtype="float64"), x)` in float64, then run
#    `minigan check exercises/student_layers.py`.
# 2. Derive the backward pass for the other convention, `y = x @ W + b` with `W (in, out)`.
#    Which formulas change?
# 3. Why must `backward` *add* into `grads` rather than overwrite? Think of a discriminator
#    that sees a real batch and a fake batch in one step (lesson 8).
# 4. Count the floating point operations of forward and backward for `N=64, in=784,
#    out=1024`. How much does `input_grad=False` save for the first layer?
