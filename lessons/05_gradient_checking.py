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
# # Lesson 5: Gradient checking
#
# Every backward pass in minigan is written by hand, and a wrong one fails silently: the
# network still trains, only worse. The remedy is cheap and mechanical: compare the analytic
# gradient with finite differences. This lesson makes that comparison trustworthy.

# %% [markdown]
# ## Goal
#
# - Compute numerical gradients with **central differences**, and know why they beat forward
#   differences.
# - Measure agreement with a **relative error**, and know what values to expect.
# - See why gradient checks run in **float64**, how to pick the step `eps`, and what **kinks**
#   (ReLU at 0) do to a check.
# - Use `minigan.check_module` / `minigan.gradcheck` on your own layers, and the grader.

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import minigan
from minigan.gradcheck import numerical_gradient, rel_error

SMALL = os.environ.get("MINIGAN_LESSON_MODE", "full") == "small"
rng = np.random.default_rng(0)

# %% [markdown]
# ## Math with shapes
#
# **One trick for any shape.** A layer maps `x (*)` to `y (*')`; its backward pass takes an
# upstream gradient `dout (*')` and returns `dx (*)`. Pick a fixed random `dout` and define
# the scalar $L(x) = \sum_k y_k(x)\,\text{dout}_k$. Then $\partial L/\partial x$ is exactly
# what `backward(dout)` must return, so we only ever differentiate a scalar. Each element
# $x_i$ needs two evaluations:
#
# $$\frac{\partial L}{\partial x_i} \approx \frac{L(x + \varepsilon e_i) - L(x - \varepsilon e_i)}{2\varepsilon}.$$
#
# **Why central?** Taylor: $L(x \pm \varepsilon e_i) = L \pm \varepsilon L' +
# \tfrac{\varepsilon^2}{2}L'' \pm \tfrac{\varepsilon^3}{6}L''' + \dots$. The forward difference
# $(L(x+\varepsilon e_i) - L(x))/\varepsilon$ has error $\tfrac{\varepsilon}{2}L''$, i.e.
# $O(\varepsilon)$; in the central difference the even terms cancel, leaving
# $\tfrac{\varepsilon^2}{6}L'''$, i.e. $O(\varepsilon^2)$.
#
# **Rounding.** $L$ is computed with relative precision $\delta$ ($\approx 10^{-16}$ in
# float64, $\approx 6\cdot10^{-8}$ in float32), so the difference carries an error of about
# $\delta |L| / \varepsilon$. The total error of a central difference is roughly
# $C\varepsilon^2 + \delta/\varepsilon$, smallest near $\varepsilon \approx \delta^{1/3}$:
# about $10^{-5}$ in float64 (error $\sim 10^{-10}$) but $4\cdot 10^{-3}$ in float32
# (error $\sim 10^{-5}$ at best). Hence: **check gradients in float64**.
#
# **Two measures.** With analytic $a$ and numeric $n$ (same shape), minigan reports for each
# tensor
#
# $$\text{rel\_error} = \frac{\max_i |a_i - n_i|}{\max(10^{-8},\ \max_i (|a_i| + |n_i|))},$$
#
# one number: the worst absolute error *relative to the tensor's largest entry*. It is not
# the elementwise relative error $|a_i - n_i| / \max(|a_i|, |n_i|)$ behind CS231n's familiar
# rules of thumb, and it is more forgiving: a completely wrong element of size $10^{-6}$ in
# a tensor whose largest entry is 1 moves `rel_error` by only about $10^{-6}$. Rules of
# thumb for *this* definition, in float64 with `eps = 1e-6`:
#
# | `rel_error` | reading |
# | --- | --- |
# | $\lesssim 10^{-8}$ | what a correct smooth layer gives (difference error $\sim 10^{-10}$) |
# | below $10^{-6}$ | the bar of the project's own tests ($10^{-5}$ for deep stacks); necessary, not sufficient (see Check) |
# | $10^{-6}$ to $10^{-2}$ | a kink near an input, or a bug confined to small entries: read the elementwise test |
# | above $10^{-2}$ | wrong |
#
# Because a small `rel_error` cannot rule out a wrong small entry, minigan's **pass/fail**
# (the `PASS`/`FAIL` of each row of `check_module` and `gradcheck`) is PyTorch's elementwise
# test $|a_i - n_i| \le 10^{-5} + 10^{-3}|n_i|$ for every element, and the report names the
# worst element; `rel_error` is printed next to it as the one-number summary.

# %% [markdown]
# ## Implement
#
# Write the central-difference gradient yourself. Perturb in place and restore, so the
# function can also read `x` through a closure (how we will perturb layer weights).


# %%
def my_numerical_gradient(f, x, dout, eps=1e-6):
    """Central differences of L = sum(f(x) * dout). x (*) float64 -> grad (*)."""
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        plus = np.sum(f(x) * dout)
        x[idx] = old - eps
        minus = np.sum(f(x) * dout)
        x[idx] = old  # restore
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


