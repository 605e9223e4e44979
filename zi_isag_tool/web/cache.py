"""On-disk cache of converted pages, keyed by URL, with an expiry.

One JSON file per URL (``<dir>/<2 hex>/<sha256>.json``), written atomically. Unreadable or expired
entries are removed and count as a miss; a cache that cannot be written only logs a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_FORMAT = 1


class PageCache:
    def __init__(self, directory: Path, ttl: float) -> None:
        self.directory = Path(directory).expanduser()
        self.ttl = ttl

    def _path(self, url: str) -> Path:
        digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()
        return self.directory / digest[:2] / f"{digest}.json"

    def get(self, url: str) -> dict[str, Any] | None:
        """The stored record for ``url`` if present and fresh, else None."""
        path = self._path(url)
        try:
            with path.open("r", encoding="utf-8") as fh:
                record = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("dropping unreadable cache entry %s: %s", path.name, type(exc).__name__)
            self._remove(path)
            return None
        if (
            not isinstance(record, dict)
            or record.get("format") != _FORMAT
            or record.get("url") != url
            or not isinstance(record.get("stored_at"), (int, float))
        ):
            self._remove(path)
            return None
        if time.time() - record["stored_at"] > self.ttl:
            self._remove(path)
            return None
        return record

    def put(self, url: str, record: dict[str, Any]) -> None:
        path = self._path(url)
        data = {**record, "format": _FORMAT, "url": url, "stored_at": time.time()}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, ensure_ascii=False)
                os.replace(tmp, path)
            except BaseException:
                self._remove(Path(tmp))
                raise
        except OSError as exc:
            logger.warning("could not write the page cache in %s: %s", self.directory, exc)

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass
