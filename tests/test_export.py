"""Export to PyTorch and ONNX: same outputs and input gradients as minigan, and clear errors.

The comparisons need torch, onnx and onnxruntime (``pip install "minigan[export]"`` and torch);
each test skips with the reason when one is missing. The bad-input tests need none of them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import host
from PIL import Image
from test_cli import run_main, tiny_checkpoint

from minigan.dcgan import dcgan_discriminator, dcgan_generator
from minigan.export import to_onnx, to_torch
from minigan.gan import PRESETS, build_gan, mlp_generator
from minigan.layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    Linear,
    Module,
    ReLU,
    Sequential,
    Tanh,
    Unflatten,
)
from minigan.models import MODELS


def _missing(name: str) -> bool:
    return importlib.util.find_spec(name) is None


needs_torch = pytest.mark.skipif(_missing("torch"), reason="torch is not installed")
needs_onnx = pytest.mark.skipif(
    _missing("onnx") or _missing("onnxruntime"),
    reason='onnx or onnxruntime is not installed (pip install "minigan[export]")',
)
# The presets of plain MLPs; the DCGAN builders (tiny, below) and the conditional presets
# (LabelConcat: (x, labels)) have their own tests.
MLP_PRESETS = sorted(p for p in PRESETS if PRESETS[p].generator == "mlp_generator")
CONDITIONAL_PRESETS = sorted(p for p in PRESETS if "num_classes" in PRESETS[p].generator_args)
TINY = {"latent_dim": 4, "g_hidden": (8,), "d_hidden": (8,)}
TOL = {"float64": 1e-10, "float32": 1e-5}  # the acceptance tolerances


def _nets(preset: str, dtype: str):
    gan = build_gan(preset, seed=0, dtype=dtype)
    return gan.generator.eval(), gan.discriminator.eval()


def _randn(shape, dtype, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _ort(path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


class Weird(Module):
    """A layer no converter knows."""

    def forward(self, x):
        return x


# ----------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("preset", MLP_PRESETS)
def test_torch_outputs_equal_minigan(preset, dtype):
    import torch

    G, D = _nets(preset, dtype)
    z = _randn((5, G[0].in_features), dtype)
    x = _randn((5, D[0].in_features), dtype)
    with torch.no_grad():
        tg = to_torch(G)(torch.from_numpy(z)).numpy()
        td = to_torch(D)(torch.from_numpy(x)).numpy()
    assert tg.dtype == np.dtype(dtype) and td.dtype == np.dtype(dtype)
    np.testing.assert_allclose(tg, G.forward(z), rtol=0, atol=TOL[dtype])
    np.testing.assert_allclose(td, D.forward(x), rtol=0, atol=TOL[dtype])


@needs_torch
@pytest.mark.parametrize("preset", MLP_PRESETS)
def test_torch_discriminator_gradients_equal_minigan(preset):
    import torch

    _, D = _nets(preset, "float64")
    x = _randn((6, D[0].in_features), "float64")
    dout = _randn((6, 1), "float64", seed=2)
    D.zero_grad()
    D.forward(x)
    dx = D.backward(dout)

    net = to_torch(D)
    tx = torch.from_numpy(x).requires_grad_(True)
    net(tx).backward(torch.from_numpy(dout))
    np.testing.assert_allclose(tx.grad.numpy(), dx, rtol=0, atol=1e-10)
    for name, p in net.named_parameters():  # the weight gradients too, by PyTorch's names
        mine = dict(D.named_parameters())[name].grad
        np.testing.assert_allclose(p.grad.numpy(), mine, rtol=0, atol=1e-10, err_msg=name)


@needs_torch
def test_torch_keeps_each_modules_mode_and_copies_the_weights():
    G, _ = _nets("default", "float32")
    G.train()
    G[2].eval()
    net = to_torch(G)
    assert net.training and net[0].training and not net[2].training
    assert all(not m.training for m in to_torch(G.eval()).modules())

    before = net[0].weight.detach().numpy().copy()
    G[0].params["weight"][...] += 1.0  # training minigan afterwards leaves the copy alone
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), before)


@needs_torch
def test_torch_linear_without_bias_and_a_lone_activation():
    import torch

    lin = Linear(3, 2, bias=False, dtype="float64", rng=0)
    net = to_torch(lin)
    assert net.bias is None
    x = _randn((4, 3), "float64")
    np.testing.assert_allclose(net(torch.from_numpy(x)).detach().numpy(), lin.forward(x), atol=0)
    assert isinstance(to_torch(Tanh()), torch.nn.Tanh)


# ----------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------
@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("preset", MLP_PRESETS)
def test_onnx_passes_the_checker_and_equals_minigan(tmp_path, preset, dtype):
    import onnx

    G, D = _nets(preset, dtype)
    for name, net, width in (("g", G, G[0].in_features), ("d", D, D[0].in_features)):
        path = to_onnx(net, tmp_path / f"{name}.onnx", (width,))
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        batch = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param == "N" and not batch.HasField("dim_value")
        session = _ort(path)
        for n in (1, 7):  # the dynamic batch dimension: two batch sizes through one file
            x = _randn((n, width), dtype, seed=n)
            (y,) = session.run(["output"], {"input": x})
            assert y.dtype == np.dtype(dtype)
            np.testing.assert_allclose(y, net.forward(x), rtol=0, atol=TOL[dtype])


@needs_onnx
def test_onnx_initializers_carry_pytorchs_names(tmp_path):
    import onnx

    G, _ = _nets("classic", "float32")  # Linear layers only: every state entry is a weight
    model = onnx.load(to_onnx(G, tmp_path / "g.onnx", (100,)))
    assert sorted(t.name for t in model.graph.initializer) == sorted(G.state_dict())


@needs_onnx
@pytest.mark.parametrize("shape", [(784,), (5, 100), (), (0,), (100.0,)])
def test_onnx_input_shape_that_does_not_fit(tmp_path, shape):
    G, _ = _nets("default", "float32")
    with pytest.raises(ValueError, match=r"input_shape.*(does not fit|without the batch)"):
        to_onnx(G, tmp_path / "g.onnx", shape)
    assert not (tmp_path / "g.onnx").exists()


# ----------------------------------------------------------------------------------------------
# conv layers: DCGAN G and D, and the odd geometries
# ----------------------------------------------------------------------------------------------
IMAGES = [(1, 28, 28), (3, 32, 32)]  # grey MNIST, colour CIFAR-10
LATENT = 6


def _spread(net: Module, seed: int = 3) -> Module:
    """Weights of order 1/sqrt(fan_in) and BatchNorm scales near 1, so the outputs are O(1).

    DCGAN's N(0, 0.02) init gives outputs so small that any atol would pass; this makes the
    comparisons bite. Then two training-mode forwards give BatchNorm real running statistics.
    """
    r = np.random.default_rng(seed)
    for name, p in net.named_parameters():
        shape = p.data.shape
        if len(shape) == 1:  # biases, BatchNorm's weight and bias
            base = 1.0 if name.endswith("weight") else 0.0
            p.data[...] = base + 0.2 * r.standard_normal(shape)
        else:
            p.data[...] = r.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
    return net


def _dcgan(image_shape, dtype, dense=None):
    """Tiny DCGAN G and D (base_channels 4; ``dense``: dense_features) in eval mode, with
    running statistics."""
    G = _spread(dcgan_generator(LATENT, image_shape, 4, dense, dtype=dtype, rng=0))
    D = _spread(dcgan_discriminator(image_shape, 4, dense_features=dense, dtype=dtype, rng=0))
    for seed in (10, 11):
        G.forward(_randn((4, LATENT), dtype, seed))
        D.forward(_randn((4, *image_shape), dtype, seed))
    return G.eval(), D.eval()


def _odd_geometry(dtype):
    """Non-square kernels, strides and paddings, output_padding, the general Flatten/Unflatten.

    (N, 3, 4, 5) -> ConvT (N, 2, 8, 16) -> Conv (N, 4, 7, 8) -> (N, 4, 56) -> (N, 4, 7, 8)
    -> (N, 28, 8) -> (N, 224).
    """
    kw = dict(dtype=dtype, rng=0)
    return Sequential(
        ConvTranspose2d(3, 2, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), **kw),
        Conv2d(2, 4, (2, 3), stride=(1, 2), padding=(0, 1), bias=False, **kw),
        Flatten(2),
        Unflatten(-1, (7, 8)),
        Dropout(0.3),
        Flatten(1, 2),
        Flatten(),
    ).eval()


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("image_shape", IMAGES, ids=["grey28", "colour32"])
@pytest.mark.parametrize("dense", [None, 6], ids=["plain", "dense_features"])
def test_torch_dcgan_outputs_equal_minigan(image_shape, dtype, dense):
    import torch

    G, D = _dcgan(image_shape, dtype, dense)
    z, x = _randn((3, LATENT), dtype), _randn((3, *image_shape), dtype)
    with torch.no_grad():
        tg = to_torch(G)(torch.from_numpy(z)).numpy()
        td = to_torch(D)(torch.from_numpy(x)).numpy()
    g, d = G.forward(z), D.forward(x)
    assert tg.shape == (3, *image_shape) and td.shape == (3, 1)
    assert tg.dtype == np.dtype(dtype) and td.dtype == np.dtype(dtype)
    assert np.abs(g).max() > 0.1 and np.abs(d).max() > 0.1  # outputs large enough to compare
    np.testing.assert_allclose(tg, g, rtol=0, atol=TOL[dtype])
    np.testing.assert_allclose(td, d, rtol=0, atol=TOL[dtype])


@needs_torch
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("image_shape", IMAGES, ids=["grey28", "colour32"])
def test_torch_dcgan_discriminator_gradients_equal_minigan(image_shape, mode):
    import torch

    _, D = _dcgan(image_shape, "float64")
    D.train(mode == "train")  # train: BatchNorm's batch statistics, in both forward and backward
    x = _randn((3, *image_shape), "float64", seed=4)
    dout = _randn((3, 1), "float64", seed=5)
    net = to_torch(D)
    tx = torch.from_numpy(x).requires_grad_(True)
    net(tx).backward(torch.from_numpy(dout))
    D.zero_grad()
    D.forward(x)
    dx = D.backward(dout)
    assert np.abs(dx).max() > 1e-3
    np.testing.assert_allclose(tx.grad.numpy(), dx, rtol=0, atol=1e-10)
    mine = dict(D.named_parameters())
    for name, p in net.named_parameters():
        np.testing.assert_allclose(
            p.grad.numpy(), mine[name].grad, rtol=0, atol=1e-10, err_msg=name
        )


@needs_torch
def test_torch_batchnorm_in_training_mode_carries_on_the_running_statistics():
    import torch

    net = Sequential(
        Linear(3, 5, dtype="float64", rng=0),
        BatchNorm1d(5, momentum=None, dtype="float64"),  # cumulative: 1 / num_batches_tracked
        Unflatten(1, (5, 1, 1)),
        BatchNorm2d(5, momentum=0.3, dtype="float64"),
        Flatten(),
    )
    for seed in (1, 2, 3):
        net.forward(_randn((4, 3), "float64", seed))
    tnet = to_torch(net)
    assert tnet.training and int(tnet[1].num_batches_tracked) == 3
    x = _randn((6, 3), "float64", seed=4)
    np.testing.assert_allclose(
        tnet(torch.from_numpy(x)).detach().numpy(), net.forward(x), atol=1e-10
    )
    after = tnet.state_dict()  # both updated their running statistics from the same batch
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(after[key].numpy(), value, rtol=0, atol=1e-12, err_msg=key)
    assert int(after["3.num_batches_tracked"]) == 4


@needs_torch
def test_torch_odd_geometry_and_dropout():
    import torch

    net = _odd_geometry("float64")
    x = _randn((2, 3, 4, 5), "float64")
    tnet = to_torch(net)
    with torch.no_grad():
        y = tnet(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, net.forward(x), rtol=0, atol=1e-10)
    assert y.shape == (2, 224)
    dropout = to_torch(Dropout(0.3).train())
    assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.3 and dropout.training


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@needs_onnx
@pytest.mark.parametrize("image_shape", IMAGES, ids=["grey28", "colour32"])
def test_onnx_dcgan_passes_the_checker_and_equals_minigan(tmp_path, image_shape):
    import onnx

    G, D = _dcgan(image_shape, "float32")
    for name, net, shape, out in (
        ("g", G, (LATENT,), [*image_shape]),
        ("d", D, image_shape, [1]),
    ):
        model = onnx.load(to_onnx(net, tmp_path / f"{name}.onnx", shape))
        onnx.checker.check_model(model, full_check=True)
        assert _dims(model.graph.input[0]) == ["N", *shape]
        assert _dims(model.graph.output[0]) == ["N", *out]  # the batch stays dynamic throughout
        names = {t.name for t in model.graph.initializer}
        assert {k for k in net.state_dict() if "num_batches" not in k} <= names
        session = _ort(tmp_path / f"{name}.onnx")
        for n in (1, 5):
            x = _randn((n, *shape), "float32", seed=n)
            (y,) = session.run(["output"], {"input": x})
            assert y.shape == (n, *out) and np.abs(y).max() > 0.1
            np.testing.assert_allclose(y, net.forward(x), rtol=0, atol=TOL["float32"])


@needs_onnx
def test_onnx_exports_the_eval_form_of_training_mode_layers(tmp_path):
    G, _ = _dcgan((1, 28, 28), "float32")
    net = Sequential(G, Dropout(0.5)).train()  # BatchNorm and Dropout in training mode
    path = to_onnx(net, tmp_path / "g.onnx", (LATENT,))
    z = _randn((4, LATENT), "float32")
    (y,) = _ort(path).run(None, {"input": z})
    np.testing.assert_allclose(y, net.eval().forward(z), rtol=0, atol=TOL["float32"])


@needs_onnx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_batchnorm1d_without_affine(tmp_path, dtype):
    net = Sequential(Linear(3, 4, dtype=dtype, rng=0), BatchNorm1d(4, affine=False, dtype=dtype))
    for seed in (1, 2):
        net.forward(_randn((5, 3), dtype, seed))
    net.eval()
    x = _randn((2, 3), dtype)
    (y,) = _ort(to_onnx(net, tmp_path / "bn.onnx", (3,))).run(None, {"input": x})
    np.testing.assert_allclose(y, net.forward(x), rtol=0, atol=TOL[dtype])


@needs_onnx
def test_onnx_odd_geometry_and_dropout(tmp_path):
    # float32 only: onnxruntime's CPU Conv and ConvTranspose have no float64 kernels
    odd = _odd_geometry("float32").train()  # Dropout in training mode: its eval form, x
    session = _ort(to_onnx(odd, tmp_path / "odd.onnx", (3, 4, 5)))
    for n in (1, 3):
        x = _randn((n, 3, 4, 5), "float32", seed=n)
        (y,) = session.run(None, {"input": x})
        np.testing.assert_allclose(y, odd.eval().forward(x), rtol=0, atol=TOL["float32"])


@needs_onnx
def test_onnx_float64_conv_graph_passes_the_checker(tmp_path):
    import onnx

    _, D = _dcgan((1, 28, 28), "float64")
    model = onnx.load(to_onnx(D, tmp_path / "d.onnx", (1, 28, 28)))
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE


@needs_onnx
def test_onnx_refuses_batchnorm_without_running_statistics(tmp_path):
    net = Sequential(Linear(3, 4), BatchNorm1d(4, track_running_stats=False))
    with pytest.raises(ValueError, match=r"layer '1' \(BatchNorm1d\) has track_running_stats"):
        to_onnx(net, tmp_path / "bn.onnx", (3,))
    assert not (tmp_path / "bn.onnx").exists()


# ----------------------------------------------------------------------------------------------
# bad input (no optional package needed)
# ----------------------------------------------------------------------------------------------
def _with_weird():
    return Sequential(Linear(2, 2), Sequential(ReLU(), Weird()))


@pytest.mark.parametrize(
    "convert", [to_torch, lambda m: to_onnx(m, "unused.onnx", (2,))], ids=["torch", "onnx"]
)
def test_a_layer_without_converter_is_named(convert):
    with pytest.raises(TypeError, match=r"layer '1\.1' \(Weird\) has no converter.*Linear"):
        convert(_with_weird())
    with pytest.raises(TypeError, match=r"layer '<root>' \(Weird\)"):
        convert(Weird())
    with pytest.raises(TypeError, match="expected a minigan Module, got list"):
        convert([Linear(2, 2)])


def test_missing_output_folder_is_checked_first(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # not even the onnx import is reached
    with pytest.raises(FileNotFoundError, match=r"folder .*nowhere does not exist"):
        to_onnx(_with_weird(), tmp_path / "nowhere" / "g.onnx", (2,))


def test_missing_torch_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match="needs the optional package 'torch'.*pip install torch"):
        to_torch(Linear(2, 2))


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"'onnx'.*pip install \"minigan\[export\]\""):
        to_onnx(Linear(2, 2), tmp_path / "g.onnx", (2,))


# ----------------------------------------------------------------------------------------------
# conditional models: LabelConcat, a second input "labels"
# ----------------------------------------------------------------------------------------------
def _conditional(preset: str, dtype: str):
    p = PRESETS[preset]
    if MODELS[p.discriminator].layout == "image":  # cdcgan: tiny conv nets, label maps in D
        tiny = {
            "latent_dim": 4,
            "generator_args": {**p.generator_args, "base_channels": 4},
            "discriminator_args": {**p.discriminator_args, "base_channels": 4},
        }
    else:
        tiny = TINY
    gan = build_gan(preset, seed=0, dtype=dtype, **tiny)
    return gan, gan.generator.eval(), gan.discriminator.eval()


def _labels(n: int, k: int, seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, size=n, dtype=np.int64)


@needs_torch
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("preset", CONDITIONAL_PRESETS)
def test_torch_conditional_outputs_equal_minigan(preset, dtype):
    import torch

    gan, G, D = _conditional(preset, dtype)
    labels = _labels(6, gan.num_classes)
    z = _randn((6, gan.latent_dim), dtype)
    x = _randn((6, *gan.data_shape), dtype)
    for module, inp in ((G, z), (D, x)):
        net = to_torch(module)
        assert sorted(net.state_dict()) == sorted(module.state_dict())  # keys "net.*"
        assert not any(m.training for m in net.modules())
        with torch.no_grad():
            y = net(torch.from_numpy(inp), torch.from_numpy(labels)).numpy()
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(y, module.forward(inp, labels), rtol=0, atol=TOL[dtype])


@needs_onnx
@pytest.mark.parametrize("preset", CONDITIONAL_PRESETS)
def test_onnx_conditional_takes_labels_and_equals_minigan(tmp_path, preset):
    import onnx

    gan, G, D = _conditional(preset, "float32")
    for name, net, w in (("g", G, (gan.latent_dim,)), ("d", D, gan.data_shape)):
        path = to_onnx(net, tmp_path / f"{name}.onnx", w)
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        labels_info = model.graph.input[1]
        assert labels_info.name == "labels"
        assert labels_info.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in labels_info.type.tensor_type.shape.dim] == ["N"]
        session = _ort(path)
        for n in (1, 7):
            x = _randn((n, *w), "float32", seed=n)
            labels = _labels(n, gan.num_classes, seed=n)
            (y,) = session.run(["output"], {"input": x, "labels": labels})
            np.testing.assert_allclose(y, net.forward(x, labels), rtol=0, atol=TOL["float32"])


def _cgan_checkpoint(path: Path) -> Path:
    """A checkpoint of an untrained tiny cgan, shaped like train_mnist's."""
    from minigan.checkpoint import save_checkpoint

    gan = build_gan("cgan", device="cpu", seed=1, **TINY)
    state = {f"gan.{k}": v for k, v in gan.state_dict().items()}
    config = {"kind": "minigan.train_mnist", "preset": "cgan", "seed": 1}
    config["overrides"] = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}
    return save_checkpoint(path, state, config)


