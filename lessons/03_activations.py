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
# # Lesson 3: Activations and their derivatives
#
# A stack of Linear layers is still one linear map. Nonlinear activations between them are
# what lets a network bend. Their derivatives decide how well gradients travel back through
# a deep stack, and that matters a lot for GANs.

# %% [markdown]
# ## Goal
#
# - Write ReLU, LeakyReLU, Tanh and Sigmoid and their derivatives.
# - See why the backward pass of an elementwise function is `dx = dout * f'(x)`, and why
#   Tanh and Sigmoid cache their *output*.
# - See **saturation**: where the derivative is nearly zero, gradients vanish, and measure it
#   in a deep stack.

# %%
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
# An activation acts element by element: `x (*) -> y (*)`, any shape. Since $y_k$ depends
# only on $x_k$, the chain rule has one term per element:
#
# $$\frac{\partial L}{\partial x_k} = \frac{\partial L}{\partial y_k} f'(x_k)
#   \quad\Longrightarrow\quad \texttt{dx = dout * f'(x)}\quad (*)\text{, same shape.}$$
#
# | name | $f(x)$ | $f'(x)$ | cache |
# |---|---|---|---|
# | ReLU | $\max(x, 0)$ | $[x > 0]$ | mask |
# | LeakyReLU($\alpha$) | $x$ if $x>0$ else $\alpha x$ | $1$ if $x>0$ else $\alpha$ | mask |
# | Tanh | $\tanh x$ | $1 - y^2$ | $y$ |
# | Sigmoid | $\sigma(x) = 1/(1+e^{-x})$ | $y(1-y)$ | $y$ |
#
# For Tanh and Sigmoid the derivative is a simple function of the output $y$, so the layer
# caches $y$ and never recomputes an exponential in the backward pass. At $x = 0$ ReLU has a
# *kink*: no derivative. Like PyTorch, minigan uses 0 there (any value in $[0, 1]$ is a valid
# subgradient).
#
# A numerical note: `1 / (1 + np.exp(-x))` overflows for $x < -709$ in float64
# (`exp(710) = inf`). The result happens to be right (`1/inf = 0`) but with a warning, and the
# same trick fails in other formulas. The stable form computes $e = e^{-|x|} \le 1$ and returns
# $1/(1+e)$ for $x \ge 0$, $e/(1+e)$ for $x < 0$.

# %% [markdown]
# ## Implement


# %%
def relu(x):
    return np.maximum(x, 0.0)


def relu_grad(x):
    return (x > 0).astype(x.dtype)


def leaky_relu(x, alpha=0.2):
    return np.where(x > 0, x, alpha * x)


def leaky_relu_grad(x, alpha=0.2):
    return np.where(x > 0, 1.0, alpha).astype(x.dtype)


def tanh(x):
    return np.tanh(x)


def tanh_grad(x):
    y = np.tanh(x)
    return 1 - y * y


def sigmoid(x):
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(x):
    y = sigmoid(x)
    return y * (1 - y)


ACTIVATIONS = {
    "ReLU": (relu, relu_grad),
    "LeakyReLU(0.2)": (leaky_relu, leaky_relu_grad),
    "Tanh": (tanh, tanh_grad),
    "Sigmoid": (sigmoid, sigmoid_grad),
}

grid = np.linspace(-6, 6, 601)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, (f, g) in ACTIVATIONS.items():
    axes[0].plot(grid, f(grid), label=name)
    axes[1].plot(grid, g(grid), label=name)
axes[0].set_title("activation f(x)")
axes[1].set_title("derivative f'(x)")
axes[0].set_ylim(-1.5, 3)
for ax in axes:
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_xlabel("x")
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the right panel. ReLU passes gradients through unchanged where it is active, and
# blocks them completely where it is not ("dead" units); LeakyReLU always lets a fraction
# $\alpha$ through. Tanh and Sigmoid have derivatives that vanish on both sides: a unit
# pushed to $|x| > 5$ is **saturated** and barely learns. Sigmoid's derivative never exceeds
# $1/4$.

# %%
for x0 in (0.0, 2.0, 5.0, 10.0):
    print(
        f"x = {x0:4.1f}:  sigmoid' = {sigmoid_grad(np.array(x0)):.2e}   "
        f"tanh' = {tanh_grad(np.array(x0)):.2e}"
    )
print("stable sigmoid at -1000 and 1000:", sigmoid(np.array([-1000.0, 1000.0])))
with np.errstate(over="raise"):
    try:
        1 / (1 + np.exp(-np.array([-1000.0])))
    except FloatingPointError as err:
        print("naive sigmoid at -1000:", err)

# %% [markdown]
# ## Check
#
# Check every derivative numerically, in float64 and away from the kink at 0 (lesson 5
# explains why kinks confuse finite differences).

