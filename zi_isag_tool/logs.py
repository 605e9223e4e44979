"""Logging and progress bars for the command-line entry points (``zi-isag``, the MCP server).

Library code only logs; the entry points decide what reaches stderr. Without ``verbose``:
- the HTML/PDF libraries are silent: their errors ("empty HTML tree", "Document is empty") are
  about one page, which conversion already handles (plain-text fallback, a per-source status);
- other third-party libraries (model loading, HTTP clients) log WARNING and above only;
- no progress bar is drawn when stderr is not a terminal, or when ``progress=False`` (MCP stdio,
  whose client shows the server's stderr as a log).
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = [
    "PAGE_LIBRARIES",
    "THIRD_PARTY",
    "setup_logging",
    "quiet_third_party",
    "third_party_levels",
    "set_levels",
    "disable_progress_bars",
]

PAGE_LIBRARIES = ("trafilatura", "htmldate", "courlan", "justext", "readability", "charset_normalizer", "pypdf")
THIRD_PARTY = (
    "transformers", "sentence_transformers", "huggingface_hub", "peft", "accelerate", "torch", "filelock",
    "httpx", "httpcore", "urllib3", "openai", "tavily",
)  # fmt: skip


def setup_logging(
    level: int | str = logging.WARNING,
    *,
    verbose: bool = False,
    progress: bool | None = None,
    fmt: str = "%(levelname)s %(name)s: %(message)s",
) -> None:
    """Log to stderr at ``level``; third parties as described in the module docstring.

    ``progress``: None draws bars only on an interactive stderr; False never.
    """
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)
    if not verbose:
        quiet_third_party()
    if progress is False or (progress is None and not _interactive(sys.stderr)):
        disable_progress_bars()


def quiet_third_party() -> None:
    """Silence the page libraries and keep other third parties at WARNING and above."""
    for name in PAGE_LIBRARIES:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    for name in THIRD_PARTY:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def third_party_levels() -> dict[str, int]:
    """The levels set here on third-party loggers, for a worker process to set the same."""
    loggers = {name: logging.getLogger(name) for name in (*PAGE_LIBRARIES, *THIRD_PARTY)}
    return {name: logger.level for name, logger in loggers.items() if logger.level != logging.NOTSET}


def set_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def disable_progress_bars() -> None:
    """No tqdm bars from Hugging Face libraries (model loading) or any tqdm that reads the environment."""
    # Read when these libraries are imported (and by every later child process) ...
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    # ... and switched off in the ones already imported.
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars as hub_off

        hub_off()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()


def _interactive(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False
