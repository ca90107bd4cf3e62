"""Tiny CLIP models of the real architectures, built once per session and loaded from disk.

Nothing is downloaded: every model is randomly initialised (``torch.manual_seed(0)``) from a
tiny config, saved to a local directory / checkpoint file with its tokenizer and preprocessing
files written by hand, and then loaded by the REAL loading code
(:func:`vlagent.models.clip.load_clip_encoder`) from those local paths. The vectors mean
nothing (random weights) but have the real shapes, dtypes and code paths.

Fixtures (the contract other areas build on)
--------------------------------------------
``tiny_clip`` (session) -> ``dict[str, tuple[str, str | None]]``: ``(model, pretrained)``
    pairs to pass to ``load_clip_encoder(model, pretrained)`` (or to
    ``Settings(clip_model=model, clip_pretrained=pretrained)``):

    * ``"chinese_clip"``: ``(dir, None)`` — transformers ``ChineseCLIPModel`` saved with
      ``save_pretrained`` + a ``ChineseCLIPProcessor`` (BERT WordPiece tokenizer whose
      ``vocab.txt`` holds the special tokens, every character of the catalogue titles and
      queries (no ``[UNK]`` for them), ASCII letters/digits/punctuation, ``##x`` pieces and
      ``ENGLISH_WORDS``; ``ChineseCLIPImageProcessor`` at 32x32). The text tower is initialised
      with ``initializer_range=0.5`` so that different titles give clearly different vectors
      (at the default 0.02 every text maps to nearly the same vector).
    * ``"clip"``: ``(dir, None)`` — transformers ``CLIPModel`` + ``CLIPProcessor`` (a
      byte-level BPE ``CLIPTokenizer`` from hand-written ``vocab.json``/``merges.txt``: the
      256 byte symbols, merges for ``ENGLISH_WORDS``, ``<|startoftext|>``/``<|endoftext|>``;
      ``CLIPImageProcessor`` at 32x32). Any text encodes (byte-level: Chinese too).
    * ``"open_clip"``: ``("vlagent-tiny-vit", "/path/vlagent-tiny-vit.pt")`` — an open_clip
      model config registered with ``open_clip.add_model_config`` (tiny ViT + tiny text
      transformer, the standard CLIP BPE tokenizer) and a ``torch.save(state_dict)``
      checkpoint given as the pretrained "tag" (open_clip's local-checkpoint path).
    * ``"open_clip_dir"``: ``("local-dir:/path", None)`` — the same weights as an open_clip
      folder (``open_clip_config.json`` + ``open_clip_model.safetensors``).

    Every family encodes to ``TINY_DIM`` = 16 dimensions. ``"open_clip"`` and
    ``"open_clip_dir"`` hold the same weights (same vectors). The open_clip folder also loads by
    its plain path (``load_clip_encoder(folder)``). Building all four takes ~2-3 s after the
    imports (transformers + open_clip import in ~8 s on 2 busy cores).

``tiny_clip_encoder`` (session) -> the ``"chinese_clip"`` model loaded once through
    ``load_clip_encoder(dir, device="cpu", batch_size=4)`` (a ``ClipEncoder``). Share it; don't
    mutate it.

``tiny_clip_settings`` (function) -> ``vlagent.settings.Settings`` with ``clip_model`` = the
    tiny Chinese-CLIP dir, ``clip_backend="auto"``, ``clip_batch_size=4``, ``device="cpu"``,
    ``home=tmp_path/"home"``, ``index_path=tmp_path/"index"`` (a fresh, empty place per test).
    For other homes or models use :func:`make_tiny_clip_settings(model_dir, home, **overrides)`.

``not_clip_dirs`` (session) -> ``dict[str, Path]``: directories that are NOT CLIP models:
    ``"empty"`` (an empty dir), ``"bert"`` (a saved tiny ``BertModel``: a valid transformers
    model of the wrong type), ``"open_clip_no_weights"`` (``open_clip_config.json`` only),
    ``"garbage"`` (``config.json`` that is not JSON).
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest

from fixtures_data import catalogue_characters

TINY_DIM = 16
OPEN_CLIP_NAME = "vlagent-tiny-vit"
IMAGE_SIZE = 32

SPECIAL_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ENGLISH_WORDS = ("the", "red", "dress", "shirt", "blue", "what", "label", "say")


def _vocab_chars() -> list[str]:
    ascii_chars = string.ascii_lowercase + string.digits + string.punctuation
    chars = list(dict.fromkeys(ascii_chars + catalogue_characters().lower() + "，。？！：；、（）"))
    return chars


# --------------------------------------------------------------------------- Chinese-CLIP


def build_chinese_clip(out: Path) -> Path:
    import torch
    from transformers import (
        BertTokenizerFast,
        ChineseCLIPConfig,
        ChineseCLIPImageProcessor,
        ChineseCLIPModel,
        ChineseCLIPProcessor,
    )

    out.mkdir(parents=True, exist_ok=True)
    # WordPiece: every character, "##x" continuations for ASCII, a few whole English words
    pieces = ["##" + ch for ch in string.ascii_lowercase + string.digits]
    vocab = SPECIAL_BERT + _vocab_chars() + pieces + list(ENGLISH_WORDS)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(  # transformers 5: `vocab` (a dict or a vocab.txt path)
        vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True,
        tokenize_chinese_chars=True, model_max_length=52,
    )  # fmt: skip
    image_processor = ChineseCLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    config = ChineseCLIPConfig(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64, initializer_range=0.5,
        ),
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=IMAGE_SIZE, patch_size=8, projection_dim=TINY_DIM,
        ),
        projection_dim=TINY_DIM,
    )  # fmt: skip
    torch.manual_seed(0)
    ChineseCLIPModel(config).eval().save_pretrained(out)
    ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


# --------------------------------------------------------------------------- CLIP (transformers)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_clip_bpe(out: Path, words: tuple[str, ...] = ENGLISH_WORDS) -> None:
    """A tiny CLIP BPE vocabulary: all 256 byte symbols (+ ``</w>`` forms) and merges for ``words``."""
    symbols = list(_bytes_to_unicode().values())
    vocab: list[str] = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    for word in words:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pair = f"{parts[0]} {parts[1]}"
            merged = parts[0] + parts[1]
            if pair not in merges:
                merges.append(pair)
                if merged not in vocab:
                    vocab.append(merged)
            parts = [merged] + parts[2:]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (out / "vocab.json").write_text(
        json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def build_clip(out: Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out.mkdir(parents=True, exist_ok=True)
    tok_dir = out / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    write_clip_bpe(tok_dir)
    tokenizer = CLIPTokenizer(
        vocab=str(tok_dir / "vocab.json"), merges=str(tok_dir / "merges.txt"),
        model_max_length=32,
    )  # fmt: skip
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=32,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=IMAGE_SIZE, patch_size=8,
        ),
        projection_dim=TINY_DIM,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(out)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


# --------------------------------------------------------------------------- open_clip

OPEN_CLIP_CFG: dict[str, Any] = {
    "embed_dim": TINY_DIM,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def build_open_clip(out: Path) -> tuple[str, Path, Path]:
    """Register ``vlagent-tiny-vit``; write its checkpoint and an open_clip ``local-dir`` folder.

    Returns ``(model name, checkpoint file, local folder)``.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cfg_file = out / f"{OPEN_CLIP_NAME}.json"
    cfg_file.write_text(json.dumps(OPEN_CLIP_CFG), encoding="utf-8")
    if OPEN_CLIP_NAME not in open_clip.list_models():
        open_clip.add_model_config(cfg_file)
    torch.manual_seed(0)
    model = open_clip.create_model(OPEN_CLIP_NAME, pretrained=None)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    ckpt = out / f"{OPEN_CLIP_NAME}.pt"
    torch.save(state, ckpt)
    folder = out / "open_clip_folder"
    folder.mkdir(exist_ok=True)
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": OPEN_CLIP_CFG, "preprocess_cfg": {}}), encoding="utf-8"
    )
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return OPEN_CLIP_NAME, ckpt, folder


