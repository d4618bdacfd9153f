"""Tiny random-weight Qwen3-TTS checkpoints, built at test time (no weights are downloaded or committed).

Each checkpoint is a real ``qwen_tts`` model directory, laid out as the
published ones are (config.json, generation_config.json, model.safetensors,
vocab.json + merges.txt + tokenizer_config.json, speech_tokenizer/), so the
engine loads it with ``Qwen3TTSModel.from_pretrained`` exactly as it would
load real weights. Only the sizes are small: a 2-layer talker of width 32,
a 4-codebook speech codec with 64 entries each, a small speaker encoder.

Needs the Qwen environment (.venv-qwen): torch, transformers and qwen_tts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Codec entries per codebook; the talker's codec vocabulary is this + 1024 (special ids live above).
CODEBOOK = 64
CODE_GROUPS = 4
HIDDEN = 32
SPEAKERS = {"vivian": False, "ryan": False, "dylan": "beijing_dialect"}
LANGUAGES = ("chinese", "english", "japanese", "beijing_dialect")
MODES = {"custom_voice": "custom_voice", "voice_design": "voice_design", "voice_clone": "base"}
MAX_NEW_TOKENS = 40
"""Codec frames a tiny model may generate per item (the generation_config.json cap)."""
MIN_FRAMES = 4

# Byte-level BPE merges that make the chat-template words single tokens, as in Qwen's vocabulary.
_WORDS = ("assistant", "user", "the", "and", " the", " and", "ing", "er")
_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def write_tokenizer(target: Path, *, with_tokenizer_json: bool = False) -> dict[str, int]:
    """A small Qwen2-style tokenizer: vocab.json, merges.txt, tokenizer_config.json; returns special ids."""
    table = _bytes_to_unicode()
    vocab: dict[str, int] = {table[b]: i for i, b in enumerate(sorted(table))}
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        symbols = [table[b] for b in word.encode()]
        current = symbols[0]
        for symbol in symbols[1:]:
            merged = current + symbol
            if merged not in vocab:
                merges.append((current, symbol))
                vocab[merged] = len(vocab)
            current = merged
    specials = {name: len(vocab) + i for i, name in enumerate(_SPECIALS)}
    target.mkdir(parents=True, exist_ok=True)
    (target / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (target / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    added = {
        str(index): {
            "content": name,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for name, index in specials.items()
    }
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": list(_SPECIALS[1:]),
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (target / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
    if with_tokenizer_json:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(target)).backend_tokenizer.save(str(target / "tokenizer.json"))
    return specials


def write_planning_checkpoint(target: Path, mode: str) -> Path:
    """What the control plane reads of a checkpoint (tokenizer, config.json), and stand-in weights.

    Needs nothing but the standard library: the core environment plans
    Qwen3-TTS jobs without torch, transformers or qwen_tts.
    """
    write_tokenizer(target)
    talker = {
        "codec_language_id": {name: CODEBOOK + 10 + i for i, name in enumerate(LANGUAGES)},
        "spk_id": {name: CODEBOOK + 20 + i for i, name in enumerate(SPEAKERS)} if mode == "custom_voice" else {},
        "spk_is_dialect": SPEAKERS if mode == "custom_voice" else {},
    }
    config = {"model_type": "qwen3_tts", "tts_model_type": MODES[mode], "talker_config": talker}
    (target / "config.json").write_text(json.dumps(config, indent=1))
    (target / "speech_tokenizer").mkdir(exist_ok=True)
    (target / "speech_tokenizer" / "config.json").write_text(json.dumps({"output_sample_rate": 24000}))
    (target / "model.safetensors").write_bytes(b"not real weights: the control plane never reads them")
    return target


def _speech_tokenizer(target: Path, seed: int) -> object:
    import torch
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from qwen_tts.inference.qwen3_tts_tokenizer import Qwen3TTSTokenizer

    encoder = {
        "hidden_size": 32,
        "num_filters": 4,
        "codebook_size": CODEBOOK,
        "codebook_dim": 16,
        "vector_quantization_hidden_dimension": 16,
        "num_quantizers": CODE_GROUPS,
        "num_semantic_quantizers": 1,
        "upsample_groups": 32,
        "num_hidden_layers": 1,
        "intermediate_size": 32,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "sliding_window": 16,
    }
    decoder = {
        "codebook_size": CODEBOOK,
        "codebook_dim": 16,
        "hidden_size": 32,
        "latent_dim": 32,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_quantizers": CODE_GROUPS,
        "sliding_window": 16,
        "decoder_dim": 32,
    }
    config = Qwen3TTSTokenizerV2Config(
        encoder_config=encoder, decoder_config=decoder, encoder_valid_num_quantizers=CODE_GROUPS
    )
    torch.manual_seed(seed)
    model = Qwen3TTSTokenizerV2Model(config).eval()
    _audible(model)
    model.save_pretrained(str(target))
    preprocessor = {
        "chunk_length_s": None,
        "feature_extractor_type": "EncodecFeatureExtractor",
        "feature_size": 1,
        "overlap": None,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": True,
        "sampling_rate": 24000,
    }
    (target / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))
    return Qwen3TTSTokenizer.from_pretrained(str(target))


def _audible(model: Any) -> None:
    """Give the random codec real codebooks and a moderate output level.

    Freshly initialised codebooks are all zeros (they are running averages
    that training fills), which would make every clip silent; and the final
    convolution is scaled so random codes decode to speech-like levels
    (about -20 dBFS RMS) instead of clipping or near-silence.
    """
    import torch

    with torch.no_grad():
        for module in model.modules():
            for name in ("embedding_sum", "embed_sum"):  # the codec's and Mimi's codebooks
                if hasattr(module, name) and hasattr(module, "cluster_usage"):
                    getattr(module, name).normal_()
                    module.cluster_usage.fill_(1.0)
        decoder = model.decoder
        codes = torch.randint(0, CODEBOOK, (2, CODE_GROUPS, 12), generator=torch.Generator().manual_seed(0))
        for _ in range(3):
            level = float(decoder(codes).std())
            decoder.decoder[-1].conv.weight.mul_(0.1 / max(level, 1e-6))


def build_tiny_model(target: Path, mode: str, *, seed: int = 0, with_tokenizer_json: bool = False) -> Path:
    """Write a tiny Qwen3-TTS checkpoint of ``mode`` (custom_voice, voice_design or voice_clone) to ``target``."""
    import torch
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration

    specials = write_tokenizer(target, with_tokenizer_json=with_tokenizer_json)
    text_vocab = max(specials.values()) + 1
    special_base = CODEBOOK  # codec ids above the codebook: eos, think..., pad, bos, languages, speakers
    codec = {
        "codec_pad_id": special_base + 0,
        "codec_bos_id": special_base + 1,
        "codec_eos_token_id": special_base + 2,
        "codec_think_id": special_base + 3,
        "codec_nothink_id": special_base + 4,
        "codec_think_bos_id": special_base + 5,
        "codec_think_eos_id": special_base + 6,
    }
    languages = {name: special_base + 10 + i for i, name in enumerate(LANGUAGES)}
    speakers = {name: special_base + 20 + i for i, name in enumerate(SPEAKERS)}
    talker = {
        "vocab_size": CODEBOOK + 1024,
        "text_vocab_size": text_vocab,
        "text_hidden_size": HIDDEN,
        "hidden_size": HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "num_code_groups": CODE_GROUPS,
        "rope_scaling": {"rope_type": "default", "mrope_section": [2, 3, 3], "interleaved": True},
        "codec_language_id": languages,
        "spk_id": speakers if mode == "custom_voice" else {},
        "spk_is_dialect": SPEAKERS if mode == "custom_voice" else {},
        "code_predictor_config": {
            "vocab_size": CODEBOOK,
            "hidden_size": HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "num_code_groups": CODE_GROUPS,
        },
        **codec,
    }
    speaker_encoder = {
        "mel_dim": 128,
        "enc_dim": HIDDEN,
        "enc_channels": [16, 16, 16, 16, 48],
        "enc_kernel_sizes": [5, 3, 3, 3, 1],
        "enc_dilations": [1, 2, 3, 4, 1],
        "enc_attention_channels": 8,
        "enc_res2net_scale": 2,
        "enc_se_channels": 8,
        "sample_rate": 24000,
    }
    config = Qwen3TTSConfig(
        talker_config=talker,
        speaker_encoder_config=speaker_encoder,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size="tiny",
        tts_model_type=MODES[mode],
        im_start_token_id=specials["<|im_start|>"],
        im_end_token_id=specials["<|im_end|>"],
        tts_pad_token_id=specials["<tts_pad>"],
        tts_bos_token_id=specials["<tts_text_bos>"],
        tts_eos_token_id=specials["<tts_text_eod>"],
    )
    torch.manual_seed(seed)
    model = Qwen3TTSForConditionalGeneration(config).eval()
    model.save_pretrained(str(target))
    _speech_tokenizer(target / "speech_tokenizer", seed + 1)
    # A saved sub-config keeps its model_type, which the reload refuses for the speaker encoder.
    saved = json.loads((target / "config.json").read_text())
    saved.get("speaker_encoder_config", {}).pop("model_type", None)
    (target / "config.json").write_text(json.dumps(saved, indent=1))
    generation = {
        "do_sample": True,
        "top_k": 50,
        "top_p": 1.0,
        "temperature": 0.9,
        "repetition_penalty": 1.05,
        "subtalker_dosample": True,
        "subtalker_top_k": 50,
        "subtalker_top_p": 1.0,
        "subtalker_temperature": 0.9,
        "max_new_tokens": MAX_NEW_TOKENS,
        # voxfarm's per-item length bound: one frame per text token (at least 4), so lengths follow the text.
        "voxfarm_frames_per_token": 1.0,
        "voxfarm_min_frames": MIN_FRAMES,
    }
    (target / "generation_config.json").write_text(json.dumps(generation, indent=1))
    return target