x = rng.standard_normal((3, 4))
dout = rng.standard_normal((3, 4))
mine = my_numerical_gradient(np.tanh, x, dout)
exact = dout * (1 - np.tanh(x) ** 2)
print("ours vs exact:   ", f"{rel_error(mine, exact):.1e}")
print("ours vs minigan: ", f"{rel_error(mine, numerical_gradient(np.tanh, x, dout)):.1e}")

# %% [markdown]
# ## Check
#
# ### Choosing `eps`, float64 vs float32
#
# Sweep the step for forward and central differences of $\tanh$, in both precisions, and
# compare with the exact derivative. The V shapes are the truncation error (falling to the
# right) meeting the rounding error (rising to the left).


# %%
def diff_error(dtype, eps, central):
    xs = np.linspace(-2, 2, 41).astype(dtype)
    h = dtype(eps)
    if central:
        approx = (np.tanh(xs + h) - np.tanh(xs - h)) / (2 * h)
    else:
        approx = (np.tanh(xs + h) - np.tanh(xs)) / h
    exact = 1 - np.tanh(xs.astype(np.float64)) ** 2
    return float(np.max(np.abs(approx.astype(np.float64) - exact)))


eps_grid = np.logspace(-12, -1, 23 if SMALL else 45)
plt.figure(figsize=(6.5, 4))
for dtype, color in ((np.float64, "C0"), (np.float32, "C3")):
    for central, style in ((True, "-"), (False, "--")):
        errs = [diff_error(dtype, e, central) for e in eps_grid]
        label = f"{dtype.__name__}, {'central' if central else 'forward'}"
        plt.loglog(eps_grid, errs, style, color=color, label=label)
plt.axvline(1e-6, color="gray", lw=0.8)
plt.text(1.3e-6, 1e-10, "minigan's\neps = 1e-6", fontsize=8)
plt.xlabel("step eps")
plt.ylabel("max |numeric - exact|")
plt.title("Finite-difference error of tanh'(x)")
plt.legend(fontsize=8)
plt.tight_layout()
plt.show()
for dtype in (np.float64, np.float32):
    best = min(eps_grid, key=lambda e, dtype=dtype: diff_error(dtype, e, True))
    print(
        f"{dtype.__name__}: best central eps ~ {best:.0e}, error "
        f"{diff_error(dtype, best, True):.0e}; at eps=1e-6 error {diff_error(dtype, 1e-6, True):.0e}"
    )

# %% [markdown]
# In float64 the central difference at `eps=1e-6` is accurate to about $10^{-10}$. In float32
# the same step gives errors of order $10^{-2}$: a float32 check would fail correct code, or
# (with loose tolerances) pass wrong code. That is why `minigan.check_module` refuses float32:

# %%
try:
    minigan.check_module(minigan.Tanh(), x.astype(np.float32))
except TypeError as err:
    print("TypeError:", err)

# %% [markdown]
# ### Kinks
#
# ReLU and LeakyReLU have no derivative at 0. If an input lies within `eps` of 0, the central
# difference straddles the kink and averages the two slopes: the check "fails" although the
# code is right. That is why tests keep ReLU inputs away from 0.

# %%
relu = minigan.ReLU()
for x0 in (1e-7, 1e-3):
    xk = np.array([[x0, -0.5, 0.8]])
    d = np.ones_like(xk)
    relu.forward(xk)
    analytic = relu.backward(d)
    numeric = numerical_gradient(relu.forward, xk, d, eps=1e-6)
    print(
        f"x[0] = {x0:g}: analytic {analytic[0, 0]:.3f}  numeric {numeric[0, 0]:.3f}  "
        f"rel_error {rel_error(analytic, numeric):.1e}"
    )

# %% [markdown]
# **A bug `rel_error` hardly sees.** The gradient of $f(x) = x^3$ with one small entry wrong
# (its sign flipped): the one-number summary stays below even the $10^{-6}$ bar of our tests,
# the elementwise test fails.

# %%
xs = np.array([[10.0, 20.0, 0.01]])
ds = np.ones_like(xs)
numeric = numerical_gradient(lambda v: v**3, xs, ds)
buggy = 3 * xs**2
buggy[0, 2] *= -1  # wrong sign in the smallest entry only
elementwise = np.abs(buggy - numeric) <= 1e-5 + 1e-3 * np.abs(numeric)
print(f"rel_error {rel_error(buggy, numeric):.1e}; elementwise test per entry: {elementwise[0]}")
assert rel_error(buggy, numeric) < 1e-6 and not elementwise.all()

# %% [markdown]
# A genuinely wrong gradient fails everywhere, a kink only at a few elements whose input is
# tiny. `check_module` reports the *worst element* and its input index, so you can tell the two
# apart.
#
# ### Why a random `dout`
#
# With `dout` all ones we would only check the *sum* of each column of the Jacobian. Some bugs
# hide there. Softmax is the classic: its outputs sum to 1 whatever the input, so with
# `dout = 1` the true gradient is exactly zero, and a backward pass that returns zeros passes.


# %%
def softmax(z):
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


