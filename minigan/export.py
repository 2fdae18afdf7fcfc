"""Export: a minigan module as a ``torch.nn`` module or an ONNX graph, and checkpoints to files.

A student who trained a generator by hand can take it where models live: PyTorch, or any
runtime that reads ONNX (onnxruntime in Python, C++ or a browser).

* :func:`to_torch` builds the equivalent ``torch.nn`` module and copies the weights and
  buffers through ``state_dict()`` (minigan's keys are PyTorch's);
* :func:`to_onnx` writes an ONNX graph built with the ``onnx`` package's helpers, with a
  dynamic batch dimension, checked with ``onnx.checker``;
* :func:`export_checkpoint` does either for the generator (or discriminator) of a training
  checkpoint; it is what ``minigan export`` runs.

Both conversions are registries from a minigan layer type to one small converter function
(:data:`TORCH_CONVERTERS`, :data:`ONNX_CONVERTERS`); a new layer is one decorated function
for each (:func:`torch_converter`, :func:`onnx_converter`). A module holding a layer without a
converter is refused before any work, with the layer's type and dotted path.

torch, onnx and onnxruntime stay optional: they are imported inside the functions, and a
missing one gives an ``ImportError`` that says what to install (``pip install
"minigan[export]"`` for onnx and onnxruntime, ``pip install torch`` for PyTorch).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .layers import (
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    Unflatten,
)
from .models import LabelConcat

__all__ = [
    "ONNX_OPSET",
    "TORCH_CONVERTERS",
    "ONNX_CONVERTERS",
    "EXPORT_FORMATS",
    "NETS",
    "torch_converter",
    "onnx_converter",
    "to_torch",
    "to_onnx",
    "OnnxGraph",
    "export_checkpoint",
]

#: The ONNX operator set of the graphs :func:`to_onnx` writes (onnxruntime >= 1.14 runs it).
ONNX_OPSET = 17

#: minigan layer type -> ``converter(module, nn, children) -> torch.nn.Module``.
TORCH_CONVERTERS: dict[type, Callable[..., Any]] = {}

#: minigan layer type -> ``converter(module, graph, x, prefix) -> name of the output value``.
ONNX_CONVERTERS: dict[type, Callable[..., str]] = {}

INSTALL_HINT = {
    "torch": "pip install torch",
    "onnx": 'pip install "minigan[export]"',
    "onnxruntime": 'pip install "minigan[export]"',
}


def torch_converter(layer_type: type):
    """Register ``converter(module, nn, children) -> torch.nn.Module`` for ``layer_type``.

    ``nn`` is ``torch.nn``; ``children`` maps each child's name (as in ``module.children()``)
    to its already converted ``torch.nn`` module. The converter only builds the module:
    weights, buffers, dtype and train/eval mode are copied by :func:`to_torch`.
    """

    def register(fn):
        TORCH_CONVERTERS[layer_type] = fn
        return fn

    return register


def onnx_converter(layer_type: type):
    """Register ``converter(module, graph, x, prefix) -> str`` for ``layer_type``.

    The converter adds the nodes computing the layer on the value named ``x`` to ``graph``
    (an :class:`OnnxGraph`) and returns the name of the result. ``prefix`` is the layer's
    dotted path plus ``"."`` (``""`` for the root): initializers are named ``prefix + key``
    with the layer's ``state_dict()`` keys, the names PyTorch's ONNX export uses too.
    """

    def register(fn):
        ONNX_CONVERTERS[layer_type] = fn
        return fn

    return register


# ----------------------------------------------------------------------------------------------
# shared checks
# ----------------------------------------------------------------------------------------------
def _require(name: str, purpose: str):
    """Import an optional package, or raise an ImportError saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"{purpose} needs the optional package {name!r}, which is not installed: "
            f"{INSTALL_HINT[name]}"
        ) from e


