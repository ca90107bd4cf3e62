"""The published configurations of the models vlagent runs, written out here (no model hub can be
reached), and builders that save a randomly initialised model of each as the folder the real
loaders read: ``config.json``, weights (bfloat16 for the Qwen models, as published), tokenizer
and preprocessor files.

A random model of the real shape costs the compute of the real one, so throughput and memory
measured on it are the real model's (what it says is noise). ``tiny=True`` shrinks widths and
depths only (same files, same tokenizers, same loading code) for a quick run on a CPU.

Every file is written in the format the hub publishes, then read back with ``AutoConfig`` /
``AutoTokenizer`` / ``AutoProcessor``, so the same builders work on transformers 4.56 (the
declared floor) and 5.x.

* Chinese-CLIP ViT-B/16 (``OFA-Sys/chinese-clip-vit-base-patch16``): ViT-B/16 at 224 px + a
  12-layer RoBERTa-wwm text tower, 21,128-token vocabulary, 512-d projections.
* BLIP base captioning (``Salesforce/blip-image-captioning-base``): ViT-B/16 at 384 px + a
  12-layer BERT decoder, 30,524 tokens.
* Qwen2-VL-2B-Instruct: 28 layers, 1,536 wide, a 32-block 675M-parameter vision tower.
* Qwen2.5-1.5B-Instruct: the LLM behind classify and answer.

The Qwen tokenizer is Qwen2.5's real one, read from the offline GGUF (``vlagent models fetch
offline``; needs ``pip install gguf``) and saved as a folder once, else a byte-level stand-in
with the real special-token ids (text then takes 2-3x the tokens; image tokens are the same).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CHINESE_CLIP_VIT_B16: dict[str, Any] = {
    "architectures": ["ChineseCLIPModel"],
    "model_type": "chinese_clip",
    "projection_dim": 512,
    "logit_scale_init_value": 2.6592,
    "text_config": {
        "model_type": "chinese_clip_text_model", "vocab_size": 21128, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "max_position_embeddings": 512,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    },
    "vision_config": {
        "model_type": "chinese_clip_vision_model", "hidden_size": 768, "intermediate_size": 3072,
        "num_hidden_layers": 12, "num_attention_heads": 12, "image_size": 224, "patch_size": 16,
        "hidden_act": "quick_gelu", "projection_dim": 512, "layer_norm_eps": 1e-5,
    },
    "torch_dtype": "float32",
}  # fmt: skip
CHINESE_CLIP_PREPROCESSOR: dict[str, Any] = {
    "image_processor_type": "ChineseCLIPImageProcessor", "processor_class": "ChineseCLIPProcessor",
    "do_resize": True, "size": {"height": 224, "width": 224}, "resample": 3, "do_center_crop": False,
    "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
}  # fmt: skip

BLIP_CAPTION_BASE: dict[str, Any] = {
    "architectures": ["BlipForConditionalGeneration"],
    "model_type": "blip",
    "projection_dim": 512,
    "image_text_hidden_size": 256,
    "text_config": {
        "model_type": "blip_text_model", "vocab_size": 30524, "hidden_size": 768, "encoder_hidden_size": 768,
        "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 512,
        "bos_token_id": 30522, "sep_token_id": 102, "eos_token_id": 102, "pad_token_id": 0,
    },
    "vision_config": {
        "model_type": "blip_vision_model", "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
        "num_attention_heads": 12, "image_size": 384, "patch_size": 16, "layer_norm_eps": 1e-5,
    },
    "torch_dtype": "float32",
}  # fmt: skip
BLIP_PREPROCESSOR: dict[str, Any] = {
    "image_processor_type": "BlipImageProcessor", "processor_class": "BlipProcessor",
    "do_resize": True, "size": {"height": 384, "width": 384}, "resample": 3, "do_rescale": True,
    "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
    "do_convert_rgb": True,
}  # fmt: skip

QWEN_SPECIAL_IDS = {
    "<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645, "<|vision_start|>": 151652,
    "<|vision_end|>": 151653, "<|vision_pad|>": 151654, "<|image_pad|>": 151655, "<|video_pad|>": 151656,
}  # fmt: skip
QWEN2_VL_2B: dict[str, Any] = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "model_type": "qwen2_vl",
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
    "vision_start_token_id": 151652, "vision_end_token_id": 151653, "vision_token_id": 151654,
    "image_token_id": 151655, "video_token_id": 151656,
    "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02, "intermediate_size": 8960,
    "max_position_embeddings": 32768, "max_window_layers": 28, "num_attention_heads": 12,
    "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936,
    "vision_config": {
        "depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3, "hidden_size": 1536,
        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    },
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
}  # fmt: skip
QWEN2_VL_PREPROCESSOR: dict[str, Any] = {
    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
}  # fmt: skip
QWEN2_5_1_5B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
    "hidden_size": 1536, "initializer_range": 0.02, "intermediate_size": 8960, "max_position_embeddings": 32768,
    "max_window_layers": 21, "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": 151936,
}  # fmt: skip

#: ChatML with image parts: the token layout of Qwen2-VL's own template
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: what --small shrinks (the same keys; vocabularies stay real so the tokenizers fit)
TINY: dict[str, dict[str, Any]] = {
    "chinese_clip": {
        "projection_dim": 32,
        "text_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
        "vision_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                          "image_size": 64, "projection_dim": 32},
    },
    "blip": {
        "projection_dim": 32, "image_text_hidden_size": 32,
        "text_config": {"hidden_size": 32, "encoder_hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 64},
        "vision_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                          "image_size": 64},
    },
    "qwen2_vl": {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "max_window_layers": 2, "rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]},
        "vision_config": {"depth": 1, "embed_dim": 32, "num_heads": 2, "hidden_size": 64},
    },
    "qwen2": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "max_window_layers": 2},
}  # fmt: skip
TINY_PREPROCESSOR = {
    "chinese_clip": {"size": {"height": 64, "width": 64}, "crop_size": {"height": 64, "width": 64}},
    "blip": {"size": {"height": 64, "width": 64}},
    "qwen2_vl": {"max_pixels": 28 * 28 * 64},
}


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "rope_scaling" else value
    return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


# --------------------------------------------------------------------------------------------- tokenizers
def _write_wordpiece(folder: Path, vocab: list[str], lower: bool, max_length: int, extra: dict[str, Any]) -> None:
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": lower, "model_max_length": max_length,
              "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
              "mask_token": "[MASK]", "tokenize_chinese_chars": True, **extra}  # fmt: skip
    _write_json(folder / "tokenizer_config.json", config)


def _bert_head(size_unused: int = 99) -> list[str]:
    """bert-base-*'s first 104 entries: [PAD], [unused1..99], [UNK], [CLS], [SEP], [MASK]."""
    return ["[PAD]"] + [f"[unused{i}]" for i in range(1, size_unused + 1)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def chinese_clip_vocab() -> list[str]:
    """21,128 entries laid out like bert-base-chinese's: specials, ASCII, then CJK characters."""
    ascii_ = [chr(c) for c in range(33, 127)]
    cjk = [chr(c) for c in range(0x4E00, 0x9FFF)]
    return list(dict.fromkeys(_bert_head() + ascii_ + [c.lower() for c in ascii_] + cjk))[:21128]


def blip_vocab() -> list[str]:
    """30,522 bert-base-uncased-like entries (ASCII, words, ## pieces); [DEC] and [ENC] follow (30,524)."""
    words = [chr(c) for c in range(33, 127)] + ["a", "photography", "of", "the", "red", "dress", "shirt", "blue"]
    pieces = [f"##{chr(c)}" for c in range(97, 123)]
    fill = [f"[unused{i}]" for i in range(100, 100 + 30522)]
    return list(dict.fromkeys(_bert_head() + words + pieces + fill))[:30522]


def qwen2_tokenizer(work: Path, gguf: Path | None, given: Path | None = None) -> tuple[Path, str]:
    """A Qwen2 tokenizer folder (tokenizer.json + config with the chat template) and what it is:
    ``given`` (a folder made before, e.g. carried to a GPU machine); else Qwen2.5's real one from
    ``gguf`` when it and the ``gguf`` package are here (``work/qwen2-tokenizer-gguf``, read once);
    else a byte-level stand-in with the real special-token ids (``work/qwen2-tokenizer-bytes``)."""
    import importlib.util

    if given is not None:
        marker = given / "vlagent-source.txt"
        return given, marker.read_text().strip() if marker.is_file() else f"the tokenizer in {given}"
    real = gguf is not None and gguf.is_file() and importlib.util.find_spec("gguf") is not None
    folder = work / ("qwen2-tokenizer-gguf" if real else "qwen2-tokenizer-bytes")
    marker = folder / "vlagent-source.txt"
    if (folder / "tokenizer.json").is_file() and marker.is_file():
        return folder, marker.read_text().strip()
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    if real:
        assert gguf is not None
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        source = f"Qwen2.5's tokenizer from {gguf.name}"
    else:
        tok = _byte_level_qwen()
        source = "byte-level stand-in (no offline GGUF or no `gguf` package): text takes 2-3x the tokens"
    tok.chat_template = CHATML
    tok.save_pretrained(str(folder))
    marker.write_text(source)
    return folder, source


def _byte_level_qwen() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    vocab.update({f"<|unused_{i}|>": i for i in range(len(vocab), 151643)})  # never produced: no merges
    vocab.update(QWEN_SPECIAL_IDS)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(QWEN_SPECIAL_IDS))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")