# %%
x = rng.uniform(-3, 3, size=(4, 5))
x[np.abs(x) < 0.1] = 0.5  # keep away from the kink
dout = rng.standard_normal(x.shape)
for name, (f, g) in ACTIVATIONS.items():
    analytic = dout * g(x)
    numeric = numerical_gradient(lambda _, f=f: f(x), x, dout)
    err = rel_error(analytic, numeric)
    print(f"{name:15s} relative error {err:.1e}")
    assert err < 1e-6

# %% [markdown]
# ## Use minigan
#
# minigan's `ReLU`, `LeakyReLU(negative_slope=0.01)`, `Tanh` and `Sigmoid` layers follow
# `torch.nn`. Note PyTorch's default slope 0.01; GANs usually pass 0.2. Let us confirm our
# formulas against the layers with `check_module`.

# %%
for layer in (minigan.ReLU(), minigan.LeakyReLU(0.2), minigan.Tanh(), minigan.Sigmoid()):
    y = layer(x)
    ours = {"ReLU": relu, "LeakyReLU": leaky_relu, "Tanh": tanh, "Sigmoid": sigmoid}
    same = np.allclose(y, ours[type(layer).__name__](x))
    report = minigan.check_module(layer, x)
    print(f"{layer!r:32s} forward matches ours: {same}  gradient check passed: {report.passed}")
    assert same and report.passed

# %% [markdown]
# ### Saturation in a deep stack
#
# Put 10 `Linear(64, 64)` layers in a row with the same activation after each, push a batch
# through, back-propagate a random gradient, and measure the size of the gradient that
# reaches each layer's weight. With Sigmoid every layer multiplies the gradient by at most
# $1/4$ (times the weight's gain), so the first layers get almost nothing: the **vanishing
# gradient**. The same thing will happen to a GAN generator trained with the "saturating"
# loss (lesson 8).

# %%
depth, width = 10, 64
xb = rng.standard_normal((128, width))
plt.figure(figsize=(6, 3.5))
for act in (minigan.Sigmoid, minigan.Tanh, minigan.ReLU, lambda: minigan.LeakyReLU(0.2)):
    layers = []
    for i in range(depth):
        layers += [minigan.Linear(width, width, dtype="float64", rng=i), act()]
    net = minigan.Sequential(*layers)
    out = net(xb)
    net.backward(rng.standard_normal(out.shape))
    norms = [float(np.linalg.norm(net[2 * i].grads["weight"])) for i in range(depth)]
    label = type(layers[1]).__name__
    plt.semilogy(range(1, depth + 1), norms, "o-", label=label)
    print(f"{label:10s} |dW| first layer {norms[0]:.1e}, last layer {norms[-1]:.1e}")
plt.xlabel("layer (1 = closest to the input)")
plt.ylabel("gradient norm of the weight")
plt.title("Gradients reaching each layer (PyTorch default init)")
plt.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# With PyTorch's default initialisation every one of these stacks shrinks the gradient layer
# after layer, but Sigmoid loses orders of magnitude within a few layers. This is why hidden
# layers use ReLU-like activations, and why Sigmoid and Tanh appear only at the *output*:
# Tanh maps the generator's output into $(-1, 1)$, Sigmoid turns the discriminator's logit
# into a probability (and, as lesson 4 shows, is best folded into the loss).

# %% [markdown]
# ## Summary
#
# - Elementwise activation: `dx = dout * f'(x)`, same shape as `x`.
# - Tanh and Sigmoid cache their output: $f' = 1 - y^2$ and $y(1 - y)$.
# - ReLU blocks gradients of inactive units; LeakyReLU keeps a slope $\alpha$
#   (0.2 in GANs); the kink at 0 gets derivative 0 by convention.
# - Saturating activations ($\sigma' \le 1/4$) make gradients vanish in deep stacks.
# - Compute the sigmoid from $e^{-|x|}$ so nothing overflows.

# %% [markdown]
# ## Exercises
#
# 1. **Gradient-check exercise.** In `exercises/student_layers.py` implement
#    `LeakyReLU.backward` (mind `negative_slope`: the grader uses 0.2, not the default) and
#    `Sigmoid.backward` (use the cached output). Check each with
#    `minigan.check_module(layer, x)` on a float64 `x` kept away from 0, then run
#    `minigan check exercises/student_layers.py`.
# 2. Show that $\tanh(x) = 2\sigma(2x) - 1$ and derive $\tanh'$ from $\sigma'$.
# 3. A ReLU unit whose pre-activation is negative for every input never receives a gradient
#    ("dead ReLU"). Build a `Linear(2, 1)` whose bias is -10 and show that `backward` gives
#    zero weight gradients. Does LeakyReLU fix it?
# 4. Repeat the deep-stack experiment with `init.kaiming_uniform_(w, nonlinearity="relu")`
#    for the ReLU network. What happens to the gradient norms?