def _named_modules(module: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """``(dotted path, module)`` for the module and every descendant, depth first."""
    yield prefix, module
    for name, child in module.children().items():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


def _check_convertible(module: Module, registry: dict[type, Any], target: str) -> None:
    """Refuse a module tree holding a layer with no converter, naming its type and path."""
    if not isinstance(module, Module):
        raise TypeError(f"export: expected a minigan Module, got {type(module).__name__}")
    for path, m in _named_modules(module):
        if type(m) not in registry:
            known = sorted(t.__name__ for t in registry)
            raise TypeError(
                f"export to {target}: layer {path or '<root>'!r} ({type(m).__name__}) has no "
                f"converter; supported layers: {', '.join(known)}"
            )


def _check_out_folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output {path}: the folder {path.parent} does not exist")
    return path


def _float_dtype(module: Module) -> np.dtype | None:
    """The float dtype of the module's arrays (None for a module without any)."""
    for value in module.state_dict().values():
        dtype = to_numpy(value).dtype
        if dtype.kind == "f":
            return dtype
    return None


# ----------------------------------------------------------------------------------------------
# PyTorch
# ----------------------------------------------------------------------------------------------
def to_torch(module: Module):
    """The equivalent ``torch.nn`` module, with minigan's weights, buffers, dtype and mode.

    Parameters
    ----------
    module : Module
        A minigan layer or network of layers that have a converter (:data:`TORCH_CONVERTERS`:
        Linear, Conv2d, ConvTranspose2d, BatchNorm1d, BatchNorm2d, Dropout, Flatten,
        Unflatten, ReLU, LeakyReLU, Tanh, Sigmoid, Sequential, and the conditional wrapper
        LabelConcat, whose twin takes ``forward(x, labels)``).

    Shapes
    ------
    The same as ``module``'s: ``to_torch(m)(torch.from_numpy(x))`` equals ``m.forward(x)``.

    Returns
    -------
    torch.nn.Module
        On the CPU (``.to("cuda")`` moves it), float32 or float64 as ``module``, each
        sub-module in train or eval mode as its source; a copy (later training of either
        does not change the other).

    Raises
    ------
    TypeError
        ``module`` is not a minigan Module, or holds a layer without a converter (its type
        and dotted path are named).
    ImportError
        PyTorch is not installed (the message says ``pip install torch``).

    Notes
    -----
    Weights and buffers move through ``state_dict()`` with
    ``torch.nn.Module.load_state_dict(strict=True)``: minigan's keys are PyTorch's, so a
    converter that built the wrong module fails there instead of computing something else.
    BatchNorm's ``running_mean``, ``running_var`` and ``num_batches_tracked`` travel too, so
    a module in training mode goes on updating them as minigan would (``momentum=None`` too).
    Dropout in training mode draws its masks from torch's RNG, not minigan's.
    """
    _check_convertible(module, TORCH_CONVERTERS, "PyTorch")
    torch = _require("torch", "minigan.export.to_torch")
    net = _torch_tree(module, torch.nn)
    dtype = _float_dtype(module)
    if dtype is not None:
        net.to(getattr(torch, dtype.name))
    state = {k: torch.from_numpy(np.array(to_numpy(v))) for k, v in module.state_dict().items()}
    net.load_state_dict(state, strict=True)
    return net


def _torch_tree(module: Module, nn):
    children = {name: _torch_tree(child, nn) for name, child in module.children().items()}
    net = TORCH_CONVERTERS[type(module)](module, nn, children)
    net.training = module.training  # this module only: each child already has its own mode
    return net


@torch_converter(Linear)
def _linear_to_torch(m: Linear, nn, children):
    return nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)


@torch_converter(ReLU)
def _relu_to_torch(m: ReLU, nn, children):
    return nn.ReLU()


@torch_converter(LeakyReLU)
def _leaky_relu_to_torch(m: LeakyReLU, nn, children):
    return nn.LeakyReLU(m.negative_slope)


@torch_converter(Tanh)
def _tanh_to_torch(m: Tanh, nn, children):
    return nn.Tanh()


@torch_converter(Sigmoid)
def _sigmoid_to_torch(m: Sigmoid, nn, children):
    return nn.Sigmoid()


@torch_converter(Sequential)
def _sequential_to_torch(m: Sequential, nn, children):
    return nn.Sequential(*children.values())  # children in order "0", "1", ...


@torch_converter(Conv2d)
def _conv2d_to_torch(m: Conv2d, nn, children):
    return nn.Conv2d(
        m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=m.bias is not None
    )


