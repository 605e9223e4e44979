"""The ``transformers`` extractor on real local models: SmolLM2 from its wheel and tiny Qwen2 models.

The tiny model (random, or fine-tuned here for a few seconds to always give one answer) checks the
mechanics: batching with left padding, per-sequence stopping, context overflow, model resolution,
LoRA adapters. The real SmolLM2-135M-Instruct checks the plumbing end to end; untrained it does not
follow the tag-only prompt, so nothing is asserted about what it selects.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from zi_isag_tool.errors import ConfigError, ExtractorError
from zi_isag_tool.extractors import get_extractor
from zi_isag_tool.extractors.base import Extractor, SyncExtractor
from zi_isag_tool.extractors.transformers_lm import (
    TagListStoppingCriteria,
    TransformersExtractor,
    tag_list_closed,
)
from zi_isag_tool.models import SMOLLM2_GGUF_NAME, resolve_model, smollm2_gguf_path
from zi_isag_tool.prompts import tag_only_messages
from zi_isag_tool.settings import Settings
from zi_isag_tool.tokens import HFTokenCounter
from zi_isag_tool.types import Segment, TaggedWindow, WindowSelection

STOP_ANSWER = "#Extracted Information Tag#: [[<T-2>]]"
RAMBLE = " and then it keeps on talking about times"
EOS_ANSWER = "No relevant tags."


def make_window(texts: list[str], window_index: int = 0) -> TaggedWindow:
    segments, tagged, pos = [], [], 0
    for i, text in enumerate(texts, 1):
        segments.append(Segment(pos, pos + len(text)))
        tagged.append(f"<T-{i}>{text}</T-{i}>")
        pos += len(text)
    return TaggedWindow(0, window_index, 1, tuple(segments), "".join(tagged), tuple(texts))


def sentences(n: int, word: str = "Sentence") -> list[str]:
    return [f"{word} {i} is here." for i in range(1, n + 1)]


def check_invariants(sel: WindowSelection, window: TaggedWindow, max_new_tokens: int) -> None:
    assert sel.tags == sorted(set(sel.tags))
    assert all(1 <= t <= window.n_tags for t in sel.tags)
    assert 0 < sel.prompt_tokens
    assert 0 <= sel.output_tokens <= max_new_tokens
    assert isinstance(sel.raw_output, str)
    if sel.failed:
        assert sel.tags == [] and sel.error


# --- stopping ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "closed"),
    [
        ("#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>]]", True),
        ("#Extracted Information Tag#:[[<T-1>], [<T-3>~<T-5>], <T-9>]", True),
        ("[<T-1>, <T-3>]", True),
        ("[]", True),
        ("#Extracted Information Tag#: None", True),
        ("#Extracted Information Tag#:None<|im_end|>", True),
        ("<T-2>]], and", True),
        ("［［<T-1>］］", True),  # full-width brackets
        ("#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>]", False),
        ("#Extracted Information Tag#: [[<T-1>], [<T-3>~", False),
        ("#Extracted Information Tag#: [", False),
        ("[T-3] and [T-4] are relevant", False),  # bracketed tags are not a list
        ("[[T-3], [T-4]]", True),
        ("[[<T-1>], None", False),  # None inside an open list does not end it
        ("Nonetheless the answer", False),
        ("prose only", False),
        ("", False),
    ],
)
def test_tag_list_closed(text: str, closed: bool) -> None:
    assert tag_list_closed(text) is closed


def test_stopping_criteria_fires_per_sequence(tiny_qwen2_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    prompt = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    rows = [
        "#Extracted Information Tag#: [[<T-1>], [<T-3>~<T-5>]] and more words",
        "#Extracted Information Tag#: None and more words",
        "[T-3] and [T-4] are relevant",
        "[[<T-7>]]",
    ]
    conts = [tok(r, add_special_tokens=False)["input_ids"] for r in rows]
    width = max(len(c) for c in conts)
    pad = tok.pad_token_id
    ids = torch.tensor([prompt + c + [pad] * (width - len(c)) for c in conts])

    criteria = TagListStoppingCriteria(tok, len(prompt))
    fired_at: dict[int, int] = {}
    for k in range(1, width + 1):
        done = criteria(ids[:, : len(prompt) + k], None)
        assert done.shape == (len(rows),) and done.dtype == torch.bool
        for row in range(len(rows)):
            if done[row]:
                fired_at.setdefault(row, k)
    assert criteria.stopped_at == fired_at

    def first_closing(cont: list[int]) -> int | None:
        return next((k for k in range(1, len(cont) + 1) if tag_list_closed(tok.decode(cont[:k]))), None)

    # Row 0 stops on the token that closes "]]", before "and more words".
    assert fired_at[0] == first_closing(conts[0]) < len(conts[0])
    assert "]]" in tok.decode(conts[0][: fired_at[0]]) and "more" not in tok.decode(conts[0][: fired_at[0]])
    assert tok.decode(conts[1][: fired_at[1]]).rstrip().endswith("None")
    assert 2 not in fired_at  # never closes: runs to max_new_tokens or EOS
    assert fired_at[3] == len(conts[3])
    # Once stopped, a row stays stopped and keeps its first stop position.
    again = criteria(ids, None)
    assert again.tolist() == [True, True, False, True]
    assert criteria.stopped_at == fired_at


# --- model resolution --------------------------------------------------------------------------


def test_missing_path_raises_extractor_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ExtractorError, match="no-such-model"):
        TransformersExtractor(missing)
    with pytest.raises(ExtractorError, match="not a model folder"):
        TransformersExtractor(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ExtractorError, match="not a .gguf"):
        resolve_model(tmp_path / "weights.bin")


def test_gguf_file_and_folder_resolution(tmp_path: Path) -> None:
    gguf = smollm2_gguf_path()
    assert gguf.name == SMOLLM2_GGUF_NAME
    by_name = resolve_model("smollm2")
    assert (by_name.path, by_name.gguf_file) == (gguf.parent, gguf.name)
    by_file = resolve_model(gguf)
    assert (by_file.path, by_file.gguf_file, by_file.adapter) == (gguf.parent, gguf.name, None)

    folder = tmp_path / "one-gguf"
    folder.mkdir()
    (folder / "model.Q4.gguf").symlink_to(gguf)
    (folder / "README.md").write_text("notes")
    in_folder = resolve_model(folder)
    assert (in_folder.path, in_folder.gguf_file) == (folder.resolve(), "model.Q4.gguf")

    (folder / "other.gguf").symlink_to(gguf)
    with pytest.raises(ExtractorError, match="several GGUF"):
        resolve_model(folder)


def test_unloadable_model_raises_extractor_error(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_qwen2_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    extractor = TransformersExtractor(broken)
    with pytest.raises(ExtractorError, match="broken"):
        extractor.extract("q", [make_window(sentences(2))])


# --- tiny random model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_extractor(tiny_qwen2_dir: Path) -> TransformersExtractor:
    return TransformersExtractor(tiny_qwen2_dir, max_new_tokens=8, batch_size=4)


def test_protocol_and_settings(tiny_qwen2_dir: Path, tiny_extractor: TransformersExtractor) -> None:
    assert isinstance(tiny_extractor, Extractor) and isinstance(tiny_extractor, SyncExtractor)
    assert tiny_extractor.name == "transformers"
    assert isinstance(tiny_extractor.token_counter, HFTokenCounter)
    assert tiny_extractor.token_counter.count("hello [[<T-1>]]") > 0
    assert tiny_extractor.dtype == torch.float32

    settings = Settings(model_path=str(tiny_qwen2_dir), max_new_tokens=5, batch_size=2, window_tokens=512)
    ex = TransformersExtractor.from_settings(settings)
    assert (ex.max_new_tokens, ex.batch_size, ex.window_tokens) == (5, 2, 512)
    assert ex.spec.path == tiny_qwen2_dir.resolve()
    assert (
        TransformersExtractor.from_settings(Settings(), model_path=str(tiny_qwen2_dir)).window_tokens == 1024
    )
    with pytest.raises(ConfigError):
        TransformersExtractor.from_settings(Settings())
    assert isinstance(get_extractor(f"transformers:{tiny_qwen2_dir}"), TransformersExtractor)


def test_loads_once_across_threads(tiny_qwen2_dir: Path) -> None:
    ex = TransformersExtractor(tiny_qwen2_dir)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(ex.model)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(m is seen[0] for m in seen)


def test_batches_of_different_lengths_match_one_by_one(
    tiny_qwen2_dir: Path, tiny_extractor: TransformersExtractor
) -> None:
    windows = [make_window(sentences(n), i) for i, n in enumerate([3, 12, 1, 7, 5])]
    batched = tiny_extractor.extract("which sentence is third?", windows)
    single = TransformersExtractor(tiny_qwen2_dir, max_new_tokens=8, batch_size=1).extract(
        "which sentence is third?", windows
    )
    assert len(batched) == len(windows)
    for sel, one, window in zip(batched, single, windows, strict=True):
        check_invariants(sel, window, 8)
        # Left padding (and the attention mask) leave each answer exactly as if generated alone.
        assert (sel.raw_output, sel.output_tokens, sel.prompt_tokens) == (
            one.raw_output,
            one.output_tokens,
            one.prompt_tokens,
        )
    # Results come back in input order, whatever the length-sorted batch order was.
    lengths = [sel.prompt_tokens for sel in batched]
    assert lengths[2] < lengths[0] < lengths[4] < lengths[3] < lengths[1]
    tok = tiny_extractor.tokenizer
    expected = tok.apply_chat_template(
        tag_only_messages("which sentence is third?", windows[0].tagged_text),
        add_generation_prompt=True,
        tokenize=False,
    )
    assert lengths[0] == len(tok(expected, add_special_tokens=False)["input_ids"])


async def test_aextract_and_empty(tiny_extractor: TransformersExtractor) -> None:
    assert tiny_extractor.extract("q", []) == []
    windows = [make_window(sentences(2))]
    [sel] = await tiny_extractor.aextract("q", windows)
    check_invariants(sel, windows[0], 8)


def test_window_too_long_for_context_fails_that_window_only(tiny_extractor: TransformersExtractor) -> None:
    long_window = make_window(sentences(400, word="Overflowing"), 1)
    assert tiny_extractor.max_context is not None
    assert tiny_extractor.token_counter.count(long_window.tagged_text) > tiny_extractor.max_context
    ok_window = make_window(sentences(3), 0)
    ok, too_long = tiny_extractor.extract("q", [ok_window, long_window])
    check_invariants(ok, ok_window, 8)
    assert too_long.failed and too_long.tags == [] and too_long.output_tokens == 0
    assert "context" in (too_long.error or "") and too_long.prompt_tokens > tiny_extractor.max_context


# --- tiny models fine-tuned to give one fixed answer -----------------------------------------------


def _fine_tune(base_dir: Path, answer_ids: list[int], out: Path, *, steps: int = 24) -> Path:
    """Full fine-tune of the tiny model so that it answers ``answer_ids`` to any tag-only prompt."""
    tok = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    prompts = [
        tok(
            tok.apply_chat_template(
                tag_only_messages(q, make_window(sentences(n)).tagged_text),
                add_generation_prompt=True,
                tokenize=False,
            ),
            add_special_tokens=False,
        )["input_ids"]
        for q, n in [("a", 2), ("what is it", 7), ("b c", 4), ("which one", 12)]
    ]
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        prompt = prompts[step % len(prompts)]
        ids = torch.tensor([prompt + answer_ids])
        labels = ids.clone()
        labels[0, : len(prompt)] = -100  # loss on the answer only
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_tokenizer(tiny_qwen2_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_qwen2_dir)


@pytest.fixture(scope="module")
def rambling_dir(tiny_qwen2_dir: Path, tiny_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Answers STOP_ANSWER and then keeps talking, with no EOS: only the tag-list stop can end it."""
    ids = tiny_tokenizer(STOP_ANSWER + RAMBLE, add_special_tokens=False)["input_ids"]
    return _fine_tune(tiny_qwen2_dir, ids, tmp_path_factory.mktemp("tiny-rambling"))