z = rng.standard_normal((2, 5))
lazy_backward = np.zeros_like(z)  # a "backward pass" that forgot to do anything
for name, d in (("ones", np.ones_like(z)), ("random", rng.standard_normal(z.shape))):
    num = numerical_gradient(softmax, z, d)
    passes = bool(np.all(np.abs(lazy_backward - num) <= 1e-5 + 1e-3 * np.abs(num)))
    print(
        f"dout = {name:6s}: max |numeric gradient| {np.max(np.abs(num)):.1e}, "
        f"the all-zero backward passes the check: {passes}"
    )

# %% [markdown]
# ## Use minigan
#
# `minigan.check_module(layer, x)` runs forward and backward once, then perturbs the input
# and every parameter element by element, and prints one row per tensor.
# `minigan.gradcheck(layer, x)` does the same and raises `GradcheckError` with that table on
# failure (like `torch.autograd.gradcheck`); it also accepts a loss, `gradcheck(loss, z, y)`,
# or a functional pair, `gradcheck((F.linear_forward, F.linear_backward), x, w, b)`.
#
# Checking a whole stack checks the composition, including every `dx`:

# %%
net = minigan.Sequential(
    minigan.Linear(4, 6, dtype="float64", rng=0),
    minigan.LeakyReLU(0.2),
    minigan.Linear(6, 3, dtype="float64", rng=1),
    minigan.Tanh(),
)
xn = rng.standard_normal((5, 4))
print(minigan.check_module(net, xn))

# %% [markdown]
# Now break something on purpose, the way students do. A LeakyReLU that forgot its slope in
# the backward pass, and a Linear whose backward forgets the bias gradient:


# %%
class ForgetfulLeakyReLU(minigan.LeakyReLU):
    def forward(self, x):
        self.x = x  # keep our own cache, independent of minigan's internals
        return super().forward(x)

    def backward(self, dout, *, input_grad=True):
        return np.where(self.x > 0, dout, 0.0)  # bug: should be slope * dout where x <= 0


class NoBiasGradLinear(minigan.Linear):
    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dout, *, input_grad=True):
        self.grads["weight"] += dout.T @ self.x  # bug: the bias gradient is never added
        return dout @ self.weight


xk = rng.uniform(0.1, 2, (4, 5)) * rng.choice([-1, 1], (4, 5))  # away from the kink
print(minigan.check_module(ForgetfulLeakyReLU(0.2), xk), end="\n\n")
print(minigan.check_module(NoBiasGradLinear(5, 3, dtype="float64", rng=0), xk))

# %% [markdown]
# The reports name the broken tensor (`input` for the activation, `bias` for the Linear
# layer) and the worst element with both values.
#
# ### The coursework grader
#
# The exercises of lessons 2, 3, 4 and 8 ask you to write backward passes in
# `exercises/student_layers.py`. `minigan.grading.grade_file` (on the command line:
# `minigan check exercises/student_layers.py`) runs these checks, plus the ones finite
# differences cannot see (gradients must *accumulate*; logits of ±1e3 must stay finite), and
# prints a score. Before you start, the skeleton scores 0/5:

# %%
from minigan.grading import grade_file

skeleton = Path(minigan.__file__).resolve().parents[1] / "exercises" / "student_layers.py"
if skeleton.is_file():
    report = grade_file(skeleton)
    print(report)
    assert report.score == 0  # nothing implemented yet
else:
    print("exercises/student_layers.py is not next to this minigan install; see the repository")

# %% [markdown]
# ## Summary
#
# - Check $L = \sum f(x) \odot \text{dout}$ with a **random** `dout`; `backward(dout)` must match
#   its gradient for the input and every parameter.
# - Central differences: error $O(\varepsilon^2)$; rounding adds $\delta/\varepsilon$.
#   In float64, `eps = 1e-6` gives ~1e-10; in float32 nothing works well, so check in float64.
# - `rel_error` (worst error over the tensor's largest entry) is about 1e-8 or less for a
#   correct smooth layer, must stay below 1e-6 in our tests, and is wrong above 1e-2; it can
#   miss a wrong small entry, so PASS/FAIL is the elementwise test $|a - n| \le 10^{-5} +
#   10^{-3}|n|$. Isolated failures at inputs near 0 are kinks.
# - `minigan.check_module`, `minigan.gradcheck` and `minigan check` name the tensor and
#   element that disagree.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** Implement the five backward passes in
#    `exercises/student_layers.py` (lessons 2, 3, 4 and 8 explain each one). Check each with
#    `minigan.check_module` while you work, then run `minigan check exercises/student_layers.py`
#    until it prints `Score: 5/5`.
# 2. Add the forward difference to `my_numerical_gradient` (a flag) and reproduce the
#    $O(\varepsilon)$ vs $O(\varepsilon^2)$ slopes of the plot on $f(x) = x^3$.
# 3. Find the float32 step that minimises the central-difference error of `tanh`, and compare
#    with $\delta^{1/3}$.
# 4. A gradient check of a network with 100,000 parameters needs 200,000 forward passes.
#    Propose a cheaper check (hint: a random direction $v$ and
#    $(L(x + \varepsilon v) - L(x - \varepsilon v))/2\varepsilon \approx \nabla L \cdot v$).
