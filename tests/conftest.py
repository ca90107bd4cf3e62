"""Shared test setup. Nothing here may reach a model hub: HF offline mode is forced."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

# Session fixtures live in one plugin module per area (each builds its models once).
pytest_plugins = [
    "fixtures_data",
    "fixtures_clip",
    "fixtures_vision",
    "fixtures_llm",
    "fixtures_ray",
]
