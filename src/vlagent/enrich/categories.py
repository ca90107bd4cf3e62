"""Zero-shot categories for a whole catalogue: ``image,category,score`` in a CSV.

CLIP scores every image against the labels (each label the mean of its prompt-template
embeddings, :func:`vlagent.models.zeroshot.label_embeddings`); ``score`` is the winning
label's softmax probability. Without labels, :data:`DEFAULT_CATEGORIES` (zh or en) are used.
The agent reads the file (``VLAGENT_CATEGORIES``) through :func:`read_categories` as a title
hint for images that have no title.

The run is resumable: finished rows are journalled in ``OUT.partial.jsonl`` (with the model
and labels they were computed with) and the CSV is written atomically at the end.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from vlagent.data.images import ImageSource
from vlagent.errors import DataError, ImageError
from vlagent.fileio import atomic_write_text
from vlagent.models.clip import ClipEncoder
from vlagent.models.zeroshot import label_embeddings

DEFAULT_CATEGORIES: dict[str, list[str]] = {
    "zh": ["连衣裙", "T恤", "衬衫", "外套", "卫衣", "毛衣", "裤子", "牛仔裤", "半身裙", "运动鞋", "皮鞋", "靴子",
           "凉鞋", "包", "帽子", "围巾", "袜子", "手表", "首饰", "眼镜", "化妆品", "护肤品", "手机", "电脑", "耳机",
           "家用电器", "厨具", "家具", "床上用品", "玩具", "食品", "饮料", "图书", "运动器材", "宠物用品", "母婴用品"],
    "en": ["dress", "t-shirt", "shirt", "coat", "hoodie", "sweater", "trousers", "jeans", "skirt", "sneakers",
           "leather shoes", "boots", "sandals", "bag", "hat", "scarf", "socks", "watch", "jewellery", "glasses",
           "makeup", "skin care", "mobile phone", "computer", "headphones", "home appliance", "cookware",
           "furniture", "bedding", "toy", "food", "drink", "book", "sports equipment", "pet supplies", "baby products"],
}  # fmt: skip
TEMPERATURE = 100.0


class CategoryRow(BaseModel):
    image: str
    category: str
    score: float


class CategorySummary(BaseModel):
    total: int
    done_before: int
    classified: int
    failed: list[str]
    counts: dict[str, int]


def parse_labels(text: str | None, lang: str = "zh") -> list[str]:
    if text is None:
        return list(DEFAULT_CATEGORIES[lang])
    labels = list(dict.fromkeys(p.strip() for p in text.replace("，", ",").split(",") if p.strip()))
    if not labels:
        raise DataError("--labels is empty: give comma-separated labels")
    return labels


def _journal_head(model_id: str, labels: list[str]) -> dict[str, object]:
    return {"model": model_id, "labels": labels}


def _read_journal(path: Path, head: dict[str, object]) -> dict[str, CategoryRow]:
    if not path.is_file():
        return {}
    lines = path.read_text("utf-8").splitlines()
    try:
        if not lines or json.loads(lines[0]) != head:
            return {}  # another model or other labels: start over
    except json.JSONDecodeError:
        return {}
    done: dict[str, CategoryRow] = {}
    for line in lines[1:]:
        try:
            row = CategoryRow.model_validate_json(line)
        except ValueError:
            continue  # a line cut by an interruption
        done[row.image] = row
    return done


def classify_catalogue(
    encoder: ClipEncoder,
    source: ImageSource,
    labels: list[str],
    out: Path,
    *,
    max_pixels: int,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> CategorySummary:
    out = Path(out)
    journal = out.with_name(out.name + ".partial.jsonl")
    head = _journal_head(encoder.model_id, labels)
    done = _read_journal(journal, head)
    names = source.names()
    todo = [n for n in names if n not in done]
    if progress and done:
        progress(len(names) - len(todo))
    label_vecs = label_embeddings(encoder, labels)
    failed: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = not done
    with journal.open("w" if fresh else "a", encoding="utf-8") as fh:
        if fresh:
            fh.write(json.dumps(head, ensure_ascii=False) + "\n")
        for start in range(0, len(todo), batch_size):
            chunk, images = [], []
            for name in todo[start : start + batch_size]:
                try:
                    images.append(source.open(name, max_pixels))
                    chunk.append(name)
                except ImageError:
                    failed.append(name)
            if images:
                logits = TEMPERATURE * (encoder.encode_images(images) @ label_vecs.T)
                probs = np.exp(logits - logits.max(axis=1, keepdims=True))
                probs /= probs.sum(axis=1, keepdims=True)
                for name, p in zip(chunk, probs):
                    best = int(p.argmax())
                    row = CategoryRow(image=name, category=labels[best], score=round(float(p[best]), 4))
                    done[name] = row
                    fh.write(row.model_dump_json() + "\n")
                fh.flush()
            if progress:
                progress(len(todo[start : start + batch_size]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "category", "score"])
    counts: dict[str, int] = {}
    for name in names:
        if name in done:
            row = done[name]
            writer.writerow([row.image, row.category, f"{row.score:.4f}"])
            counts[row.category] = counts.get(row.category, 0) + 1
    atomic_write_text(out, buf.getvalue())
    journal.unlink(missing_ok=True)
    return CategorySummary(
        total=len(names), done_before=len(names) - len(todo), classified=len(todo) - len(failed),
        failed=failed, counts=dict(sorted(counts.items(), key=lambda kv: -kv[1])),
    )  # fmt: skip


def read_categories(path: str | Path) -> dict[str, str]:
    """image → category of a ``vlagent classify --out`` CSV (``image,category[,score]``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such categories file (VLAGENT_CATEGORIES)")
    reader = csv.DictReader(io.StringIO(path.read_text("utf-8-sig")))
    if not reader.fieldnames or not {"image", "category"} <= set(reader.fieldnames):
        raise DataError(f"{path}: expected the columns image,category[,score] (got {reader.fieldnames})")
    return {row["image"]: row["category"] for row in reader if row.get("image") and row.get("category")}