@torch_converter(ConvTranspose2d)
def _conv_transpose2d_to_torch(m: ConvTranspose2d, nn, children):
    return nn.ConvTranspose2d(
        m.in_channels,
        m.out_channels,
        m.kernel_size,
        m.stride,
        m.padding,
        m.output_padding,
        bias=m.bias is not None,
    )


@torch_converter(BatchNorm1d)
@torch_converter(BatchNorm2d)
def _batch_norm_to_torch(m: BatchNorm1d | BatchNorm2d, nn, children):
    # Same class name in torch.nn. running_mean, running_var and num_batches_tracked come
    # through state_dict, so a training-mode copy goes on updating them as minigan would
    # (momentum=None, the cumulative average, divides by num_batches_tracked).
    return getattr(nn, type(m).__name__)(
        m.num_features,
        eps=m.eps,
        momentum=m.momentum,
        affine=m.affine,
        track_running_stats=m.track_running_stats,
    )


@torch_converter(Dropout)
def _dropout_to_torch(m: Dropout, nn, children):
    return nn.Dropout(m.p)  # in training mode torch draws its own masks from its own RNG


@torch_converter(Flatten)
def _flatten_to_torch(m: Flatten, nn, children):
    return nn.Flatten(m.start_dim, m.end_dim)


@torch_converter(Unflatten)
def _unflatten_to_torch(m: Unflatten, nn, children):
    return nn.Unflatten(m.dim, m.unflattened_size)


@torch_converter(LabelConcat)
def _label_concat_to_torch(m: LabelConcat, nn, children):
    from ._torch_modules import LabelConcat as TorchLabelConcat  # imports torch

    return TorchLabelConcat(children["net"], m.num_classes, m.label_maps)  # forward(x, labels)


# ----------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------
class OnnxGraph:
    """The nodes and initializers of an ONNX graph being built (what converters add to).

    Parameters
    ----------
    onnx : module
        The imported ``onnx`` package.
    dtype : numpy.dtype
        The float dtype of the graph (the module's).

    Attributes
    ----------
    nodes : list of onnx.NodeProto
    initializers : list of onnx.TensorProto
    extra_inputs : list of onnx.ValueInfoProto
        Graph inputs after ``"input"`` that converters add (``"labels"`` of a LabelConcat).
    """

    def __init__(self, onnx, dtype):
        self.onnx = onnx
        self.dtype = np.dtype(dtype)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.extra_inputs: list[Any] = []

    def extra_input(self, name: str, elem_type: int, shape: list) -> str:
        """Add the graph input ``name`` (once, however many layers read it); returns ``name``."""
        if all(v.name != name for v in self.extra_inputs):
            info = self.onnx.helper.make_tensor_value_info(name, elem_type, shape)
            self.extra_inputs.append(info)
        return name

    def initializer(self, name: str, array) -> str:
        """Add a constant (a weight) named ``name``, copied to the host; returns ``name``."""
        self.initializers.append(self.onnx.numpy_helper.from_array(to_numpy(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], prefix: str, **attributes) -> str:
        """Add one ``op_type`` node on ``inputs``; returns the name of its output."""
        name = f"/{prefix}{op_type}_{len(self.nodes)}"
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, [name], name=name, **attributes)
        )
        return name

    def module(self, module: Module, x: str, prefix: str) -> str:
        """Add the nodes of ``module`` (through its converter) on ``x``; returns the output."""
        return ONNX_CONVERTERS[type(module)](module, self, x, prefix)


