"""Fit the scorer backends' selection: the ``ranker`` model and every backend's rule, in one place.

Data discipline. Training items come only from what ``--data`` names — HotpotQA **dev** items (never
the *train* split), 2WikiMultihopQA dev items, any file in the HotpotQA distractor shape — plus
NeedleBench's ``calib`` split. Items whose question is in the bundled HotpotQA evaluation sample are
refused, so the held-out numbers below (that sample, and NeedleBench's ``eval`` split) are on data
the fit never saw.

What is fitted, on the real code path (``tag_item`` -> ``CallSegments`` -> ``RankerExtractor.features``):

1. the ranker: a small ensemble of one-hidden-layer networks over the standardised
   ``features.FEATURE_NAMES``, every shortlisted candidate of every training item a row (gold
   sentences positive); the report gives its grouped cross-validated log loss next to logistic
   regression's;
2. each backend's ``SelectionRule`` (the ranker on its probability, ``embedding`` on the cosine in
   context, ``bm25`` on BM25 in context, ``hybrid`` on their weighted sum, its weight too): a grid
   search maximising mean tag F1 over positive items plus ``--negative-weight`` times the negative
   exact match, with at most ``--max-kept`` of the content tokens kept. Each training source (each
   ``--data`` file, the needle items) counts equally in the objective and each keeps under the cap:
   pooled by item, 2,000 multi-hop questions (at most two answer sentences per page) would drown the
   few hundred needle items, and the rule would learn a per-page bound that cuts pages answering
   three or five times. Files given one ``NAME=`` are one source. Selection is simulated with the
   real ``select_call`` and ``with_neighbours``.

Feature rows are cached per item under ``--cache`` (the encoder is the slow part).

Usage::

    python -m evals.calibrate --data hotpot_dev_distractor_extra.json --data 2wiki_dev.json
    python -m evals.calibrate --data hotpotqa=part1.jsonl --data hotpotqa=part2.jsonl --data 2wiki_dev.json
    python -m evals.calibrate --data ... --model zi_isag_tool/extractors/ranker.json \\
        --report docs/results/calibration.md
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import math
import pickle
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zi_isag_tool.datasets.needlebench import NeedleBench, Split
from zi_isag_tool.errors import InputError
from zi_isag_tool.extractors.call import CallSegments
from zi_isag_tool.extractors.features import FEATURE_NAMES, Signals, ranker_features
from zi_isag_tool.extractors.hybrid import hybrid_scores
from zi_isag_tool.extractors.ranker import Layer, RankerExtractor, RankerModel
from zi_isag_tool.extractors.selection import SelectionRule, select_call, with_neighbours
from zi_isag_tool.tokens import TokenCounter

from .loaders import EvalItem, default_data_path, from_needle_item, load_hotpotqa
from .suites import tag_item

logger = logging.getLogger("evals.calibrate")

SEED = 20261201
GRID_MIN_SCORE = {
    "ranker": (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3),
    "embedding": (0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5),
    "bm25": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
    "hybrid": (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45),
}
GRID_FLOOR = {
    "ranker": tuple(np.round(np.arange(0.0, 0.62, 0.02), 3)),
    "embedding": tuple(np.round(np.arange(0.2, 0.8, 0.02), 3)),
    "bm25": tuple(np.round(np.arange(0.0, 1.5, 0.05), 3)),
    "hybrid": tuple(np.round(np.arange(0.1, 1.0, 0.02), 3)),
}
GRID_MARGIN = (0.05, 0.1, 0.2, 0.3, 0.5, math.inf)
GRID_BUDGET = (2, 3, 4, 5, 6, 8)
GRID_PER_DOCUMENT = (2, 3, 4, 5)
GRID_HYBRID_WEIGHT = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


@dataclass
class Example:
    """One item through the real feature path."""

    item: EvalItem
    source: str
    call: CallSegments
    live: np.ndarray
    rows: np.ndarray
    labels: np.ndarray
    """Per row: whether the candidate is a gold segment."""
    tag_of: np.ndarray
    """Item-level tag number of every flat segment of ``call``."""
    tokens: np.ndarray
    """Tokens of every flat segment."""
    gold: frozenset[int]
    content_tokens: int

    @property
    def negative(self) -> bool:
        return not self.gold


# --- data ------------------------------------------------------------------------------------------


def _question_key(text: str) -> str:
    return " ".join(text.casefold().split())


def held_out_questions() -> set[str]:
    """Questions of the bundled HotpotQA evaluation sample: never trained on."""
    path = default_data_path("hotpotqa")
    if path is None or not path.exists():
        return set()
    return {_question_key(it.query) for it in load_hotpotqa(path, negatives_share=0.0)}


def needle_grid(split: Split, negatives_share: float, seed: int) -> list[EvalItem]:
    """NeedleBench items built as the ``needle`` suite builds them — every (length, depth) cell with
    the single needles, the needle sets and two multi-hop items — so that single, multi-needle and
    multi-hop items weigh in the fit as they do in the suite (a uniform sample is mostly multi-hop)."""
    grid = NeedleBench().grid(split=split, negatives_share=negatives_share, seed=seed)
    return [from_needle_item(it) for it in grid]


def data_source(value: str) -> tuple[str, Path]:
    """``--data`` as ``NAME=PATH`` (files sharing a NAME are one training source) or ``PATH`` (its
    own source, named by the file)."""
    name, sep, rest = value.partition("=")
    if sep and re.fullmatch(r"[\w.-]+", name) and rest:
        return name, Path(rest)
    return Path(value).stem, Path(value)


def training_items(
    data: Sequence[tuple[str, Path]], needles: bool, negatives_share: float
) -> list[tuple[str, EvalItem]]:
    refused = held_out_questions()
    items: list[tuple[str, EvalItem]] = []
    for source, path in data:
        loaded = load_hotpotqa(path, negatives_share=negatives_share, seed=SEED, layout="pages")
        kept = [it for it in loaded if _question_key(it.query) not in refused]
        if len(kept) < len(loaded):
            logger.warning("%s: %d items share a question with the evaluation sample; left out", path, len(loaded) - len(kept))
        items += [(source, it) for it in kept]
    if needles:
        items += [("needlebench-calib", it) for it in needle_grid("calib", negatives_share, SEED)]
    return items


def held_out_items(negatives_share: float) -> list[tuple[str, EvalItem]]:
    """The bundled HotpotQA sample (with negatives) and the ``needle`` suite's own items (the ``eval``
    split, seed 0), with negatives added."""
    path = default_data_path("hotpotqa")
    items: list[tuple[str, EvalItem]] = []
    if path is not None and path.exists():
        items += [("hotpotqa-eval", it) for it in load_hotpotqa(path, negatives_share=negatives_share, seed=0)]
    items += [("needlebench-eval", it) for it in needle_grid("eval", negatives_share, 0)]
    return items


def _cache_key(item: EvalItem, extractor: RankerExtractor) -> str:
    payload = json.dumps(
        [item.query, item.document_text, item.documents, item.kinds, extractor.shortlist_size,
         extractor.window_tokens],
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def featurize(
    items: Sequence[tuple[str, EvalItem]], extractor: RankerExtractor, counter: TokenCounter, cache_dir: Path | None
) -> list[Example]:
    """Every item through ``tag_item`` and the ranker's feature path (the model's signals, the slow
    part, cached on disk; the features are computed from them each time)."""
    cache: dict[str, Signals] = {}
    cache_file = cache_dir / "signals.pkl" if cache_dir else None
    if cache_file is not None and cache_file.exists():
        cache = pickle.loads(cache_file.read_bytes())
    examples: list[Example] = []
    fresh = 0
    started = time.perf_counter()
    for n, (source, item) in enumerate(items, start=1):
        windows, spans, gold, offsets = tag_item(item, counter, extractor.window_tokens)
        call = CallSegments.of(windows)
        key = _cache_key(item, extractor)
        if key not in cache:
            cache[key] = extractor.signals(item.query, call)
            fresh += 1
            if cache_file is not None and fresh % 100 == 0:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                cache_file.write_bytes(pickle.dumps(cache))
        live = cache[key].live
        rows = ranker_features(item.query, call, cache[key])
        tag_of = np.array(
            [offsets[windows[int(w)].document_index] + windows[int(w)].first_tag + int(t) - 1
             for w, t in zip(call.window, call.tag, strict=True)],
            dtype=np.int64,
        )
        tokens = np.array(counter.count_many(call.texts), dtype=np.int64) if len(call) else np.zeros(0, np.int64)
        labels = np.array([int(tag_of[i]) in gold for i in live], dtype=bool)
        examples.append(
            Example(item, source, call, live, rows, labels, tag_of, tokens, gold, int(tokens.sum()))
        )
        if n % 50 == 0:
            logger.info("featurized %d/%d items (%.0f s)", n, len(items), time.perf_counter() - started)
    if cache_file is not None and fresh:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_bytes(pickle.dumps(cache))
    return examples


class _RememberingRanker(RankerExtractor):
    """The ranker's feature path, with every text's vector kept for the run: an item's no-answer twin
    (and items sharing paragraphs) re-use them instead of encoding again. Same vectors, same features."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._vectors: dict[str, np.ndarray] = {}

    def _encode(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if todo:
            self._vectors.update(zip(todo, super()._encode(todo), strict=True))
        return np.stack([self._vectors[t] for t in texts]) if texts else super()._encode(texts)


# --- the ranker model -------------------------------------------------------------------------------


def _groups(examples: Sequence[Example]) -> np.ndarray:
    """One group per question (an item and its negative twin share it)."""
    ids = [ex.item.id.removesuffix("/neg") for ex in examples]
    index = {k: i for i, k in enumerate(dict.fromkeys(ids))}
    return np.array([index[k] for k in ids])


def fit_ranker(
    examples: Sequence[Example], features: Sequence[str], *, hidden: int = 16, members: int = 3
) -> tuple[RankerModel, dict[str, float]]:
    """An ensemble of ``members`` networks with one hidden layer of ``hidden`` ReLU units (sklearn's
    ``MLPClassifier``, seeds 0..members-1, early stopping on a held-back tenth), on standardised
    features. Returns the model (its rule still the default) and the grouped 5-fold cross-validated
    log loss of one such network next to logistic regression's (the simpler model it has to beat)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import GroupKFold
    from sklearn.neural_network import MLPClassifier

    columns = [FEATURE_NAMES.index(f) for f in features]
    usable = [ex for ex in examples if ex.rows.size]
    x = np.vstack([ex.rows[:, columns] for ex in usable])
    y = np.concatenate([ex.labels for ex in usable]).astype(int)
    groups = np.concatenate([np.full(len(ex.rows), g) for ex, g in zip(usable, _groups(usable), strict=True)])
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale

    def network(seed: int) -> Any:
        return MLPClassifier(
            hidden_layer_sizes=(hidden,), alpha=1e-3, max_iter=500, early_stopping=True, random_state=seed
        )

    candidates = {"logistic regression": lambda: LogisticRegression(max_iter=5000), f"network ({hidden} hidden)": lambda: network(0)}
    losses: dict[str, float] = {}
    for name, make in candidates.items():
        predicted = np.zeros(len(y))
        for train, test in GroupKFold(n_splits=5).split(z, y, groups):
            predicted[test] = make().fit(z[train], y[train]).predict_proba(z[test])[:, 1]
        losses[name] = float(log_loss(y, predicted))
    fitted = [network(seed).fit(z, y) for seed in range(members)]
    model = RankerModel(
        features=tuple(features),
        mean=mean,
        scale=scale,
        members=tuple(
            tuple(Layer(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
                  for w, b in zip(net.coefs_, net.intercepts_, strict=True))
            for net in fitted
        ),
        rule=SelectionRule(),
        info={"hidden": hidden, "members": members, "rows": int(len(y)), "positive_rows": int(y.sum())},
    )
    return model, losses


# --- rules ------------------------------------------------------------------------------------------

Scorer = Callable[[Example], np.ndarray]
"""Flat scores of an example's call (NaN where not scored)."""


def _flat(ex: Example, values: np.ndarray) -> np.ndarray:
    scores = np.full(len(ex.call), np.nan)
    scores[ex.live] = values
    return scores


def scorer_of(name: str, model: RankerModel | None = None, weight: float = 0.5) -> Scorer:
    cos = FEATURE_NAMES.index("cos_context")
    lexical = FEATURE_NAMES.index("lexical_context")
    if name == "ranker":
        assert model is not None
        return lambda ex: _flat(ex, model.probability(ex.rows)) if ex.rows.size else _flat(ex, np.zeros(0))
    if name == "embedding":
        return lambda ex: _flat(ex, ex.rows[:, cos] if ex.rows.size else np.zeros(0))
    if name == "bm25":
        return lambda ex: _flat(ex, ex.rows[:, lexical] if ex.rows.size else np.zeros(0))
    if name == "hybrid":
        return lambda ex: _flat(
            ex, hybrid_scores(ex.rows[:, cos], ex.rows[:, lexical], weight) if ex.rows.size else np.zeros(0)
        )
    raise ValueError(name)


@dataclass
class Outcome:
    f1: float
    negative_em: float
    kept_ratio: float
    objective: float
    rule: SelectionRule


def _selected(ex: Example, scores: np.ndarray, rule: SelectionRule, neighbours: bool) -> dict[int, float]:
    chosen = select_call(scores, ex.call, rule)
    return with_neighbours(chosen, ex.call) if neighbours else chosen


def _item_f1(ex: Example, chosen: dict[int, float]) -> float:
    selected = {int(ex.tag_of[i]) for i in chosen}
    hit = len(selected & ex.gold)
    return 2 * hit / (len(selected) + len(ex.gold)) if hit else 0.0


def evaluate_rule(
    examples: Sequence[Example], scores: Sequence[np.ndarray], rule: SelectionRule, *, neighbours: bool,
    negative_weight: float,
) -> Outcome:
    f1s, ems, kept, content = [], [], 0, 0
    for ex, s in zip(examples, scores, strict=True):
        chosen = _selected(ex, s, rule, neighbours)
        kept += int(sum(ex.tokens[i] for i in chosen))
        content += ex.content_tokens
        if ex.negative:
            ems.append(0.0 if chosen else 1.0)
        else:
            f1s.append(_item_f1(ex, chosen))
    f1 = float(np.mean(f1s)) if f1s else 0.0
    em = float(np.mean(ems)) if ems else 1.0
    return Outcome(f1, em, kept / content if content else 0.0, f1 + negative_weight * em, rule)


def fit_rule(
    examples: Sequence[Example], scores: Sequence[np.ndarray], name: str, *, neighbours: bool,
    negative_weight: float, max_kept: float,
) -> Outcome:
    """The grid's best rule. The floor only gates whole calls, so each (min_score, margin, budget,
    per_document) is simulated once with no floor and every floor is then read off the calls' best
    scores."""
    best_of = [float(np.nanmax(s[ex.call.candidate])) if np.any(ex.call.candidate & ~np.isnan(s)) else -math.inf
               for ex, s in zip(examples, scores, strict=True)]
    positive = np.array([not ex.negative for ex in examples])
    sources = [np.array([ex.source == name for ex in examples]) for name in sorted({ex.source for ex in examples})]
    content = np.array([ex.content_tokens for ex in examples], dtype=float)
    best: Outcome | None = None
    for min_score, margin, budget, per_document in itertools.product(
        GRID_MIN_SCORE[name], GRID_MARGIN, GRID_BUDGET, GRID_PER_DOCUMENT
    ):
        if per_document > budget:
            continue
        rule = SelectionRule(min_score=min_score, margin=margin, budget=budget, per_document=per_document)
        f1 = np.zeros(len(examples))
        kept = np.zeros(len(examples))
        empty = np.zeros(len(examples), dtype=bool)
        for k, (ex, s) in enumerate(zip(examples, scores, strict=True)):
            chosen = _selected(ex, s, rule, neighbours)
            empty[k] = not chosen
            kept[k] = sum(ex.tokens[i] for i in chosen)
            if positive[k]:
                f1[k] = _item_f1(ex, chosen)
        for floor in GRID_FLOOR[name]:
            passes = np.array([b >= floor for b in best_of])
            per_source = [_source_outcome(f1, kept, content, passes, empty, positive & m, ~positive & m)
                          for m in sources]
            if max(ratio for _, _, ratio in per_source) > max_kept:
                continue
            objective = float(np.mean([f + negative_weight * e for f, e, _ in per_source]))
            if best is None or objective > best.objective + 1e-9:
                full = SelectionRule(floor=float(floor), min_score=min_score, margin=margin, budget=budget,
                                     per_document=per_document)
                mean_f1 = float((f1 * passes)[positive].mean()) if positive.any() else 0.0
                em = float((~passes | empty)[~positive].mean()) if (~positive).any() else 1.0
                best = Outcome(mean_f1, em, float((kept * passes).sum() / content.sum()), objective, full)
    if best is None:
        raise InputError(f"no {name} rule keeps under {max_kept:.0%} of the content tokens")
    return best


def _source_outcome(
    f1: np.ndarray, kept: np.ndarray, content: np.ndarray, passes: np.ndarray, empty: np.ndarray,
    positives: np.ndarray, negatives: np.ndarray,
) -> tuple[float, float, float]:
    """(mean F1, negative EM, kept/content) of one training source under a floor's ``passes``."""
    mean_f1 = float((f1 * passes)[positives].mean()) if positives.any() else 0.0
    em = float((~passes | empty)[negatives].mean()) if negatives.any() else 1.0
    own = positives | negatives
    total = float(content[own].sum())
    return mean_f1, em, float((kept * passes)[own].sum() / total) if total else 0.0


# --- report -----------------------------------------------------------------------------------------


def _rule_text(rule: SelectionRule) -> str:
    return (f"SelectionRule(floor={rule.floor:g}, min_score={rule.min_score:g}, margin={rule.margin:g}, "
            f"budget={rule.budget}, per_document={rule.per_document})")


def _by_source(examples: Sequence[Example]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for k, ex in enumerate(examples):
        out.setdefault(ex.source, []).append(k)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evals.calibrate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=data_source, action="append", required=True, metavar="[NAME=]PATH",
                    help="training items in the HotpotQA distractor or Hugging Face layout (dev items only); "
                    "repeatable; files given the same NAME count as one source in the rule's objective")
    ap.add_argument("--no-needles", action="store_true",
                    help="train without NeedleBench's calib split (by default its grid, as the needle suite builds it)")
    ap.add_argument("--negatives", type=float, default=0.25, help="share of no-answer items (default 0.25)")
    ap.add_argument("--negative-weight", type=float, default=0.1,
                    help="weight of negative exact match against mean F1 in the objective (default 0.1)")
    ap.add_argument("--max-kept", type=float, default=0.10, help="cap on kept/content tokens (default 0.10)")
    ap.add_argument("--no-neighbours", action="store_true", help="fit without the neighbour rule")
    ap.add_argument("--cache", type=Path, default=Path("runs/calibrate-cache"))
    ap.add_argument("--model", type=Path, default=None, help="write the fitted ranker model here (JSON)")
    ap.add_argument("--report", type=Path, default=Path("runs/calibrate/calibration.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    neighbours = not args.no_neighbours

    extractor = _RememberingRanker(model=RankerModel.untrained(), shortlist_size=256)
    counter = extractor.token_counter
    train = featurize(training_items(args.data, not args.no_needles, args.negatives), extractor, counter, args.cache)
    held = featurize(held_out_items(0.2), extractor, counter, args.cache)
    logger.info("%d training items, %d held-out items", len(train), len(held))

    model, losses = fit_ranker(train, FEATURE_NAMES)
    fits: dict[str, Outcome] = {}
    weights = {"hybrid": 0.5}
    for name in ("ranker", "embedding", "bm25", "hybrid"):
        if name == "hybrid":
            options = []
            for w in GRID_HYBRID_WEIGHT:
                scores = [scorer_of("hybrid", weight=w)(ex) for ex in train]
                options.append((fit_rule(train, scores, name, neighbours=neighbours,
                                         negative_weight=args.negative_weight, max_kept=args.max_kept), w))
            fits[name], weights["hybrid"] = max(options, key=lambda o: o[0].objective)
        else:
            scores = [scorer_of(name, model)(ex) for ex in train]
            fits[name] = fit_rule(train, scores, name, neighbours=neighbours,
                                  negative_weight=args.negative_weight, max_kept=args.max_kept)
        logger.info("%s: %s", name, _rule_text(fits[name].rule))
    model = RankerModel(model.features, model.mean, model.scale, model.members, fits["ranker"].rule,
                        {**model.info, "trained_on": sorted({ex.source for ex in train}),
                         "command": "python -m evals.calibrate " + " ".join(sys.argv[1:] if argv is None else argv)})
    if args.model:
        model.save(args.model)

    lines = ["# Calibration of the scorer backends", "",
             f"Command: `python -m evals.calibrate {' '.join(sys.argv[1:] if argv is None else argv)}`", "",
             f"Training items: {len(train)} ({', '.join(f'{k}: {len(v)}' for k, v in _by_source(train).items())}); "
             f"held out: {len(held)} ({', '.join(f'{k}: {len(v)}' for k, v in _by_source(held).items())}). "
             f"Objective: mean tag F1 + {args.negative_weight} x negative EM, averaged over the training sources, "
             f"each keeping <= {args.max_kept:.0%} of its content tokens; neighbour rule {'on' if neighbours else 'off'}.", "",
             f"Ranker: {model.info['members']} networks of {model.info['hidden']} hidden units, probabilities "
             f"averaged, over {len(model.features)} features ({', '.join(model.features)}); fitted on "
             f"{model.info['rows']} candidate rows ({model.info['positive_rows']} gold). Grouped 5-fold "
             "cross-validated log loss: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()) + "."]
    lines += ["", "| backend | rule | train F1 | train neg EM | train kept |", "|---|---|---|---|---|"]
    for name, fit in fits.items():
        extra = f" (weight {weights['hybrid']})" if name == "hybrid" else ""
        lines.append(f"| {name}{extra} | `{_rule_text(fit.rule)}` | {fit.f1:.3f} | {fit.negative_em:.3f} | {fit.kept_ratio:.3f} |")
    lines += ["", "Held out (never fitted on), same simulation:", "",
              "| backend | data | F1 | negative EM | kept/content |", "|---|---|---|---|---|"]
    for name, fit in fits.items():
        scorer = scorer_of(name, model, weights["hybrid"])
        for source, idx in _by_source(held).items():
            subset = [held[k] for k in idx]
            out = evaluate_rule(subset, [scorer(ex) for ex in subset], fit.rule, neighbours=neighbours,
                                negative_weight=args.negative_weight)
            lines.append(f"| {name} | {source} | {out.f1:.3f} | {out.negative_em:.3f} | {out.kept_ratio:.3f} |")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
