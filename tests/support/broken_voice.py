"""A voice file that loads but fails on every synthesis: a corrupt model, as a real fault.

The graph has the inputs and outputs of a Piper voice (and the Ceil node
the worker taps for durations), so onnxruntime loads it and the worker's
warm-up (synthetic ids) passes; any real phoneme makes it index past the
end of a tensor, so every real call raises inside onnxruntime, like a card
that broke after start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from shared.voices import bundled_voice


def _graph() -> onnx.ModelProto:
    """Silence for the warm-up's synthetic ids (all <= 14); an out-of-range Gather for any real phoneme."""
    ids = helper.make_tensor_value_info("input", TensorProto.INT64, ["batch", "phonemes"])
    lengths = helper.make_tensor_value_info("input_lengths", TensorProto.INT64, ["batch"])
    scales = helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 1, 1, "samples"])
    constants = [
        helper.make_tensor("fourteen", TensorProto.INT64, [], [14]),
        helper.make_tensor("out_of_range", TensorProto.INT64, [1], [5]),
        helper.make_tensor("minus_one", TensorProto.INT64, [1], [-1]),
        helper.make_tensor("audio_shape", TensorProto.INT64, [4], [1, 1, 1, -1]),
        helper.make_tensor("nothing", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("one_zero", TensorProto.FLOAT, [1], [0.0]),
    ]
    nodes = [
        helper.make_node("Cast", ["input"], ["ids_float"], to=TensorProto.FLOAT),
        helper.make_node("Ceil", ["ids_float"], ["w_ceil"]),
        helper.make_node("Greater", ["input", "fourteen"], ["is_real"]),
        helper.make_node("Cast", ["is_real"], ["is_real_int"], to=TensorProto.INT64),
        helper.make_node("ReduceMax", ["is_real_int"], ["any_real"], keepdims=0),
        helper.make_node("Reshape", ["any_real", "minus_one"], ["any_real_1"]),
        helper.make_node("Mul", ["any_real_1", "out_of_range"], ["index"]),
        helper.make_node("Gather", ["one_zero", "index"], ["picked"]),
        helper.make_node("Mul", ["w_ceil", "nothing"], ["silent"]),
        helper.make_node("Reshape", ["silent", "audio_shape"], ["shaped"]),
        helper.make_node("Add", ["shaped", "picked"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "broken-voice", [ids, lengths, scales], [output], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    return model


def write_broken_voice(directory: Path, voice_id: str) -> Path:
    """<voice_id>.onnx that fails at inference, with the real voice's config beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(_graph(), directory / f"{voice_id}.onnx")
    shutil.copyfile(bundled_voice().config_path, directory / f"{voice_id}.onnx.json")
    return directory


def write_good_voice(directory: Path, voice_id: str) -> Path:
    """The real default voice under another id (a symlink to its weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    voice = bundled_voice()
    (directory / f"{voice_id}.onnx").symlink_to(voice.model_path)
    shutil.copyfile(voice.config_path, directory / f"{voice_id}.onnx.json")
    return directory


HANG_ID = 200
"""A phoneme id no text produces (the default voice's map ends at 150; its table has 256 rows)."""


def write_hanging_voice(directory: Path, voice_id: str) -> Path:
    """The real default voice, except that any call holding ``HANG_ID`` never returns: a card that hangs.

    The real graph is kept whole; beside it a Loop runs for 10^15 turns
    when the ids hold ``HANG_ID`` and for none otherwise, and the output
    waits for it. Every other call speaks as the default voice does.
    """
    directory.mkdir(parents=True, exist_ok=True)
    voice = bundled_voice()
    model = onnx.load(str(voice.model_path))
    graph = model.graph
    speech = graph.output[0].name
    for node in graph.node:  # the real graph now ends in "speech"; "output" waits for the loop too
        node.output[:] = [f"{speech}_speech" if name == speech else name for name in node.output]
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["spin_in"], ["spin_out"]),
        ],
        "spin",
        [
            helper.make_tensor_value_info("turn", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("spin_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("spin_out", TensorProto.FLOAT, []),
        ],
    )
    graph.initializer.extend(
        [
            helper.make_tensor("hang_id", TensorProto.INT64, [], [HANG_ID]),
            helper.make_tensor("forever", TensorProto.INT64, [], [10**15]),
            helper.make_tensor("always", TensorProto.BOOL, [], [True]),
            helper.make_tensor("spin_start", TensorProto.FLOAT, [], [0.0]),
            helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Equal", ["input", "hang_id"], ["is_hang"]),
            helper.make_node("Cast", ["is_hang"], ["is_hang_int"], to=TensorProto.INT64),
            helper.make_node("ReduceMax", ["is_hang_int"], ["any_hang"], keepdims=0),
            helper.make_node("Mul", ["any_hang", "forever"], ["turns"]),
            helper.make_node("Loop", ["turns", "always", "spin_start"], ["spun"], body=body),
            helper.make_node("Mul", ["spun", "zero"], ["nothing"]),
            helper.make_node("Add", [f"{speech}_speech", "nothing"], [speech]),
        ]
    )
    onnx.save(model, directory / f"{voice_id}.onnx")
    shutil.copyfile(voice.config_path, directory / f"{voice_id}.onnx.json")
    return directory