def to_onnx(module: Module, path: str | os.PathLike, input_shape: tuple[int, ...]) -> Path:
    """Write ``module`` as an ONNX model to ``path``: input ``"input"``, output ``"output"``.

    Parameters
    ----------
    module : Module
        Layers with a converter (:data:`ONNX_CONVERTERS`): Linear as ``Gemm``, Conv2d as
        ``Conv``, ConvTranspose2d as ``ConvTranspose``, BatchNorm1d/2d as
        ``BatchNormalization`` (inference), Dropout as no node, Flatten as ``Flatten`` (the
        default dims) or ``Reshape``, Unflatten as ``Reshape``, ReLU, LeakyReLU, Tanh,
        Sigmoid, Sequential, and LabelConcat (a second graph input ``"labels"``, see Shapes).
    path : path
        The ``.onnx`` file to write; its folder must exist.
    input_shape : tuple of int
        The shape of **one** input, without the batch dimension: ``(latent_dim,)`` for a
        generator, ``(784,)`` for an MLP discriminator, ``(C, H, W)`` for a DCGAN one.

    Shapes
    ------
    input (N, *input_shape) -> output (N, ...): N is the dynamic dimension ``"N"``, any
    batch size runs. A conditional module (LabelConcat) also takes ``"labels"`` (N,) int64
    in ``0..K-1`` (``OneHot`` in the float dtype, then ``Concat`` with the input on axis 1);
    ``input_shape`` describes ``"input"`` only.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist (checked first, before any work).
    TypeError
        ``module`` is not a minigan Module or holds a layer without a converter (its type and
        dotted path are named).
    ValueError
        ``input_shape`` is not a tuple of positive ints, or does not fit the module (the
        shapes ONNX shape inference could not unify are named); a BatchNorm with
        ``track_running_stats=False`` (it has no inference form).
    ImportError
        ``onnx`` is not installed (the message says ``pip install "minigan[export]"``).

    Notes
    -----
    Opset :data:`ONNX_OPSET`, the IR version it needs, and the module's float dtype. The graph
    is checked with ``onnx.checker.check_model(full_check=True)`` after strict shape inference.
    ONNX graphs here compute inference: for layers whose output depends on the mode (Dropout,
    BatchNorm) the graph computes the module's ``eval()`` output, whatever mode the module is
    in (a training-mode BatchNorm is written with its running statistics, a training-mode
    Dropout as the identity). Reshapes keep the batch dimension dynamic (``Shape`` of the
    input, then ``Concat`` with the fixed sizes). onnxruntime's CPU provider has no float64
    ``Conv``/``ConvTranspose`` kernels: a float64 conv graph is valid ONNX, but export
    float32 to run it there. LeakyReLU is ``LeakyRelu``
    in float32 and ``PRelu`` with a float64 slope tensor in float64 (``LeakyRelu``'s ``alpha``
    is a float32 attribute).
    """
    path = _check_out_folder(path)
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(d, int) and d > 0 for d in input_shape):
        raise ValueError(
            f"input_shape: expected the positive sizes of one input without the batch "
            f"dimension, e.g. (100,), got {input_shape!r}"
        )
    _check_convertible(module, ONNX_CONVERTERS, "ONNX")
    onnx = _require("onnx", "minigan.export.to_onnx")
    graph = OnnxGraph(onnx, _float_dtype(module) or np.float32)
    out = graph.module(module, "input", "")
    model = _onnx_model(onnx, graph, out, input_shape)
    onnx.save(model, path)
    return path


def _onnx_model(onnx, graph: OnnxGraph, out: str, input_shape):
    """Wrap the nodes in a checked model with a dynamic batch dimension ``"N"``."""
    helper = onnx.helper
    if graph.nodes and graph.nodes[-1].output[0] == out:
        graph.nodes[-1].output[0] = "output"  # the last node writes the graph's output
    else:  # no node (a lone Dropout, an empty Sequential) or the output made earlier
        graph.nodes.append(helper.make_node("Identity", [out], ["output"], name="/Identity"))
    elem = helper.np_dtype_to_tensor_dtype(graph.dtype)
    proto = helper.make_graph(
        graph.nodes,
        "minigan",
        [helper.make_tensor_value_info("input", elem, ["N", *input_shape]), *graph.extra_inputs],
        [helper.make_tensor_value_info("output", elem, None)],  # shape: from inference
        graph.initializers,
    )
    opset = [helper.make_opsetid("", ONNX_OPSET)]
    model = helper.make_model(
        proto,
        opset_imports=opset,
        ir_version=helper.find_min_ir_version_for(opset),
        producer_name="minigan",
    )
    try:
        model = onnx.shape_inference.infer_shapes(
            model,
            check_type=True,
            strict_mode=True,
            data_prop=True,  # Reshape's Shape math
        )
    except onnx.shape_inference.InferenceError as e:
        errors = " ".join(str(e).split()).split(" (op_type:")  # one per node; the first counts
        first = f"(op_type:{errors[1]}" if len(errors) > 1 else errors[0]
        raise ValueError(
            f"input_shape {tuple(input_shape)} does not fit the module (one input's shape, "
            f"without the batch dimension): {first}"
        ) from e
    onnx.checker.check_model(model, full_check=True)
    return model


