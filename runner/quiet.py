"""Third-party output kept off the user's terminal: warnings, log records and progress bars of torch,
transformers, peft, bitsandbytes and the rest go to a log file while the work that causes them runs here.

The training process needs none of this: its whole output already goes to the run's worker.log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

__all__ = ["THIRD_PARTY_LOGGERS", "third_party_output_to"]

#: The libraries whose log records go to the file (their child loggers follow them).
THIRD_PARTY_LOGGERS = ("transformers", "peft", "bitsandbytes", "accelerate", "datasets", "huggingface_hub",
                       "torch", "tokenizers", "safetensors", "urllib3", "filelock", "httpx")


def _no_progress_bars() -> None:
    # the environment variable covers libraries imported later; the calls, those already imported
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils.tqdm import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


@contextmanager
def third_party_output_to(log_path: str | Path) -> Iterator[Path]:
    """While inside, third-party warnings, log records and anything written to sys.stderr are appended to
    `log_path` (created with its folder) instead of reaching the terminal, and progress bars are off. Our own
    messages go to streams the callers hold (stdout, or the stderr object they took before)."""
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stream: TextIO = path.open("a", encoding="utf-8")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved: list[tuple[logging.Logger, bool]] = []
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
    # transformers keeps a stderr handler of its own on its root logger, made when it is first imported
    from transformers.utils import logging as hf_logging

    hf_logging.disable_default_handler()
    _no_progress_bars()

    def to_log(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
               line: str | None = None) -> None:
        stream.write(warnings.formatwarning(message, category, filename, lineno, line))
        stream.flush()

    try:
        # progress bars made with tqdm directly (GGUF loading) write to whatever sys.stderr is when they start
        with warnings.catch_warnings(), contextlib.redirect_stderr(stream):
            warnings.showwarning = to_log  # the filters stay as they are (an "error" filter still raises)
            yield path
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
        hf_logging.enable_default_handler()
        stream.close()
