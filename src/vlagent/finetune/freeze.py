"""Which parameters train: whole towers frozen, only the last N blocks, or projections only."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, Field

from vlagent.errors import VlagentError
from vlagent.finetune.towers import Towers, block_of, is_post_block

FreezeChoice = Literal["none", "image", "text", "projections"]


class FreezeSpec(BaseModel):
    """``freeze``: ``image`` / ``text`` freezes that tower; ``projections`` trains only the two
    projections and the temperature. ``last_blocks`` (with ``none``/``image``/``text``): in
    each tower that trains, only the last N blocks and what sits after them (final norm,
    pooler) train; embeddings and earlier blocks stay frozen."""

    freeze: FreezeChoice = "none"
    last_blocks: int | None = Field(None, ge=0)

    def describe(self) -> str:
        parts = {"none": "all towers train", "image": "image tower frozen", "text": "text tower frozen",
                 "projections": "projections + temperature only"}  # fmt: skip
        text = parts[self.freeze]
        if self.last_blocks is not None and self.freeze != "projections":
            text += f", last {self.last_blocks} block(s) per tower"
        return text


class FreezeSummary(BaseModel):
    trainable: int
    frozen: int
    trainable_tensors: int


def apply_freeze(towers: Towers, spec: FreezeSpec) -> FreezeSummary:
    """Set ``requires_grad`` on every parameter of the model; count what trains."""
    named = list(towers.model.named_parameters())
    groups = {name: towers.group_of(name) for name, _ in named}
    n_blocks: dict[str, int] = defaultdict(int)
    for name, _ in named:
        block = block_of(name)
        if block is not None:
            n_blocks[groups[name]] = max(n_blocks[groups[name]], block + 1)
    if spec.last_blocks is not None and spec.freeze != "projections" and not n_blocks:
        raise VlagentError("--last-blocks: no transformer blocks found in this model's parameter names")
    trainable = frozen = tensors = 0
    for name, param in named:
        group = groups[name]
        if spec.freeze == "projections":
            train = group in ("projection", "scale")
        elif group in ("image", "text"):
            train = group != spec.freeze
            if train and spec.last_blocks is not None:
                block = block_of(name)
                if block is not None:
                    train = block >= n_blocks[group] - spec.last_blocks
                else:
                    train = is_post_block(name)
        else:
            train = True
        param.requires_grad_(train)
        if train:
            trainable += param.numel()
            tensors += 1
        else:
            frozen += param.numel()
    if trainable == 0:
        raise VlagentError(f"nothing left to train ({spec.describe()})")
    return FreezeSummary(trainable=trainable, frozen=frozen, trainable_tensors=tensors)
