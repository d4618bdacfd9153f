"""The port reads the voice's layout from the ONNX graph: renamed tensors, shapes and node attributes."""

from __future__ import annotations

import pytest

from shared.voices import VoiceFiles
from workers.engines.piper_torch import PiperTorchEngine
from workers.engines.piper_torch.onnx_weights import VoiceWeights, load_voice_weights


@pytest.fixture(scope="module")
def weights(voice: VoiceFiles) -> VoiceWeights:
    return load_voice_weights(voice.model_path)


def test_renamed_and_folded_tensors_get_their_parameter_names(weights: VoiceWeights) -> None:
    wavenet = [name for name in weights.tensors if ".enc.in_layers." in name or ".enc.res_skip_layers." in name]

    assert tuple(weights.get("enc_p.emb.weight").shape) == (256, 192)  # stored as "sid"
    assert len([name for name in wavenet if name.endswith(".weight")]) == 32  # the anonymous onnx::Conv_* tensors
    assert tuple(weights.get("flow.flows.0.enc.in_layers.0.weight").shape) == (384, 192, 5)
    assert tuple(weights.get("dp.flows.0.exp_neg_logs").shape) == (2, 1)  # exp(-logs), constant-folded
    assert not any(name.startswith(("onnx::", "/")) for name in weights.tensors)
    assert weights.scalars == {"layer_norm_eps": pytest.approx(1e-5), "spline_tail_bound": 5.0}


def test_hyperparameters_come_from_shapes_and_node_attributes(torch_engine: PiperTorchEngine) -> None:
    duration_stage, audio_stage = torch_engine.stages
    encoder, decoder = duration_stage.encoder, audio_stage.decoder
    attention = encoder.attention[0]
    dilations = [[conv.dilation[0] for conv in block.first] for block in decoder.resblocks[:3]]
    kernels = [block.first[0].kernel_size[0] for block in decoder.resblocks[:3]]

    assert (encoder.hidden, len(encoder.attention)) == (192, 6)
    assert (attention.heads, attention.window) == (2, 4)
    assert encoder.feed_forward[0].conv_1.out_channels == 768
    assert decoder.rates == [8, 8, 4] and torch_engine.hop == 256
    assert kernels == [3, 5, 7]
    assert dilations == [[1, 2], [2, 6], [3, 12]]
    assert decoder.stage_slopes == [pytest.approx(0.1)] * 3 and decoder.final_slope == pytest.approx(0.01)
    assert len(duration_stage.duration.flows) == 3  # flows 7, 5, 3; the skipped flow 1 is not in the file
    assert len(audio_stage.flow.layers) == 4