@onnx_converter(Linear)
def _linear_to_onnx(m: Linear, graph: OnnxGraph, x: str, prefix: str) -> str:
    inputs = [x, graph.initializer(prefix + "weight", m.weight)]  # weight (out, in)
    if m.bias is not None:
        inputs.append(graph.initializer(prefix + "bias", m.bias))
    return graph.node("Gemm", inputs, prefix, transB=1)  # x @ weight.T + bias


@onnx_converter(ReLU)
def _relu_to_onnx(m: ReLU, graph: OnnxGraph, x: str, prefix: str) -> str:
    return graph.node("Relu", [x], prefix)


@onnx_converter(LeakyReLU)
def _leaky_relu_to_onnx(m: LeakyReLU, graph: OnnxGraph, x: str, prefix: str) -> str:
    if graph.dtype == np.float64:
        # LeakyRelu's alpha is a float32 attribute (0.2 -> 0.200000003); PRelu with a float64
        # slope tensor computes the same function with minigan's float64 slope.
        slope = graph.initializer(prefix + "negative_slope", np.asarray(m.negative_slope))
        return graph.node("PRelu", [x, slope], prefix)
    return graph.node("LeakyRelu", [x], prefix, alpha=m.negative_slope)


@onnx_converter(Tanh)
def _tanh_to_onnx(m: Tanh, graph: OnnxGraph, x: str, prefix: str) -> str:
    return graph.node("Tanh", [x], prefix)


@onnx_converter(Sigmoid)
def _sigmoid_to_onnx(m: Sigmoid, graph: OnnxGraph, x: str, prefix: str) -> str:
    return graph.node("Sigmoid", [x], prefix)


@onnx_converter(Sequential)
def _sequential_to_onnx(m: Sequential, graph: OnnxGraph, x: str, prefix: str) -> str:
    for name, child in m.children().items():
        x = graph.module(child, x, f"{prefix}{name}.")
    return x


def _conv_attributes(m: Conv2d | ConvTranspose2d) -> dict[str, list[int]]:
    """ONNX's kernel_shape, strides and pads (``[top, left, bottom, right]``) of a conv layer."""
    return dict(kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=list(m.padding) * 2)


def _weight_and_bias(m: Conv2d | ConvTranspose2d, graph: OnnxGraph, x: str, prefix: str):
    inputs = [x, graph.initializer(prefix + "weight", m.weight)]
    if m.bias is not None:
        inputs.append(graph.initializer(prefix + "bias", m.bias))
    return inputs


@onnx_converter(Conv2d)
def _conv2d_to_onnx(m: Conv2d, graph: OnnxGraph, x: str, prefix: str) -> str:
    # weight (out, in, kH, kW): ONNX's layout (M, C, kH, kW) too
    return graph.node("Conv", _weight_and_bias(m, graph, x, prefix), prefix, **_conv_attributes(m))


@onnx_converter(ConvTranspose2d)
def _conv_transpose2d_to_onnx(m: ConvTranspose2d, graph: OnnxGraph, x: str, prefix: str) -> str:
    # weight (in, out, kH, kW): ONNX's layout (C, M, kH, kW) too. Without an output_shape
    # attribute ONNX's H_out is PyTorch's: (H - 1) stride - 2 padding + kH + output_padding.
    inputs = _weight_and_bias(m, graph, x, prefix)
    attributes = _conv_attributes(m)
    return graph.node(
        "ConvTranspose", inputs, prefix, output_padding=list(m.output_padding), **attributes
    )