@needs_onnx
@pytest.mark.parametrize("net", ["generator", "discriminator"])
def test_cli_export_conditional_onnx_has_the_labels_input(capsys, tmp_path, net):
    from minigan.checkpoint import gan_from_checkpoint

    ck = _cgan_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / f"{net}.onnx"
    argv = ["export", "--checkpoint", str(ck), "--format", "onnx", "--out", str(out)]
    code, _, err = run_main(capsys, *argv, "--net", net)
    assert code == 0, err
    gan = gan_from_checkpoint(ck)[0]
    module = getattr(gan, net).eval()
    session = _ort(out)
    assert [i.name for i in session.get_inputs()] == ["input", "labels"]
    width = module.net[0].in_features - gan.num_classes
    for n in (1, 4):
        x = _randn((n, width), "float32", seed=n)
        labels = _labels(n, gan.num_classes, seed=n)
        (y,) = session.run(None, {"input": x, "labels": labels})
        np.testing.assert_allclose(y, module.forward(x, labels), rtol=0, atol=1e-5)


@needs_torch
@pytest.mark.slow
def test_cli_export_conditional_torch_takes_labels(capsys, tmp_path):
    import torch

    from minigan.checkpoint import gan_from_checkpoint

    ck = _cgan_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / "g.pt2"
    argv = ["export", "--checkpoint", str(ck), "--format", "torch", "--out", str(out)]
    code, _, err = run_main(capsys, *argv)
    assert code == 0, err
    program = torch.export.load(str(out)).module()
    gan = gan_from_checkpoint(ck)[0]
    for n in (1, 5):
        z = _randn((n, gan.latent_dim), "float32", seed=n)
        labels = _labels(n, gan.num_classes, seed=n)
        with torch.no_grad():
            y = program(torch.from_numpy(z), torch.from_numpy(labels)).numpy()
        expected = gan.generator.eval().forward(z, labels)
        np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# minigan export
