"""Keep third-party log lines and load-progress bars out of the terminal unless ``-v``."""

from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY = ("transformers", "huggingface_hub", "jieba", "open_clip", "urllib3", "httpx", "chromadb", "PIL", "matplotlib")


def quiet_transformers() -> None:
    """transformers' warnings and load bars off, never importing it (the offline path loads no
    torch stack): its environment settings, read when it is imported, and its own switches
    when it already is."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def quiet_libraries(verbose: bool) -> None:
    if verbose:
        return
    quiet_transformers()
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import jieba

        jieba.setLogLevel(logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