@onnx_converter(BatchNorm1d)
@onnx_converter(BatchNorm2d)
def _batch_norm_to_onnx(m: BatchNorm1d | BatchNorm2d, graph: OnnxGraph, x: str, prefix: str):
    # Inference form whatever the module's mode: the running statistics (see to_onnx's Notes).
    if not m.track_running_stats:
        raise ValueError(
            f"export to ONNX: layer {prefix[:-1] or '<root>'!r} ({type(m).__name__}) has "
            f"track_running_stats=False, so it normalises with each batch's own statistics; "
            f"ONNX's inference BatchNormalization needs running statistics"
        )
    if m.affine:
        affine = [m.weight, m.bias]
        names = ["weight", "bias"]
    else:  # ONNX needs a scale and a shift: 1 and 0
        affine = [np.ones(m.num_features, graph.dtype), np.zeros(m.num_features, graph.dtype)]
        names = ["ones", "zeros"]
    inputs = [x] + [graph.initializer(prefix + k, v) for k, v in zip(names, affine, strict=True)]
    for key in ("running_mean", "running_var"):
        inputs.append(graph.initializer(prefix + key, m.buffers[key]))
    # epsilon is a float32 attribute: in float64 that moves var + eps by ~3e-13 at most.
    return graph.node("BatchNormalization", inputs, prefix, epsilon=m.eps)


@onnx_converter(Dropout)
def _dropout_to_onnx(m: Dropout, graph: OnnxGraph, x: str, prefix: str) -> str:
    return x  # the identity in evaluation (inference) form: no node


def _shape_around(graph: OnnxGraph, x: str, prefix: str, first: int, last: int, middle: str):
    """``Reshape(x, shape(x)[:first] ++ middle ++ shape(x)[last + 1:])``, batch kept dynamic."""
    parts = [graph.node("Shape", [x], prefix, end=first)] if first != 0 else []
    parts.append(middle)
    if last != -1:
        parts.append(graph.node("Shape", [x], prefix, start=last + 1))
    shape = graph.node("Concat", parts, prefix, axis=0) if len(parts) > 1 else middle
    return graph.node("Reshape", [x, shape], prefix)


@onnx_converter(Flatten)
def _flatten_to_onnx(m: Flatten, graph: OnnxGraph, x: str, prefix: str) -> str:
    if (m.start_dim, m.end_dim) == (1, -1):  # the default: ONNX's Flatten, shapes inferred
        return graph.node("Flatten", [x], prefix, axis=1)
    minus_one = graph.initializer(prefix + "flat_size", np.asarray([-1], np.int64))
    return _shape_around(graph, x, prefix, m.start_dim, m.end_dim, minus_one)


@onnx_converter(Unflatten)
def _unflatten_to_onnx(m: Unflatten, graph: OnnxGraph, x: str, prefix: str) -> str:
    sizes = np.asarray(m.unflattened_size, np.int64)
    middle = graph.initializer(prefix + "unflattened_size", sizes)
    return _shape_around(graph, x, prefix, m.dim, m.dim, middle)


@onnx_converter(LabelConcat)
def _label_concat_to_onnx(m: LabelConcat, graph: OnnxGraph, x: str, prefix: str) -> str:
    # A second graph input "labels" (N,) int64; OneHot's values [off, on] in the float dtype
    # make the one-hot (N, K) in that dtype directly (no Cast), then Concat on the features.
    labels = graph.extra_input("labels", graph.onnx.TensorProto.INT64, ["N"])
    depth = graph.initializer(prefix + "num_classes", np.asarray([m.num_classes], np.int64))
    values = graph.initializer(prefix + "one_hot_values", np.asarray([0, 1], graph.dtype))
    y = graph.node("OneHot", [labels, depth, values], prefix, axis=-1)  # (N, K)
    if m.label_maps:  # (N, K, 1, 1) expanded to (N, K, H, W), H and W read from x's shape
        axes = graph.initializer(prefix + "map_axes", np.asarray([2, 3], np.int64))
        y = graph.node("Unsqueeze", [y, axes], prefix)
        n = graph.node("Shape", [x], prefix, start=0, end=1)
        hw = graph.node("Shape", [x], prefix, start=2)
        shape = graph.node("Concat", [n, depth, hw], prefix, axis=0)
        y = graph.node("Expand", [y, shape], prefix)
    joined = graph.node("Concat", [x, y], prefix, axis=1)
    return graph.module(m.net, joined, prefix + "net.")