# --------------------------------------------------------------------------------------------- models
def _save_random(folder: Path, config_dict: dict[str, Any], auto: Any, dtype: str, device: str) -> None:
    import torch
    from transformers import AutoConfig

    _write_json(folder / "config.json", config_dict)
    config = AutoConfig.from_pretrained(str(folder))
    torch.manual_seed(0)
    with torch.device(device):
        model = auto.from_config(config) if hasattr(auto, "from_config") else auto(config)
    model.to(getattr(torch, dtype)).save_pretrained(str(folder))
    del model


def _build(folder: Path, make: Callable[[Path], None]) -> Path:
    """``make`` into a temporary folder, renamed into place when complete (a half-built model is never used)."""
    if (folder / "vlagent-complete").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    make(tmp)
    (tmp / "vlagent-complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def build_chinese_clip(folder: Path, tiny: bool = False, device: str = "cpu") -> Path:
    from transformers import AutoModel

    def make(out: Path) -> None:
        _write_wordpiece(out, chinese_clip_vocab(), lower=True, max_length=512, extra={})
        _write_json(out / "preprocessor_config.json", {**CHINESE_CLIP_PREPROCESSOR, **(TINY_PREPROCESSOR["chinese_clip"] if tiny else {})})
        _save_random(out, _merged(CHINESE_CLIP_VIT_B16, TINY["chinese_clip"] if tiny else {}), AutoModel, "float32", device)

    return _build(folder, make)


def build_blip_caption(folder: Path, tiny: bool = False, device: str = "cpu") -> Path:
    from transformers import BlipForConditionalGeneration

    def make(out: Path) -> None:
        extra = {"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"], "processor_class": "BlipProcessor"}
        _write_wordpiece(out, blip_vocab() + ["[DEC]", "[ENC]"], lower=True, max_length=512, extra=extra)
        _write_json(out / "preprocessor_config.json", {**BLIP_PREPROCESSOR, **(TINY_PREPROCESSOR["blip"] if tiny else {})})
        _save_random(out, _merged(BLIP_CAPTION_BASE, TINY["blip"] if tiny else {}), BlipForConditionalGeneration, "float32", device)

    return _build(folder, make)


