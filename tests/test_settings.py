"""Settings: env prefix, config files (TOML, YAML), profiles, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from vlagent.settings import OFFLINE_GGUF_NAME, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("VLAGENT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no ./vlagent.toml or .env from elsewhere


def test_defaults_name_the_real_hub_models(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert s.profile == "hub"
    assert s.clip_model == "OFA-Sys/chinese-clip-vit-base-patch16"
    assert s.caption_model == "Salesforce/blip-image-captioning-base"
    assert s.vqa_model == "Qwen/Qwen2-VL-2B-Instruct"
    assert s.resolved_index_path == tmp_path / "index"
    assert s.resolved_gguf == tmp_path / "models" / OFFLINE_GGUF_NAME


def test_env_prefix_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLAGENT_CLIP_MODEL", "/models/cn-clip")
    monkeypatch.setenv("VLAGENT_CLIP_BATCH_SIZE", "7")
    monkeypatch.setenv("VLAGENT_CHROMA_URL", "http://127.0.0.1:8000")
    s = Settings()
    assert (s.clip_model, s.clip_batch_size, s.chroma_url) == ("/models/cn-clip", 7, "http://127.0.0.1:8000")
    monkeypatch.setenv("VLAGENT_CLIP_BATCH_SIZE", "zero")
    with pytest.raises(ValidationError, match="clip_batch_size"):
        Settings()


def test_offline_profile_defaults_yield_to_explicit_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLAGENT_PROFILE", "offline")
    s = Settings()
    assert (s.llm_backend, s.vqa_backend, s.caption_backend) == ("llama-cpp", "none", "none")
    monkeypatch.setenv("VLAGENT_VQA_BACKEND", "openai")
    assert Settings().vqa_backend == "openai"
    assert Settings(llm_backend="openai").llm_backend == "openai"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("conf.toml", 'profile = "offline"\nclip_model = "/m/clip"\ndataset = "shop"\n'),
        ("conf.yaml", "profile: offline\nclip_model: /m/clip\ndataset: shop\n"),
    ],
)
def test_config_file_toml_or_yaml_under_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("VLAGENT_CONFIG", str(path))
    s = Settings()
    assert (s.profile, s.clip_model, s.dataset, s.llm_backend) == ("offline", "/m/clip", "shop", "llama-cpp")
    monkeypatch.setenv("VLAGENT_DATASET", "from-env")
    assert Settings().dataset == "from-env"  # env wins over the file


def test_local_vlagent_toml_is_read(tmp_path: Path) -> None:
    (tmp_path / "vlagent.toml").write_text('dataset = "local"\n', encoding="utf-8")
    assert Settings().dataset == "local"
