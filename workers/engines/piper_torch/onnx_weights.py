"""Read a Piper voice's weights and layer settings straight from its ``.onnx`` file.

The exported graph keeps most parameters under their training names
(``enc_p.*``, ``dp.*``, ``flow.*``, ``dec.*``), but the exporter renamed or
folded a few: the text embedding is stored as ``sid``, the flow's WaveNet
convolutions (weight norm already applied) are anonymous ``onnx::Conv_*``
tensors named only by the node that consumes them, and the duration
predictor's first affine flow keeps ``exp(-logs)`` (or ``-logs`` under an
``Exp`` node) instead of ``logs``. This module undoes those renames so the
PyTorch modules can be built by name, and keeps every convolution's attributes (padding, dilation, stride, groups) and
the scalar constants the port needs, so nothing about one voice is
hard-coded. onnxruntime is never involved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.errors import BadInputError

#: Initializers the exporter stored under a name that is not the parameter's.
_RENAMED = {
    "sid": "enc_p.emb.weight",
    "/dp/flows.0/Exp_output_0": "dp.flows.0.exp_neg_logs",
}
_NODE_SCOPE = re.compile(r"^/(?P<scope>.+)/(?P<op>[A-Za-z]+)(?:_\d+)?$")


@dataclass(frozen=True)
class ConvAttributes:
    """How one Conv/ConvTranspose node was exported: symmetric padding, dilation, stride, groups."""

    padding: int
    dilation: int
    stride: int
    groups: int


@dataclass
class VoiceWeights:
    """Every tensor of a voice by parameter name, plus what the graph says about each layer."""

    tensors: dict[str, torch.Tensor]
    convs: dict[str, ConvAttributes]
    """Keyed by the module path, e.g. ``dec.ups.0`` or ``flow.flows.0.enc.in_layers.1``."""
    leaky_slopes: dict[str, float] = field(default_factory=dict)
    """LeakyRelu slope by the node's scope and name, e.g. ``dec/LeakyRelu_3``."""
    scalars: dict[str, float] = field(default_factory=dict)
    """Scalar constants read from the graph: ``layer_norm_eps``, ``spline_tail_bound``."""
    scope_ops: dict[str, set[str]] = field(default_factory=dict)
    """Operator types used directly inside each module, e.g. ``enc_p.encoder.ffn_layers.0`` -> {Relu, Pad, ...}."""

    def get(self, name: str) -> torch.Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise BadInputError(f"the voice file has no parameter {name!r}; is it a Piper VITS voice?") from None

    def has(self, name: str) -> bool:
        return name in self.tensors

    def conv(self, module: str) -> ConvAttributes:
        try:
            return self.convs[module]
        except KeyError:
            raise BadInputError(f"the voice graph has no convolution {module!r}; is it a Piper VITS voice?") from None

    def indices(self, prefix: str) -> list[int]:
        """The sorted child numbers under ``prefix`` (the flows keep only every other index)."""
        pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
        return sorted({int(m.group(1)) for name in self.tensors if (m := pattern.match(name))})


def load_voice_weights(model_path: Path) -> VoiceWeights:
    """Parse the voice's ONNX graph with the ``onnx`` package and return its named weights."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... on a bad file
        raise BadInputError(f"cannot read the voice model {model_path.name}: {exc}") from exc
    graph = model.graph
    arrays: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            arrays.setdefault(node.output[0], numpy_helper.to_array(node.attribute[0].t))

    tensors: dict[str, torch.Tensor] = {}
    convs: dict[str, ConvAttributes] = {}
    slopes: dict[str, float] = {}
    scope_ops: dict[str, set[str]] = {}
    for node in graph.node:
        scope_ops.setdefault(node.name.strip("/").rpartition("/")[0].replace("/", "."), set()).add(node.op_type)
        if node.op_type in ("Conv", "ConvTranspose"):
            module = _module_path(node.name)
            convs[module] = _conv_attributes(node)
            weight = node.input[1]
            if weight.startswith("onnx::") and weight in arrays:
                # Weight-normed convolutions were folded into anonymous tensors.
                tensors[f"{module}.weight"] = _tensor(arrays[weight])
        elif node.op_type == "LeakyRelu":
            slopes[node.name.strip("/")] = float(onnx.helper.get_attribute_value(node.attribute[0]))
        elif node.name == "/dp/flows.0/Exp" and node.input[0] in arrays:
            # Some exports keep exp(-logs) as an Exp node over the folded -logs instead of its result.
            tensors["dp.flows.0.exp_neg_logs"] = torch.exp(_tensor(arrays[node.input[0]]))
    for init in graph.initializer:
        name = _RENAMED.get(init.name, init.name)
        if init.name in _RENAMED or (not init.name.startswith(("/", "onnx::")) and "." in init.name):
            tensors[name] = _tensor(arrays[init.name])

    scalars = {
        "layer_norm_eps": _scope_operand(graph, arrays, "enc_p/encoder/norm_layers_1.0", "Add", "scalar"),
        "spline_tail_bound": _scope_operand(graph, arrays, _first_conv_flow_scope(tensors), "LessOrEqual", "scalar"),
    }
    if not any(name.startswith("enc_p.") for name in tensors) or "enc_p.emb.weight" not in tensors:
        raise BadInputError(f"{model_path.name} does not look like a Piper VITS voice (no text encoder weights)")
    return VoiceWeights(tensors=tensors, convs=convs, leaky_slopes=slopes, scalars=scalars, scope_ops=scope_ops)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32, copy=True))


def _module_path(node_name: str) -> str:
    """``/flow/flows.0/enc/in_layers.1/Conv`` -> ``flow.flows.0.enc.in_layers.1``."""
    match = _NODE_SCOPE.match(node_name)
    if match is None:
        raise BadInputError(f"unexpected node name {node_name!r} in the voice graph")
    return match.group("scope").replace("/", ".")


def _conv_attributes(node: object) -> ConvAttributes:
    import onnx

    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}  # type: ignore[attr-defined]
    pads = list(attributes.get("pads", [0, 0]))
    if len(pads) != 2 or pads[0] != pads[1]:
        raise BadInputError(f"convolution {node.name} has asymmetric padding {pads}")  # type: ignore[attr-defined]
    return ConvAttributes(
        padding=int(pads[0]),
        dilation=int(attributes.get("dilations", [1])[0]),
        stride=int(attributes.get("strides", [1])[0]),
        groups=int(attributes.get("group", 1)),
    )


def _first_conv_flow_scope(tensors: dict[str, torch.Tensor]) -> str:
    indices = sorted({int(m.group(1)) for name in tensors if (m := re.match(r"dp\.flows\.(\d+)\.proj\.", name))})
    if not indices:
        raise BadInputError("the voice has no stochastic duration predictor flows (dp.flows.*.proj)")
    return f"dp/flows.{indices[0]}"


def _scope_operand(graph: object, arrays: dict[str, np.ndarray], scope: str, op_type: str, kind: str) -> float:
    """The scalar constant operand of the first ``op_type`` node inside ``scope``."""
    for node in graph.node:  # type: ignore[attr-defined]
        if node.op_type != op_type or not node.name.startswith(f"/{scope}/"):
            continue
        for name in node.input:
            value = arrays.get(name)
            if value is not None and value.size == 1:
                return float(value.reshape(()))
    raise BadInputError(f"the voice graph has no {kind} {op_type} operand in /{scope}/")