# ----------------------------------------------------------------------------------------------
# checkpoints -> files (minigan export)
# ----------------------------------------------------------------------------------------------
def _save_torch(module: Module, path: Path, input_shape: tuple[int, ...]) -> None:
    """``torch.export`` program with a dynamic batch: ``torch.export.load(path).module()``.

    A conditional module (one with ``num_classes``) is traced as ``forward(x, labels)``.
    """
    torch = _require("torch", "minigan export --format torch")
    net = to_torch(module)
    dtype = getattr(torch, (_float_dtype(module) or np.dtype("float32")).name)
    example = (torch.zeros((2, *input_shape), dtype=dtype),)  # batch 2: 0 and 1 specialise
    if getattr(module, "num_classes", None) is not None:  # conditional: forward(x, labels)
        example += (torch.zeros(2, dtype=torch.int64),)
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    program = torch.export.export(net, example, dynamic_shapes=dynamic)
    torch.export.save(program, path)


def _save_onnx(module: Module, path: Path, input_shape: tuple[int, ...]) -> None:
    to_onnx(module, path, input_shape)


#: ``--format`` -> ``writer(module, path, input_shape)`` and the packages it needs.
EXPORT_FORMATS: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "torch": (_save_torch, ("torch",)),
    "onnx": (_save_onnx, ("onnx",)),
}

#: ``--net`` choices: the GAN attribute holding the network.
NETS = ("generator", "discriminator")


def _net_for_export(gan, net: str) -> Module:
    """The network to export: the EMA generator when the GAN keeps one (issue 11)."""
    ema = getattr(gan, "ema", None)
    return ema.module if net == "generator" and ema is not None else getattr(gan, net)


def _input_shape(gan, net: str) -> tuple[int, ...]:
    """One input's shape: the noise ``(latent_dim,)`` for G, one generated image for D."""
    if net == "generator":
        return (gan.latent_dim,)
    z = np.zeros((1, gan.latent_dim), dtype=_float_dtype(gan.generator) or np.float32)
    return tuple(gan.sample(1, z=z, labels=gan.balanced_labels(1)).shape[1:])


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    format: str = "onnx",
    net: str = "generator",
) -> Path:
    """Export the generator (or discriminator) of a training checkpoint to a file.

    Parameters
    ----------
    checkpoint : path
        A ``checkpoint.npz`` written by :func:`minigan.train.train_mnist`.
    out : path
        The file to write; its folder must exist.
    format : {"onnx", "torch"}
        ``"onnx"``: :func:`to_onnx` (input ``"input"`` of shape (N, latent_dim) for G, and
        ``"labels"`` (N,) int64 for a conditional one).
        ``"torch"``: a ``torch.export`` program (``.pt2``) of :func:`to_torch`'s module with a
        dynamic batch; ``torch.export.load(out).module()`` runs it without minigan.
    net : {"generator", "discriminator"}

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    FileNotFoundError
        The checkpoint, or the folder of ``out``, does not exist (both checked before work).
    ValueError
        Unknown ``format`` or ``net``; a file that is not a minigan checkpoint (from
        :func:`minigan.checkpoint.load_checkpoint`).
    ImportError
        The format's package is missing (the message says what to install).

    Notes
    -----
    The network is exported in eval mode, on the CPU, in the checkpoint's dtype.
    """
    out = _check_out_folder(out)
    if format not in EXPORT_FORMATS:
        raise ValueError(f"format: expected one of {sorted(EXPORT_FORMATS)}, got {format!r}")
    if net not in NETS:
        raise ValueError(f"net: expected one of {NETS}, got {net!r}")
    writer, packages = EXPORT_FORMATS[format]
    for name in packages:
        _require(name, f"minigan export --format {format}")
    from .checkpoint import gan_from_checkpoint

    gan = gan_from_checkpoint(checkpoint, device="cpu")[0]
    module = _net_for_export(gan, net).eval()
    writer(module, out, _input_shape(gan, net))
    return out
