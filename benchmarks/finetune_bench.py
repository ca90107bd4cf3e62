"""Time of one fine-tuning epoch of a real-size Chinese-CLIP ViT-B/16 on this CPU.

No CLIP weights can be downloaded here, so the model is a randomly initialised
``ChineseCLIPModel`` of the real ``OFA-Sys/chinese-clip-vit-base-patch16`` shape (ViT-B/16 at
224 px + a 12-layer, 768-wide RoBERTa-wwm text tower, 21128-token vocabulary, 512-d
projections): random weights cost the same compute. It is saved once, loaded through the real
loading code, and trained by the real loop (``vlagent.finetune.train.finetune``) on a
synthetic catalogue (640x480 JPEGs, Chinese titles of 10-70 characters).

Usage: ``nice -n 10 python benchmarks/finetune_bench.py [--images 64] [--batch-size 16]
[--freeze none|image|text|projections] [--last-blocks N] [--threads 2]``. Prints the epoch
time, seconds per step and pairs per second, and what that means for 10k pairs.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


CHARS = "红蓝黑白黄绿粉紫灰棕色女男士夏季冬款新连衣裙衬衫长袖短袖纯棉休闲裤牛仔直筒宽松显瘦修身外套羽绒服加厚保暖运动鞋跑步透气轻便帆布包手提单肩斜挎真皮帽子围巾羊毛针织卫衣连帽圆领T恤印花条纹格子碎花雪纺蕾丝高腰百褶半身裙"


def build_model(out: Path) -> Path:
    import torch
    from transformers import (BertTokenizerFast, ChineseCLIPConfig, ChineseCLIPImageProcessor, ChineseCLIPModel,
                              ChineseCLIPProcessor)  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ascii_ = [chr(c) for c in range(33, 127)]
    cjk = [chr(c) for c in range(0x4E00, 0x9FFF)]
    vocab = list(dict.fromkeys(specials + ascii_ + list(CHARS) + cjk))[:21128]  # the real vocabulary size
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True,
                                  tokenize_chinese_chars=True, model_max_length=52)  # fmt: skip
    config = ChineseCLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=512),
        vision_config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                           image_size=224, patch_size=16, projection_dim=512),
        projection_dim=512,
    )  # fmt: skip
    torch.manual_seed(0)
    ChineseCLIPModel(config).save_pretrained(out)
    processor = ChineseCLIPProcessor(
        image_processor=ChineseCLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
        tokenizer=tokenizer,
    )
    processor.save_pretrained(out)
    return out


def make_catalogue(folder: Path, n: int) -> list[tuple[str, str]]:
    """index_bench's synthetic 640x480 photos, each with a random Chinese title of 10-70 characters."""
    from index_bench import make_catalogue as make_images  # this script's own folder is on sys.path

    make_images(folder, n)
    pick = random.Random(0)
    return [(f"img_{i:05d}.jpg", "".join(pick.choice(CHARS) for _ in range(pick.randint(10, 70)))) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--freeze", default="none", choices=["none", "image", "text", "projections"])
    parser.add_argument("--last-blocks", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="keep the model and images here (default: a temp dir)")
    args = parser.parse_args()

    import torch

    from vlagent.data.images import open_source
    from vlagent.finetune.data import Pair, split_pairs
    from vlagent.finetune.freeze import FreezeSpec
    from vlagent.finetune.towers import towers_for
    from vlagent.finetune.train import FinetuneConfig, finetune
    from vlagent.models.clip import load_clip_encoder

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        model_dir = work / "chinese-clip-vit-b-16-random"
        t0 = time.perf_counter()
        if not (model_dir / "config.json").is_file():
            build_model(model_dir)
        rows = make_catalogue(work / "images", args.images)
        encoder = load_clip_encoder(str(model_dir), device="cpu", batch_size=args.batch_size)
        print(f"model built and loaded in {time.perf_counter() - t0:.1f} s "
              f"({sum(p.numel() for p in encoder.model.parameters()) / 1e6:.0f} M parameters)")  # fmt: skip
        split = split_pairs([Pair(image=n, title=t) for n, t in rows], val_fraction=0.1, seed=0)
        config = FinetuneConfig(epochs=1, batch_size=args.batch_size, lr=5e-5,
                                freeze=FreezeSpec(freeze=args.freeze, last_blocks=args.last_blocks))  # fmt: skip
        with open_source(work / "images") as source:
            t0 = time.perf_counter()
            report = finetune(towers_for(encoder, str(model_dir)), source, split, work / "run", config, resume=False)
            total = time.perf_counter() - t0
    epoch = report.history[0]
    steps = epoch.steps
    pairs = len(split.train) - len(split.train) % args.batch_size * (len(split.train) % args.batch_size < 2)
    import os

    load = os.getloadavg()[0]
    print(f"\nChinese-CLIP ViT-B/16 (random weights), CPU, {args.threads} threads, batch {args.batch_size}, "
          f"freeze: {report.freeze}; trainable {report.parameters.trainable / 1e6:.0f} M; load average {load:.1f}")
    print(f"one epoch: {len(split.train)} training pairs, {steps} steps: {epoch.train_seconds:.1f} s "
          f"({epoch.train_seconds / steps:.2f} s/step, {pairs / epoch.train_seconds:.2f} pairs/s)")
    print(f"held-out evaluation ({report.val_pairs} titles, {report.val_images} images), twice: "
          f"{total - epoch.train_seconds:.1f} s in all (plus checkpoint and best/ export)")
    print(f"titles cut by the 52-token context: {report.truncation.truncated} of {report.truncation.titles}")
    print(f"=> 10k pairs: {10_000 / (pairs / epoch.train_seconds) / 3600:.1f} h per epoch on this CPU")


if __name__ == "__main__":
    main()
