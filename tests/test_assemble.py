"""Assemble: window-local tags -> exact passages, merging, ranking, budget."""

from __future__ import annotations

from zi_isag_tool.assemble import assemble
from zi_isag_tool.tokens import default_counter
from zi_isag_tool.types import Document, Segment, TaggedWindow, WindowSelection

TEXT = "Alpha one. Beta two. Gamma three. Delta four. Epsilon five."


def _segments(text: str) -> list[Segment]:
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch == "." and (i + 1 == len(text) or text[i + 1] == " "):
            out.append(Segment(start, i + 1))
            start = i + 1
    if start < len(text):
        out.append(Segment(start, len(text)))
    return out


def _windows(doc_index: int, text: str, per_window: int) -> list[TaggedWindow]:
    segs = _segments(text)
    windows = []
    for w, first in enumerate(range(0, len(segs), per_window)):
        part = tuple(segs[first : first + per_window])
        plain = tuple(text[s.start : s.end] for s in part)
        tagged = "".join(f"<T-{i}>{t}</T-{i}>" for i, t in enumerate(plain, 1))
        windows.append(TaggedWindow(doc_index, w, first + 1, part, tagged, plain))
    return windows


def test_adjacent_tags_merge_across_windows_and_text_is_exact() -> None:
    doc = Document("doc://a", TEXT, "A")
    windows = _windows(0, TEXT, per_window=2)  # tags 1-2 | 3-4 | 5
    selections = [WindowSelection(tags=[2]), WindowSelection(tags=[1]), WindowSelection(tags=[1])]
    passages, kept, left_out = assemble([doc], windows, selections, counter=default_counter())
    assert [p.tags for p in passages] == [(2, 3), (5,)] and left_out == 0
    for p in passages:
        assert p.text == TEXT[p.start : p.end]
        assert p.text == p.text.strip()
    assert passages[0].text == "Beta two. Gamma three."
    assert kept == sum(default_counter().count(p.text) for p in passages)


def test_documents_by_relevance_passages_in_reading_order_and_budget_keeps_best() -> None:
    doc = Document("doc://a", TEXT, "A")
    windows = _windows(0, TEXT, per_window=5)
    sel = WindowSelection(tags=[1, 4], scores={1: 0.2, 4: 0.9})
    passages, _, _ = assemble([doc], windows, [sel], counter=default_counter())
    assert [p.tags for p in passages] == [(1,), (4,)]  # one page: as the page tells them
    other = Document("doc://b", "Zeta six. Eta seven.", "B")
    both = [*windows, *_windows(1, other.text, per_window=5)]
    selections = [sel, WindowSelection(tags=[2], scores={2: 0.5})]
    passages, _, _ = assemble([doc, other], both, selections, counter=default_counter())
    # doc://a holds the best passage, so it comes first, its passages in reading order; then doc://b.
    assert [(p.source, p.tags) for p in passages] == [("doc://a", (1,)), ("doc://a", (4,)), ("doc://b", (2,))]
    budget = default_counter().count("Delta four.")
    passages, kept, left_out = assemble([doc], windows, [sel], counter=default_counter(), max_tokens=budget)
    assert [p.tags for p in passages] == [(4,)] and kept <= budget
    assert left_out == 1  # passage (1,) did not fit at all


def test_budget_cuts_a_long_passage_back_to_whole_leading_segments() -> None:
    doc = Document("doc://a", TEXT, "A")
    windows = _windows(0, TEXT, per_window=5)
    sel = WindowSelection(tags=[1, 2, 3, 4, 5])
    budget = default_counter().count("Alpha one. Beta two.") + 1
    passages, kept, left_out = assemble([doc], windows, [sel], counter=default_counter(), max_tokens=budget)
    assert len(passages) == 1 and passages[0].tags == (1, 2)
    assert left_out == 1  # the one passage was cut short
    assert passages[0].text == "Alpha one. Beta two." and kept <= budget


def test_max_passages_out_of_range_and_whitespace_only_selections() -> None:
    text = "One.   \n\n   Two."
    doc = Document("d", text)
    segs = (Segment(0, 4), Segment(4, 12), Segment(12, len(text)))
    plain = tuple(text[s.start : s.end] for s in segs)
    window = TaggedWindow(0, 0, 1, segs, "", plain)
    passages, _, _ = assemble([doc], [window], [WindowSelection(tags=[2, 9])], counter=default_counter())
    assert passages == []  # the blank segment alone gives no passage; tag 9 does not exist
    passages, _, left_out = assemble(
        [doc, Document("e", TEXT)],
        [window, *_windows(1, TEXT, 5)],
        [WindowSelection(tags=[1]), WindowSelection(tags=[1, 3, 5])],
        counter=default_counter(),
        max_passages=2,
    )
    assert [(p.source, p.tags) for p in passages] == [("d", (1,)), ("e", (1,))]
    assert left_out == 0  # max_passages is the caller's choice, not the budget's loss


def test_the_same_words_are_returned_once() -> None:
    # doc b's first sentence repeats doc a's second one (case and spacing aside, the same words)
    first, second = Document("doc://a", TEXT, "A"), Document("doc://b", "BETA  two. Omega zero.", "B")
    windows = [*_windows(0, TEXT, per_window=5), *_windows(1, second.text, per_window=5)]
    selections = [WindowSelection(tags=[2]), WindowSelection(tags=[1, 2])]
    passages, _, _ = assemble([first, second], windows, selections, counter=default_counter())
    assert [(p.source, p.text) for p in passages] == [("doc://a", "Beta two."), ("doc://b", "BETA  two. Omega zero.")]
    selections = [WindowSelection(tags=[2]), WindowSelection(tags=[1])]
    passages, _, _ = assemble([first, second], windows, selections, counter=default_counter())
    assert [(p.source, p.text) for p in passages] == [("doc://a", "Beta two.")]
