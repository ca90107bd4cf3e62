"""CLIP zero-shot classification of an image over free-form labels, with prompt templates."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image
from pydantic import BaseModel

from vlagent.models.clip import ClipEncoder

ZH_TEMPLATES = ("一张{}的照片。", "{}的商品图片。", "{}")
EN_TEMPLATES = ("a photo of a {}.", "a product photo of a {}.", "{}")
_CJK = re.compile(r"[\u4e00-\u9fff]")


class LabelScore(BaseModel):
    label: str
    probability: float
    similarity: float


def templates_for(label: str) -> tuple[str, ...]:
    return ZH_TEMPLATES if _CJK.search(label) else EN_TEMPLATES


def label_embeddings(encoder: ClipEncoder, labels: list[str]) -> np.ndarray:
    """One unit vector per label: the mean of its prompt-template embeddings."""
    prompts = [t.format(label) for label in labels for t in templates_for(label)]
    vecs = encoder.encode_texts(prompts)
    out, pos = [], 0
    for label in labels:
        n = len(templates_for(label))
        mean = vecs[pos : pos + n].mean(axis=0)
        out.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        pos += n
    return np.asarray(out, dtype=np.float32)


def zero_shot(
    encoder: ClipEncoder, image: Image.Image, labels: list[str], temperature: float = 100.0
) -> list[LabelScore]:
    """Labels ranked by probability (softmax of scaled cosine similarities)."""
    labels = [label.strip() for label in labels if label.strip()]
    if not labels:
        raise ValueError("give at least one label")
    sims = label_embeddings(encoder, labels) @ encoder.encode_images([image])[0]
    logits = temperature * sims
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    ranked = sorted(zip(labels, probs, sims), key=lambda t: -t[1])
    return [LabelScore(label=l, probability=float(p), similarity=float(s)) for l, p, s in ranked]
