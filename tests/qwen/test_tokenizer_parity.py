"""The control plane's tokenizer gives the ids the checkpoint's own (transformers) tokenizer gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from shared.frontend.qwen3 import load_tokenizer
from tests.support.qwen_fixture import write_tokenizer

TEXTS = [
    "Hello the world, and the rest!",
    "It's 12 o'clock\n  and  the keeper's lamp is lit.",
    "天色渐暗。安娜提着灯，慢慢走上塔顶：“你看见了吗？”",
    "Ünïcödé café — naïve façade",
    "<|im_start|>assistant\nThe text.<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.mark.parametrize("with_tokenizer_json", [False, True], ids=["vocab+merges", "tokenizer.json"])
def test_the_frontend_tokenizer_matches_transformers(tmp_path: Path, with_tokenizer_json: bool) -> None:
    write_tokenizer(tmp_path, with_tokenizer_json=with_tokenizer_json)
    reference = AutoTokenizer.from_pretrained(str(tmp_path))
    ours = load_tokenizer(tmp_path)

    for text in TEXTS:
        assert ours.encode(text, add_special_tokens=False).ids == reference(text)["input_ids"], text


def test_text_ids_are_the_middle_of_the_templated_prompt(tmp_path: Path) -> None:
    write_tokenizer(tmp_path)
    reference = AutoTokenizer.from_pretrained(str(tmp_path))
    ours = load_tokenizer(tmp_path)

    for text in TEXTS[:4]:
        prompt = reference(f"<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
        assert prompt[3:-5] == ours.encode(text, add_special_tokens=False).ids, text
