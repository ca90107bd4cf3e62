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


def test_every_setting_belongs_to_one_group_and_keeps_its_environment_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from vlagent.settings import GROUPS

    groups = Settings.groups()
    names = [n for fields in groups.values() for n in fields]
    assert sorted(names) == sorted(Settings.model_fields) and len(names) == len(set(names))  # each exactly once
    assert "llm_structured_method" in groups["llm"] and "llm_chat_format" in groups["llm"]  # not under serving
    assert "question_max_chars" in groups["agent"] and "checkpoint_path" in groups["agent"]  # not under web
    picks = {
        "machine": ("device", "cuda:1"), "index": ("dataset", "shop"), "text_index": ("index_workers", "3"),
        "ray": ("ray_num_cpus", "3"), "clip": ("clip_batch_size", "7"), "match": ("match_min_catalogue", "9"),
        "caption": ("caption_num_beams", "2"), "vqa": ("vqa_max_new_tokens", "64"), "ocr": ("ocr_det_side", "960"),
        "llm": ("llm_parallel", "3"), "classifier": ("classifier_timeout", "2.5"), "agent": ("question_max_chars", "100"),
        "recommend": ("recommend_colors", "3"), "serve": ("serve_llm_port", "9000"), "web": ("web_ui_port", "7000"),
    }  # fmt: skip
    assert set(picks) == set(GROUPS)
    for key, (name, value) in picks.items():  # one setting of each group, from its old environment variable
        assert name in groups[key]
        monkeypatch.setenv(f"VLAGENT_{name.upper()}", value)
        assert str(getattr(Settings(), name)) == value, name