# ----------------------------------------------------------------------------------------------
@needs_onnx
@pytest.mark.parametrize("net", ["generator", "discriminator"])
def test_cli_export_onnx(capsys, tmp_path, net):
    from minigan.checkpoint import gan_from_checkpoint

    ck = tiny_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / f"{net}.onnx"
    argv = ["export", "--checkpoint", str(ck), "--format", "onnx", "--out", str(out)]
    code, stdout, err = run_main(capsys, *argv, *(["--net", net] if net != "generator" else []))
    assert code == 0, err
    assert f"wrote the {net} as onnx to {out}" in stdout
    module = getattr(gan_from_checkpoint(ck)[0], net).eval()
    width = module[0].in_features
    for n in (1, 4):
        x = _randn((n, width), "float32", seed=n)
        (y,) = _ort(out).run(None, {"input": x})
        np.testing.assert_allclose(y, module.forward(x), rtol=0, atol=1e-5)


@needs_torch
@pytest.mark.slow
def test_cli_export_torch_loads_without_minigan(capsys, tmp_path):
    import torch

    from minigan.checkpoint import gan_from_checkpoint

    ck = tiny_checkpoint(tmp_path / "ck.npz")
    out = tmp_path / "g.pt2"
    code, _, err = run_main(
        capsys, "export", "--checkpoint", str(ck), "--format", "torch", "--out", str(out)
    )
    assert code == 0, err
    program = torch.export.load(str(out)).module()  # torch only: no minigan class inside
    G = gan_from_checkpoint(ck)[0].generator.eval()
    for n in (1, 5):
        z = _randn((n, 4), "float32", seed=n)
        with torch.no_grad():
            y = program(torch.from_numpy(z)).numpy()
        np.testing.assert_allclose(y, G.forward(z), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("not a checkpoint"), "cannot be read"),
        (lambda p: np.savez(p, w=np.zeros(3)), "not a minigan checkpoint"),
    ],
    ids=["missing", "text", "foreign-npz"],
)
def test_cli_export_bad_checkpoint(capsys, tmp_path, make, message):
    ck = tmp_path / "ck.npz"
    make(ck)
    argv = ["export", "--checkpoint", str(ck), "--format", "onnx", "--out", str(tmp_path / "g")]
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and message in err and str(ck) in err
    assert len(err.strip().splitlines()) == 1