def build_qwen2_vl(folder: Path, tokenizer: Path, tiny: bool = False, device: str = "cpu") -> Path:
    from transformers import AutoModelForImageTextToText

    def make(out: Path) -> None:
        for f in tokenizer.iterdir():
            if f.is_file() and f.name != "vlagent-source.txt":
                shutil.copy(f, out / f.name)
        _write_json(out / "preprocessor_config.json", {**QWEN2_VL_PREPROCESSOR, **(TINY_PREPROCESSOR["qwen2_vl"] if tiny else {})})
        _write_json(out / "chat_template.json", {"chat_template": CHATML})
        _save_random(out, _merged(QWEN2_VL_2B, TINY["qwen2_vl"] if tiny else {}), AutoModelForImageTextToText, "bfloat16", device)

    return _build(folder, make)


def build_qwen2_llm(folder: Path, tokenizer: Path, tiny: bool = False, device: str = "cpu") -> Path:
    from transformers import AutoModelForCausalLM

    def make(out: Path) -> None:
        for f in tokenizer.iterdir():
            if f.is_file() and f.name != "vlagent-source.txt":
                shutil.copy(f, out / f.name)
        _save_random(out, _merged(QWEN2_5_1_5B, TINY["qwen2"] if tiny else {}), AutoModelForCausalLM, "bfloat16", device)

    return _build(folder, make)


def parameters(folder: Path) -> int:
    """Parameters of a saved model (from its safetensors headers; nothing loaded)."""
    import struct

    total = 0
    for f in folder.glob("*.safetensors"):
        with f.open("rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for name, meta in header.items():
            if name != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                total += n
    return total
