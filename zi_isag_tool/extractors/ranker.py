"""``ranker`` (the default): a small learned scorer over MiniLM and BM25 signals in context.

Each shortlisted candidate gets the features of ``features.py``; a small ensemble of neural networks
(one hidden layer of 16 units each) turns them into the probability that the sentence is part of
the answer; the shared rule (``selection.py``) keeps the most probable ones across all documents of
the call and abstains when even the best is improbable. The model is about a thousand numbers
(``ranker.json``, shipped in the package) fitted by
``python -m evals.calibrate`` on allowed data only, and checked on data it never saw (the bundled
HotpotQA dev sample, the NeedleBench ``eval`` split): see docs/results/calibration.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .call import CallSegments
from .embedding import EmbeddingExtractor
from .features import FEATURE_NAMES, Signals, ranker_features
from .scorer import DEFAULT_SHORTLIST, lexical_scores, shortlist
from .selection import SelectionRule

__all__ = ["Layer", "RankerModel", "RankerExtractor", "MODEL_FILE"]

MODEL_FILE = "ranker.json"


@dataclass(frozen=True)
class Layer:
    """One dense layer: ``inputs @ weight + bias``."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class RankerModel:
    """Standardised features -> a small ensemble of neural networks (ReLU hidden layers, a logistic
    output; no hidden layer is logistic regression) -> their mean probability; plus the selection
    rule fitted with it."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    members: tuple[tuple[Layer, ...], ...]
    rule: SelectionRule
    info: dict[str, Any]

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (self.mean.shape == self.scale.shape == (n,)) or not self.members:
            raise ConfigError(f"ranker model: mean and scale must each hold {n} numbers, and one member at least")
        if unknown := set(self.features) - set(FEATURE_NAMES):
            raise ConfigError(f"ranker model names features this version does not compute: {sorted(unknown)}")
        for layers in self.members:
            width = n
            for layer in layers:
                if layer.weight.ndim != 2 or layer.weight.shape[0] != width or layer.bias.shape != layer.weight.shape[1:]:
                    raise ConfigError("ranker model: layer shapes do not chain")
                width = layer.weight.shape[1]
            if width != 1:
                raise ConfigError("ranker model: the last layer must have one output")

    def probability(self, rows: np.ndarray) -> np.ndarray:
        """P(answer sentence) for each row of ``FEATURE_NAMES`` features."""
        columns = [FEATURE_NAMES.index(f) for f in self.features]
        x = (rows[:, columns] - self.mean) / self.scale
        total = np.zeros(len(rows))
        for layers in self.members:
            h = x
            for layer in layers[:-1]:
                h = np.maximum(h @ layer.weight + layer.bias, 0.0)
            z = (h @ layers[-1].weight + layers[-1].bias)[:, 0]
            total += 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))
        return total / len(self.members)

    def to_dict(self) -> dict[str, Any]:
        rule = self.rule

        def numbers(a: np.ndarray) -> Any:
            return np.round(a.astype(np.float64), 6).tolist()

        return {
            "features": list(self.features),
            "mean": numbers(self.mean),
            "scale": numbers(self.scale),
            "members": [[{"weight": numbers(layer.weight), "bias": numbers(layer.bias)} for layer in m] for m in self.members],
            "rule": {
                "floor": rule.floor,
                "min_score": rule.min_score,
                "margin": rule.margin,
                "budget": rule.budget,
                "per_document": rule.per_document,
            },
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankerModel:
        try:
            return cls(
                features=tuple(str(f) for f in data["features"]),
                mean=np.asarray(data["mean"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
                members=tuple(
                    tuple(
                        Layer(np.asarray(x["weight"], dtype=np.float64), np.asarray(x["bias"], dtype=np.float64))
                        for x in member
                    )
                    for member in data["members"]
                ),
                rule=SelectionRule(**data["rule"]),
                info=dict(data.get("info") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a ranker model: {exc}") from exc

    @classmethod
    def untrained(cls) -> RankerModel:
        """Every weight 0 (probability 0.5 everywhere): for computing features to fit on."""
        n = len(FEATURE_NAMES)
        member = (Layer(np.zeros((n, 1)), np.zeros(1)),)
        return cls(FEATURE_NAMES, np.zeros(n), np.ones(n), (member,), SelectionRule(), {"untrained": True})

    @classmethod
    def load(cls, path: str | Path | None = None) -> RankerModel:
        """The model at ``path``, or the one shipped in the package."""
        if path is None:
            text = resources.files(__package__).joinpath(MODEL_FILE).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")


class RankerExtractor(EmbeddingExtractor):
    """The learned ``ranker``: features of each shortlisted candidate -> probability -> shared rule.

    Usage::

        extractor = RankerExtractor()                  # the shipped model, MiniLM from its wheel
        selections = extractor.extract(query, windows)  # all windows of the call at once
    """

    name = "ranker"

    def __init__(
        self,
        *,
        device: str = "cpu",
        window_tokens: int | None = None,
        model: RankerModel | None = None,
        rule: SelectionRule | None = None,
        neighbours: bool = True,
        shortlist_size: int | None = DEFAULT_SHORTLIST,
        batch_size: int = 16,
    ) -> None:
        self.ranker = model or RankerModel.load()
        super().__init__(
            device=device,
            window_tokens=window_tokens,
            rule=rule or self.ranker.rule,
            neighbours=neighbours,
            shortlist_size=shortlist_size,
            batch_size=batch_size,
        )

    def signals(self, query: str, call: CallSegments) -> Signals:
        """Cosine of each shortlisted candidate in context and of its context; BM25 alone and in context."""
        lexical_context = lexical_scores(query, call)
        live = shortlist(lexical_context, call, self.shortlist_size)
        in_context = [call.in_context(int(i)) for i in live]
        contexts = [call.context(int(i)) for i in live]
        named = sorted({c for c in contexts if c})
        # One batch for the call: the candidates in context, then each distinct context once.
        cosine = self.segment_scores(query, [*in_context, *named]) if live.size else np.zeros(0)
        k = live.size
        cos_of_context = dict(zip(named, cosine[k:].tolist(), strict=True))
        return Signals(
            live=live,
            cos_context=np.nan_to_num(cosine[:k]),
            cos_title=np.array([cos_of_context.get(c, 0.0) for c in contexts]),
            lexical_text=lexical_scores(query, call, in_context=False)[live],
            lexical_context=lexical_context[live],
        )

    def features(self, query: str, call: CallSegments) -> tuple[np.ndarray, np.ndarray]:
        """``(live, rows)``: the shortlisted candidates' flat indices and their feature rows."""
        signals = self.signals(query, call)
        return signals.live, ranker_features(query, call, signals)

    def call_scores(self, query: str, call: CallSegments) -> np.ndarray:
        scores = np.full(len(call), np.nan)
        live, rows = self.features(query, call)
        if live.size:
            scores[live] = self.ranker.probability(rows)
        return scores

