"""Data that ships with the package, and the readers and item builders that use it.

The files live under ``files/`` (package data, in the wheel), each folder with its ``LICENSE`` and a
``README.md`` naming its source. They are the defaults of the evals, the tests and the training
recipe, so every suite runs from a fresh clone or an installed wheel; larger third-party benchmarks
are not bundled and are passed with ``--data``.

>>> bundled("needlebench").path.name
'needlebench'
>>> HOTPOTQA_DEV_SAMPLE.exists()
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from zi_isag_tool.errors import InputError

__all__ = [
    "DATA_ROOT",
    "NEEDLEBENCH_DIR",
    "UPSTREAM_EXAMPLES_DIR",
    "HOTPOTQA_DEV_SAMPLE",
    "BundledDataset",
    "BUNDLED",
    "bundled",
]

DATA_ROOT = Path(__file__).resolve().parent / "files"
"""The folder holding every bundled data set (one sub-folder each)."""


@dataclass(frozen=True, slots=True)
class BundledDataset:
    """One bundled data set: its folder, the file (or folder) loaders read by default, and its terms."""

    name: str
    path: Path
    default: Path
    licence: str
    """SPDX identifier(s) of the licence; ``LICENSE`` and ``README.md`` in ``path`` say more."""
    source: str

    def file(self, name: str) -> Path:
        """A file of the data set, checked to exist (``InputError`` naming what is there otherwise)."""
        found = self.path / name
        if not found.is_file():
            present = ", ".join(sorted(p.name for p in self.path.iterdir())) if self.path.is_dir() else "nothing"
            raise InputError(f"bundled data set {self.name!r} has no file {name!r} (it holds: {present})")
        return found


BUNDLED: Mapping[str, BundledDataset] = MappingProxyType({
    ds.name: ds
    for ds in (
        BundledDataset(
            name="needlebench",
            path=DATA_ROOT / "needlebench",
            default=DATA_ROOT / "needlebench",
            licence="Apache-2.0",
            source="OpenCompass NeedleBench (English) via ZI-ISAG; essays by Paul Graham; "
            "multi-hop items derived from HotpotQA (CC-BY-SA-4.0)",
        ),
        BundledDataset(
            name="upstream_examples",
            path=DATA_ROOT / "upstream_examples",
            default=DATA_ROOT / "upstream_examples",
            licence="Apache-2.0",
            source="ZI-ISAG's example pipeline files",
        ),
        BundledDataset(
            name="hotpotqa",
            path=DATA_ROOT / "hotpotqa",
            default=DATA_ROOT / "hotpotqa" / "hotpot_dev_distractor_first100.json",
            licence="CC-BY-SA-4.0",
            source="HotpotQA dev, distractor setting, first 100 items (Yang et al., EMNLP 2018)",
        ),
    )
})

NEEDLEBENCH_DIR = BUNDLED["needlebench"].path
UPSTREAM_EXAMPLES_DIR = BUNDLED["upstream_examples"].path
HOTPOTQA_DEV_SAMPLE = BUNDLED["hotpotqa"].default


def bundled(name: str) -> BundledDataset:
    """The bundled data set ``name`` (``needlebench``, ``upstream_examples``, ``hotpotqa``)."""
    try:
        return BUNDLED[name]
    except KeyError:
        raise InputError(f"no bundled data set {name!r}; there are {', '.join(BUNDLED)}") from None
