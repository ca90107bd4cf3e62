"""CLIP encoders: every tiny model family loads from its local path through the real loader."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from fixtures_clip import OPEN_CLIP_NAME, TINY_DIM
from fixtures_data import Catalogue
from PIL import Image

from vlagent.errors import ModelLoadError
from vlagent.models.clip import ClipEncoder, _features, load_clip_encoder
from vlagent.models.clip import encoder_from_settings

FAMILIES = ["chinese_clip", "clip", "open_clip", "open_clip_dir"]
TEXTS = ["红色连衣裙女夏季长裙", "蓝色男士衬衫长袖纯棉", "黄色半身裙,百褶短裙", "red dress", "你好"]


@pytest.fixture(scope="module")
def encoders(tiny_clip: dict[str, tuple[str, str | None]]) -> dict[str, ClipEncoder]:
    return {
        family: load_clip_encoder(model, pretrained, device="cpu", batch_size=8)
        for family, (model, pretrained) in tiny_clip.items()
    }


@pytest.fixture(scope="module")
def images(catalogue: Catalogue) -> list[Image.Image]:
    from vlagent.data.images import open_source

    with open_source(catalogue.folder) as source:
        return [source.open(name) for name in source]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails loudly."""

    def refuse(self: socket.socket, address: object) -> None:
        raise AssertionError(f"network access attempted: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def assert_unit_rows(x: np.ndarray, rows: int) -> None:
    assert x.dtype == np.float32
    assert x.shape == (rows, TINY_DIM)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_from_local_path(family: str, encoders: dict[str, ClipEncoder], tiny_clip) -> None:
    enc = encoders[family]
    model, pretrained = tiny_clip[family]
    assert enc.dim == TINY_DIM
    backend = "transformers" if family in {"chinese_clip", "clip"} else "open_clip"
    assert enc.model_id.startswith(f"{backend}:{model}")
    if pretrained:
        assert enc.model_id == f"open_clip:{model}:{pretrained}"


@pytest.mark.parametrize("family", FAMILIES)
def test_image_vectors(family: str, encoders: dict[str, ClipEncoder], images: list[Image.Image]) -> None:
    x = encoders[family].encode_images(images)
    assert_unit_rows(x, len(images))
    assert len({row.tobytes() for row in x}) == len(images)  # distinct images, distinct vectors


@pytest.mark.parametrize("family", FAMILIES)
def test_text_vectors_chinese_and_english(family: str, encoders: dict[str, ClipEncoder]) -> None:
    x = encoders[family].encode_texts(TEXTS)
    assert_unit_rows(x, len(TEXTS))
    assert len({row.round(5).tobytes() for row in x}) == len(TEXTS)
    scores = encoders[family].encode_images([Image.new("RGB", (40, 60), "red")]) @ x.T
    assert scores.shape == (1, len(TEXTS))  # images and texts share one space


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_equals_unbatched(
    family: str, encoders: dict[str, ClipEncoder], images: list[Image.Image],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    enc = encoders[family]
    monkeypatch.setattr(enc, "batch_size", 8)
    images = images[:6]
    img8, txt8 = enc.encode_images(images), enc.encode_texts(TEXTS)
    monkeypatch.setattr(enc, "batch_size", 1)
    img1, txt1 = enc.encode_images(images), enc.encode_texts(TEXTS)
    np.testing.assert_allclose(img1, img8, atol=1e-5)
    np.testing.assert_allclose(txt1, txt8, atol=1e-5)  # padding inside a batch changes nothing


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_and_empty(family: str, encoders: dict[str, ClipEncoder], images) -> None:
    enc = encoders[family]
    first, second = enc.encode_images(images[:2]), enc.encode_images(images[:2])
    assert np.array_equal(first, second)
    assert np.array_equal(enc.encode_texts(["红色连衣裙"]), enc.encode_texts(["红色连衣裙"]))
    for empty in (enc.encode_images([]), enc.encode_texts([])):
        assert empty.shape == (0, TINY_DIM) and empty.dtype == np.float32


def test_chinese_tokenizer_knows_the_titles(encoders: dict[str, ClipEncoder], catalogue: Catalogue) -> None:
    tok = encoders["chinese_clip"].processor.tokenizer
    for title in catalogue.titles.values():
        ids = tok(title)["input_ids"]
        assert tok.unk_token_id not in ids, title
        assert len(ids) >= len(title.replace(",", "")) + 2  # one token a character + CLS/SEP


def test_chinese_clip_text_is_cut_at_its_trained_52_tokens(tiny_clip, tmp_path: Path) -> None:
    """Finding 9: the published Chinese-CLIP tokenizer says 512 tokens (and the text tower has
    512 positions), but the model was trained on 52: a long title was cut at 512, so its vector
    was computed from far more text than training ever showed it."""
    import json
    import shutil

    real_like = tmp_path / "chinese-clip-512"
    shutil.copytree(tiny_clip["chinese_clip"][0], real_like)
    config = json.loads((real_like / "tokenizer_config.json").read_text())
    config["model_max_length"] = 512  # as OFA-Sys/chinese-clip-vit-base-patch16 ships it
    (real_like / "tokenizer_config.json").write_text(json.dumps(config))
    encoder = load_clip_encoder(str(real_like), device="cpu")
    assert encoder.processor.tokenizer.model_max_length == 512  # type: ignore[attr-defined]
    assert encoder.context_length == 52  # type: ignore[attr-defined]
    long = "红色无袖雪纺连衣裙" * 12  # 108 characters: 110 tokens uncut
    assert encoder.tokenize([long, "红色"])["input_ids"].shape[1] == 52  # type: ignore[attr-defined]
    assert encoder.encode_texts([long]).shape == (1, TINY_DIM)


def test_open_clip_checkpoint_and_folder_are_the_same_weights(
    encoders: dict[str, ClipEncoder], images: list[Image.Image]
) -> None:
    a, b = encoders["open_clip"], encoders["open_clip_dir"]
    np.testing.assert_allclose(a.encode_images(images[:3]), b.encode_images(images[:3]), atol=1e-6)
    np.testing.assert_allclose(a.encode_texts(TEXTS), b.encode_texts(TEXTS), atol=1e-6)


def test_open_clip_folder_by_plain_path(tiny_clip, images: list[Image.Image], no_network) -> None:
    folder = tiny_clip["open_clip_dir"][0].removeprefix("local-dir:")
    enc = load_clip_encoder(folder)
    assert enc.model_id == f"open_clip:local-dir:{folder}"
    assert_unit_rows(enc.encode_images(images[:2]), 2)


def test_explicit_backend_and_settings(tiny_clip, tiny_clip_settings, no_network) -> None:
    model = tiny_clip["chinese_clip"][0]
    assert tiny_clip_settings.clip_model == model and tiny_clip_settings.device == "cpu"
    assert not tiny_clip_settings.resolved_index_path.exists()
    enc = encoder_from_settings(tiny_clip_settings)
    assert enc.model_id == f"transformers:{model}" and enc.batch_size == 4
    assert load_clip_encoder(model, backend="transformers").dim == TINY_DIM


def test_features_accepts_tensors_and_output_objects() -> None:
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    t = torch.ones(2, 3)
    assert _features(t) is t  # transformers 4.x
    assert _features(BaseModelOutputWithPooling(pooler_output=t)) is t  # transformers 5.x


# --------------------------------------------------------------------------- failures


def _cases(tiny_clip, not_clip_dirs) -> list[tuple[str, str | None, str]]:
    """(model, pretrained, what the message must say about where it looked)"""
    return [
        ("vlagent-test/no-such-clip", None, "Hugging Face hub"),
        ("no-such-model-name", None, "Hugging Face hub"),
        ("/nonexistent/vlagent/clip", None, "does not exist"),
        ("local-dir:/nonexistent/vlagent/clip", None, "does not exist"),
        (str(not_clip_dirs["empty"]), None, str(not_clip_dirs["empty"])),
        (str(not_clip_dirs["bert"]), None, "not a CLIP model"),
        (str(not_clip_dirs["garbage"]), None, str(not_clip_dirs["garbage"])),
        (str(not_clip_dirs["open_clip_no_weights"]), None, "no weights file"),
        (f"local-dir:{not_clip_dirs['open_clip_no_weights']}", None, "no weights file"),
        (OPEN_CLIP_NAME, None, "open_clip's registry"),  # registered, but no weights named
        (OPEN_CLIP_NAME, "/nonexistent/vlagent-tiny.pt", "/nonexistent/vlagent-tiny.pt"),
        ("ViT-B-32", None, "open_clip's registry"),  # real architecture, weights not cached
    ]


@pytest.mark.parametrize("case", range(12))
def test_load_failures_are_one_clear_line(case: int, tiny_clip, not_clip_dirs, no_network) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    model, pretrained, where = _cases(tiny_clip, not_clip_dirs)[case]
    with pytest.raises(ModelLoadError) as exc:
        load_clip_encoder(model, pretrained)
    msg = str(exc.value)
    assert "\n" not in msg
    assert repr(model) in msg  # names the model
    assert "looked in" in msg and where in msg  # where it looked, why
    assert "VLAGENT_CLIP_MODEL" in msg  # the setting to change
    assert "network access attempted" not in msg


def test_failure_cases_cover_every_not_clip_dir(tiny_clip, not_clip_dirs) -> None:
    named = {m.removeprefix("local-dir:") for m, _, _ in _cases(tiny_clip, not_clip_dirs)}
    assert {str(p) for p in not_clip_dirs.values()} <= named
    assert all(Path(p).is_dir() for p in not_clip_dirs.values())
