"""BLIP captioning through the real loading code, on a tiny random BLIP saved locally."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vlagent.models import caption
from vlagent.errors import ToolUnavailable
from vlagent.tools.caption import CaptionTool
from vlagent.tools.caption import make_caption_tool


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("caption-images")
    paths = []
    for i, colour in enumerate([(200, 20, 30), (20, 30, 70), (240, 200, 0)]):
        path = out / f"img{i}.png"
        Image.new("RGB", (120 + 40 * i, 90), colour).save(path)
        paths.append(str(path))
    return paths


def blip_ctx(vision_ctx, model_dir: Path):  # type: ignore[no-untyped-def]
    return vision_ctx(caption_model=str(model_dir), caption_max_new_tokens=8, caption_num_beams=1)


def call(tool: CaptionTool, **args):  # type: ignore[no-untyped-def]
    return tool.invoke({"type": "tool_call", "name": "caption", "args": args, "id": "c1"})


def test_caption_returns_english_text_and_says_so(vision_ctx, tiny_blip_dir: Path, images: list[str]) -> None:
    tool = make_caption_tool(blip_ctx(vision_ctx, tiny_blip_dir))
    assert tool.name == "caption" and set(tool.args) == {"image", "style", "lang"}
    msg = call(tool, image=images[0])
    art = msg.artifact
    assert isinstance(msg.content, str) and isinstance(art["caption"], str)
    assert art["caption"].strip()  # the random model still writes tokens
    assert art["lang"] == "en" and art["requested_lang"] == "zh" and "English" in art["note"]
    assert "English caption" in msg.content and art["caption"] in msg.content
    assert art["style"] == "concise" and art["model"] == str(tiny_blip_dir)
    en = call(tool, image=images[0], lang="en")
    assert en.content == en.artifact["caption"] and "note" not in en.artifact


def test_detailed_style_drops_the_prompt(vision_ctx, tiny_blip_dir: Path, images: list[str]) -> None:
    tool = make_caption_tool(blip_ctx(vision_ctx, tiny_blip_dir))
    art = call(tool, image=images[1], style="detailed", lang="en").artifact
    assert art["style"] == "detailed"
    assert not art["caption"].lower().startswith("a photography of")
    assert len(art["caption"].split()) >= 12  # min_new_tokens of the detailed style (2 x 8 > 12)


def test_second_call_does_no_model_work(vision_ctx, tiny_blip_dir: Path, images: list[str]) -> None:
    ctx = blip_ctx(vision_ctx, tiny_blip_dir)
    tool = make_caption_tool(ctx)
    first = call(tool, image=images[2])
    engine = caption.engine(ctx.settings)
    calls = engine.calls
    again = call(tool, image=images[2])
    assert engine.calls == calls
    assert again.artifact == first.artifact and ctx.cache.hits == 1
    call(tool, image=images[2], style="detailed")  # another style is another cache entry
    assert engine.calls == calls + 1


def test_caption_many_batches_the_misses(vision_ctx, tiny_blip_dir: Path, images: list[str]) -> None:
    ctx = blip_ctx(vision_ctx, tiny_blip_dir)
    tool = make_caption_tool(ctx)
    single = call(tool, image=images[1]).artifact
    engine = caption.engine(ctx.settings)
    calls = engine.calls
    many = tool.caption_many(images)
    assert engine.calls == calls + 1  # the two uncached images went through in one batch
    assert [a["caption"] for a in many][1] == single["caption"]
    assert all(isinstance(a["caption"], str) and a["caption"] for a in many)
    assert tool.caption_many(images) == many and engine.calls == calls + 1


def test_probe_reasons(vision_ctx, tmp_path: Path, tiny_blip_dir: Path) -> None:
    assert caption.probe(blip_ctx(vision_ctx, tiny_blip_dir).settings) is None
    missing = caption.probe(vision_ctx(caption_model=str(tmp_path / "no-such-dir")).settings)
    assert missing and "does not exist" in missing and "VLAGENT_CAPTION_MODEL" in missing
    uncached = caption.probe(vision_ctx(caption_model="Salesforce/blip-image-captioning-base").settings)
    assert uncached and "not in the HF cache" in uncached  # tests run with HF_HUB_OFFLINE=1
    assert "none" in (caption.probe(vision_ctx(caption_backend="none").settings) or "")


def test_broken_model_dir_is_one_line_tool_unavailable(vision_ctx, tmp_path: Path, images: list[str]) -> None:
    broken = tmp_path / "broken-blip"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "blip"}')  # passes the probe, cannot load
    tool = make_caption_tool(vision_ctx(caption_model=str(broken)))
    with pytest.raises(ToolUnavailable) as err:
        call(tool, image=images[0])
    message = str(err.value)
    assert "\n" not in message and str(broken) in message and "could not load" in message