@pytest.fixture(scope="module")
def eos_dir(tiny_qwen2_dir: Path, tiny_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Answers EOS_ANSWER, then <|im_end|>, then more words that generation must never reach."""
    ids = tiny_tokenizer(EOS_ANSWER, add_special_tokens=False)["input_ids"]
    ids = ids + [tiny_tokenizer.eos_token_id] + tiny_tokenizer(RAMBLE, add_special_tokens=False)["input_ids"]
    return _fine_tune(tiny_qwen2_dir, ids, tmp_path_factory.mktemp("tiny-eos"))


def test_generation_stops_when_tag_list_closes(rambling_dir: Path, tiny_tokenizer) -> None:
    max_new = 40
    extractor = TransformersExtractor(rambling_dir, max_new_tokens=max_new, batch_size=3)
    calls = []
    extractor.model.register_forward_hook(lambda *args: calls.append(1))
    windows = [make_window(sentences(n, word="Line"), i) for i, n in enumerate([3, 9, 5])]
    selections = extractor.extract("which line matters?", windows)

    answer_tokens = len(tiny_tokenizer(STOP_ANSWER, add_special_tokens=False)["input_ids"])
    for sel, window in zip(selections, windows, strict=True):
        check_invariants(sel, window, max_new)
        assert sel.raw_output == STOP_ANSWER
        assert sel.tags == [2] and not sel.failed
        assert sel.output_tokens == answer_tokens < max_new
    # One batch: a prefill and then one forward pass per new token; generation really ended at "]]"
    # instead of decoding up to max_new_tokens and trimming afterwards.
    assert len(calls) == answer_tokens


def test_generation_stops_at_eos(eos_dir: Path, tiny_tokenizer) -> None:
    extractor = TransformersExtractor(eos_dir, max_new_tokens=30, batch_size=2)
    windows = [make_window(sentences(n), i) for i, n in enumerate([4, 2])]
    for sel, window in zip(extractor.extract("anything?", windows), windows, strict=True):
        check_invariants(sel, window, 30)
        assert sel.raw_output == EOS_ANSWER
        assert sel.output_tokens == len(tiny_tokenizer(EOS_ANSWER, add_special_tokens=False)["input_ids"]) + 1
        assert sel.failed and sel.error  # neither tags nor None: an unreadable answer, not an exception


# --- LoRA adapters -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter_dir(tiny_qwen2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    torch.manual_seed(1)
    # Random (not zero) B matrices: the adapter visibly changes the model's output.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("tiny-lora")
    get_peft_model(base, config).save_pretrained(out)
    return out


# The reference model below is loaded with peft directly, which asks transformers 5 a deprecated question.
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing.*:FutureWarning")
def test_lora_adapter_loads_on_its_base(tiny_qwen2_dir: Path, adapter_dir: Path) -> None:
    from peft import PeftModel

    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        tiny_qwen2_dir
    )
    extractor = TransformersExtractor(adapter_dir, max_new_tokens=6)
    assert extractor.spec.adapter == adapter_dir.resolve()
    assert extractor.spec.path == tiny_qwen2_dir.resolve()

    ids = extractor.tokenizer("some text [[<T-1>]]", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir).eval()
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir), adapter_dir
    ).eval()
    with torch.inference_mode():
        got = extractor.model(ids).logits
        assert torch.allclose(got, reference(ids).logits, atol=1e-5)
        assert not torch.allclose(got, base(ids).logits, atol=1e-3)

    window = make_window(sentences(4))
    [sel] = extractor.extract("q", [window])
    check_invariants(sel, window, 6)


def test_lora_adapter_with_missing_base(tiny_qwen2_dir: Path, adapter_dir: Path, tmp_path: Path) -> None:
    moved = tmp_path / "adapter"
    shutil.copytree(adapter_dir, moved)
    config_path = moved / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone-base")
    config_path.write_text(json.dumps(config))
    with pytest.raises(ExtractorError, match="base_model_path"):
        TransformersExtractor(moved)
    extractor = TransformersExtractor(moved, base_model_path=tiny_qwen2_dir)
    assert extractor.spec.path == tiny_qwen2_dir.resolve() and extractor.spec.adapter == moved.resolve()


# --- the real SmolLM2-135M-Instruct ----------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_end_to_end(smollm2_dir: Path) -> None:
    max_new = 16
    extractor = TransformersExtractor(smollm2_dir, max_new_tokens=max_new)
    window = make_window(
        [
            "Viaweb was a web application for building online stores.",
            " It was founded in 1995 by Paul Graham, Robert Morris and Trevor Blackwell.",
            " Yahoo bought Viaweb in 1998 and renamed it Yahoo Store.",
            " The weather in the valley was mild that year.",
            " Lisp was used to write most of the software.",
        ]
    )
    [sel] = extractor.extract("Who founded Viaweb?", [window])
    check_invariants(sel, window, max_new)
    assert sel.output_tokens > 0
    assert sel.prompt_tokens == extractor.token_counter.count(
        extractor.tokenizer.apply_chat_template(
            tag_only_messages("Who founded Viaweb?", window.tagged_text),
            add_generation_prompt=True,
            tokenize=False,
        )
    )
    # The stop fires on SmolLM2's own tokens right where the list closes (generation-side stopping
    # is checked on the tiny fine-tuned models, which do write tag lists).
    tok = extractor.tokenizer
    cont = tok("#Extracted Information Tag#: [[<T-2>], [<T-3>~<T-4>]] and more", add_special_tokens=False)[
        "input_ids"
    ]
    criteria = TagListStoppingCriteria(tok, 0)
    fired = next(k for k in range(1, len(cont) + 1) if criteria(torch.tensor([cont[:k]]))[0])
    assert tok.decode(cont[:fired]).rstrip().endswith("]]")


def test_smollm2_tags_loads_offline_by_name_and_answers_through_the_parser() -> None:
    """The shipped adapter on the wheel's base, chosen by name, through the whole pipeline (no quality claim)."""
    from zi_isag_tool import Pipeline
    from zi_isag_tool.extractors import get_extractor
    from zi_isag_tool.models import SMOLLM2_TAGS_DIR
    from zi_isag_tool.types import Document

    extractor = get_extractor("smollm2-tags")
    assert extractor.spec.adapter == SMOLLM2_TAGS_DIR and extractor.spec.gguf_file == SMOLLM2_GGUF_NAME
    window = make_window(
        [
            "Viaweb was a web application for building online stores.",
            " It was founded in 1995 by Paul Graham, Robert Morris and Trevor Blackwell.",
            " The weather in the valley was mild that year.",
        ]
    )
    [sel] = extractor.extract("Who founded Viaweb?", [window])
    check_invariants(sel, window, extractor.max_new_tokens)
    assert not sel.failed and sel.raw_output is not None

    text = "Viaweb was a web application for building online stores. " * 3 + "Its founder was Paul Graham."
    result = Pipeline(extractor=extractor).extract_documents("Who founded Viaweb?", [Document("page.md", text)])
    for passage in result.passages:
        assert text[passage.start : passage.end] == passage.text
