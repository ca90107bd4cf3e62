"""The registry builds the usable tools and drops the others with a reason, loading no model."""

from __future__ import annotations

from pathlib import Path

from langchain_core.tools import BaseTool

from vlagent.models import loading
from vlagent.agent.registry import build_tools, builtin_tools, probe_all

VISION_TOOLS = ["ocr", "colors", "caption", "vqa"]


def build_vision_tools(ctx):  # type: ignore[no-untyped-def]
    tools, dropped = build_tools(builtin_tools(), ctx, only=VISION_TOOLS)
    return list(tools.values()), dropped


def test_missing_models_drop_caption_and_vqa(vision_ctx, tmp_path: Path) -> None:
    missing = tmp_path / "no-blip-here"
    ctx = vision_ctx(caption_model=str(missing), vqa_backend="none")
    loaded_before = loading.loaded_keys()
    tools, dropped = build_vision_tools(ctx)
    assert [t.name for t in tools] == ["ocr", "colors"]
    assert set(dropped) == {"caption", "vqa"}
    assert str(missing) in dropped["caption"] and "VLAGENT_CAPTION_MODEL" in dropped["caption"]
    assert "VLAGENT_VQA_BACKEND=none" in dropped["vqa"]
    assert all("\n" not in why for why in dropped.values())
    assert loading.loaded_keys() == loaded_before  # probes load nothing


def test_all_four_with_local_models(vision_ctx, tiny_blip_dir: Path, tiny_qwen2vl_dir: Path) -> None:
    ctx = vision_ctx(caption_model=str(tiny_blip_dir), vqa_model=str(tiny_qwen2vl_dir))
    tools, dropped = build_vision_tools(ctx)
    assert dropped == {}
    assert [t.name for t in tools] == list(VISION_TOOLS) == ["ocr", "colors", "caption", "vqa"]
    for tool in tools:
        assert isinstance(tool, BaseTool)
        assert tool.response_format == "content_and_artifact"
        assert tool.args_schema is not None and tool.description


def test_offline_profile_keeps_ocr_and_colors(vision_ctx) -> None:
    ctx = vision_ctx(profile="offline")
    reasons = probe_all(builtin_tools(), ctx)
    assert reasons["ocr"] is None and reasons["colors"] is None
    assert reasons["caption"] and reasons["vqa"]
    tools, dropped = build_vision_tools(vision_ctx(ocr_backend="none", caption_backend="none", vqa_backend="none"))
    assert [t.name for t in tools] == ["colors"] and set(dropped) == {"ocr", "caption", "vqa"}