def test_cli_export_missing_folder_before_the_checkpoint(capsys, tmp_path):
    out = tmp_path / "nowhere" / "g.onnx"
    argv = ["export", "--checkpoint", str(tmp_path / "absent.npz"), "--format", "onnx"]
    code, _, err = run_main(capsys, *argv, "--out", str(out))
    assert code == 2 and "does not exist" in err and "nowhere" in err and "absent" not in err


@pytest.mark.parametrize(
    "fmt, package, hint",
    [("onnx", "onnx", 'pip install "minigan[export]"'), ("torch", "torch", "pip install torch")],
)
def test_cli_export_missing_package(capsys, tmp_path, monkeypatch, fmt, package, hint):
    monkeypatch.setitem(sys.modules, package, None)
    ck = tiny_checkpoint(tmp_path / "ck.npz")
    argv = ["export", "--checkpoint", str(ck), "--format", fmt, "--out", str(tmp_path / "g")]
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and hint in err and len(err.strip().splitlines()) == 1


def _doc_block(marker: str) -> str:
    """The python block of docs/export.md that writes ``marker``."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "export.md").read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    return block


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt, out, marker",
    [
        pytest.param("onnx", "generator.onnx", "grid_onnx.png", marks=needs_onnx),
        pytest.param("torch", "generator.pt2", "grid_torch.png", marks=needs_torch),
    ],
)
def test_docs_grid_recipes_run(capsys, tmp_path, fmt, out, marker):
    ck = tiny_checkpoint(tmp_path / "ck.npz")
    argv = ["export", "--checkpoint", str(ck), "--format", fmt, "--out", str(tmp_path / out)]
    assert run_main(capsys, *argv)[0] == 0
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-c", _doc_block(marker)], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()
    with Image.open(tmp_path / marker) as grid:
        assert grid.size == (8 * 28, 8 * 28)


@needs_torch
@needs_onnx
def test_modules_on_any_backend_export_from_the_host_copy(tmp_path, backend):
    import torch

    G = mlp_generator(4, (8,), 6, dtype="float64", device=backend, rng=0).eval()
    z = _randn((3, 4), "float64")
    expected = host(G.forward(backend.asarray(z, "float64")))
    with torch.no_grad():
        np.testing.assert_allclose(to_torch(G)(torch.from_numpy(z)).numpy(), expected, atol=1e-10)
    (y,) = _ort(to_onnx(G, tmp_path / "g.onnx", (4,))).run(None, {"input": z})
    np.testing.assert_allclose(y, expected, atol=1e-10)