# --------------------------------------------------------------------------- not CLIP


def build_not_clip_dirs(out: Path) -> dict[str, Path]:
    import torch
    from transformers import BertConfig, BertModel

    dirs = {name: out / name for name in ("empty", "bert", "open_clip_no_weights", "garbage")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    BertModel(
        BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=32, max_position_embeddings=32)
    ).save_pretrained(dirs["bert"])  # fmt: skip
    (dirs["open_clip_no_weights"] / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": OPEN_CLIP_CFG, "preprocess_cfg": {}}), encoding="utf-8"
    )
    (dirs["garbage"] / "config.json").write_text("{ this is not json", encoding="utf-8")
    return dirs


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str | None]]:
    root = tmp_path_factory.mktemp("tiny_clip")
    name, ckpt, folder = build_open_clip(root / "open_clip")
    return {
        "chinese_clip": (str(build_chinese_clip(root / "chinese_clip")), None),
        "clip": (str(build_clip(root / "clip")), None),
        "open_clip": (name, str(ckpt)),
        "open_clip_dir": (f"local-dir:{folder}", None),
    }


@pytest.fixture(scope="session")
def not_clip_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_not_clip_dirs(tmp_path_factory.mktemp("not_clip"))


@pytest.fixture(scope="session")
def tiny_clip_encoder(tiny_clip: dict[str, tuple[str, str | None]]):  # -> ClipEncoder
    from vlagent.models.clip import load_clip_encoder

    model, pretrained = tiny_clip["chinese_clip"]
    return load_clip_encoder(model, pretrained, device="cpu", batch_size=4)


def make_tiny_clip_settings(model: str, home: Path, **overrides: Any):  # -> Settings
    from vlagent.settings import Settings

    values: dict[str, Any] = dict(
        clip_model=model, clip_pretrained=None, clip_backend="auto", clip_batch_size=4,
        device="cpu", home=Path(home), index_path=Path(home) / "index",
    )  # fmt: skip
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def tiny_clip_settings(tiny_clip: dict[str, tuple[str, str | None]], tmp_path: Path):
    return make_tiny_clip_settings(
        tiny_clip["chinese_clip"][0], tmp_path / "home", index_path=tmp_path / "index"
    )
