"""The fine-tuning loop: plain torch, symmetric InfoNCE with the model's learnable temperature.

``finetune(towers, source, split, workdir, config)`` trains the encoder's model in place and
keeps, in ``workdir``:

* ``last.pt`` — the training state (weights, optimizer, scheduler, grad scaler, RNG, position
  inside the epoch, history), written atomically at the end of each epoch, every
  ``save_every`` optimizer steps and on Ctrl-C; the same command resumes from it;
* ``best/`` — the weights with the best held-out recall so far, where ``vlagent index`` loads
  them (see :mod:`vlagent.finetune.towers`); written only when fine-tuning beats the model it
  started from, which stays the answer otherwise;
* ``report.json`` — before / after / best recall, per-epoch loss and recall, truncated titles.

Gradient accumulation sums micro-batch gradients (each micro-batch's InfoNCE sees only its own
negatives). Resuming with more ``epochs`` than the run started with stretches the cosine
schedule from where it is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from vlagent.data.images import DEFAULT_MAX_PIXELS, ImageSource
from vlagent.errors import ImageError, VlagentError
from vlagent.fileio import atomic_write_json
from vlagent.finetune.data import Pair, Split
from vlagent.finetune.freeze import FreezeSpec, FreezeSummary, apply_freeze
from vlagent.finetune.metrics import Recall, chance_r1, heldout_recall
from vlagent.finetune.towers import Towers, replace_dir

Precision = Literal["auto", "fp32", "bf16", "fp16"]
LOGIT_SCALE_MAX = math.log(100.0)


class FinetuneConfig(BaseModel):
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=2, description="pairs per micro-batch (the InfoNCE negatives)")
    accumulate: int = Field(1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    seed: int = 0
    precision: Precision = "auto"
    freeze: FreezeSpec = Field(default_factory=FreezeSpec)
    save_every: int = Field(0, ge=0, description="optimizer steps between checkpoints (0: each epoch)")
    max_pixels: int = DEFAULT_MAX_PIXELS


class EpochRecord(BaseModel):
    epoch: int
    loss: float
    recall: Recall
    train_seconds: float
    steps: int


class Truncation(BaseModel):
    context_length: int | None
    truncated: int
    titles: int
    examples: list[str] = Field(default_factory=list)


class FinetuneReport(BaseModel):
    model: str
    device: str
    precision: str
    freeze: str
    parameters: FreezeSummary
    train_pairs: int
    val_pairs: int
    val_images: int
    chance_r1: float
    truncation: Truncation
    before: Recall
    after: Recall
    best: Recall
    best_epoch: int = Field(description="0: the model fine-tuning started from stayed the best")
    kept: Literal["finetuned", "original"]
    export: dict[str, str] = Field(description="settings (env) that make `vlagent index` load the kept model")
    history: list[EpochRecord]
    skipped_images: list[str] = Field(default_factory=list)
    steps: int
    resumed_from: str | None = None

    def export_line(self) -> str:
        return "export " + " ".join(f"{k}={v}" for k, v in self.export.items())


class ResumeMismatch(VlagentError):
    """A checkpoint from a run with other data or settings."""


def _run_identity(towers: Towers, split: Split, config: FinetuneConfig) -> dict[str, Any]:
    digest = hashlib.sha256(
        json.dumps([[p.image, p.title] for p in split.train + split.val], ensure_ascii=False).encode()
    ).hexdigest()[:16]
    return {
        "model": towers.encoder.model_id, "data": digest, "batch_size": config.batch_size,
        "accumulate": config.accumulate, "lr": config.lr, "weight_decay": config.weight_decay,
        "warmup_ratio": config.warmup_ratio, "seed": config.seed,
        "freeze": config.freeze.model_dump(), "precision": config.precision,
    }  # fmt: skip


def _autocast(device: str, precision: Precision) -> tuple[Any, str]:
    import torch

    kind = device.split(":")[0]
    if precision == "auto":
        if kind == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return nullcontext(), "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=kind, dtype=dtype), precision


def truncation_report(towers: Towers, titles: list[str]) -> Truncation:
    unique = list(dict.fromkeys(titles))
    ctx = towers.context_length()
    lengths = towers.token_lengths(unique)
    long = [t for t, n in zip(unique, lengths) if ctx is not None and n > ctx]
    return Truncation(context_length=ctx, truncated=len(long), titles=len(unique), examples=long[:3])


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    import torch

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
    out = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in out if len(b) >= 2]


def _save(path: Path, state: dict[str, Any]) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state(device: str) -> dict[str, Any]:
    """The random state a resumed run needs: torch's CPU generator, and on a CUDA device every
    CUDA generator (dropout on the GPU draws from those)."""
    import torch

    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.split(":")[0] == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(saved: Any) -> None:
    """Put back :func:`rng_state`'s states (generator states are CPU byte tensors, whatever the
    training device; a checkpoint of before the CUDA state was saved holds the CPU one alone)."""
    import torch

    state = saved if isinstance(saved, dict) else {"cpu": saved}
    torch.set_rng_state(state["cpu"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``last.pt`` read onto the CPU: the RNG states must stay CPU byte tensors (``map_location``
    on a GPU would move them there and ``torch.set_rng_state`` refuses them); the model, the
    optimizer and the scaler copy their tensors to the training device as they load them."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)  # type: ignore[no-any-return]


def finetune(
    towers: Towers,
    source: ImageSource,
    split: Split,
    workdir: Path,
    config: FinetuneConfig,
    *,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> FinetuneReport:
    import torch
    import torch.nn.functional as F
    from transformers import get_cosine_schedule_with_warmup

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    last, best_dir = workdir / "last.pt", workdir / "best"
    model, encoder = towers.model, towers.encoder
    train: list[Pair] = split.train
    identity = _run_identity(towers, split, config)
    summary = apply_freeze(towers, config.freeze)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr)
    batches_per_epoch = len(_batches(len(train), config.batch_size, config.seed, 0))
    if batches_per_epoch == 0:
        raise VlagentError(f"{len(train)} training pair(s): too few for one batch of 2 or more")
    steps_per_epoch = math.ceil(batches_per_epoch / config.accumulate)
    total = config.epochs * steps_per_epoch
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    autocast, precision = _autocast(towers.device, config.precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "history": [], "before": None,
                             "best": None, "best_epoch": 0, "export": None, "skipped": [],
                             "loss_sum": 0.0, "loss_n": 0, "train_seconds": 0.0}  # fmt: skip
    resumed_from = None
    torch.manual_seed(config.seed)  # dropout; a resumed run restores the saved RNG state below
    if resume and last.is_file():
        saved = load_checkpoint(last)
        if saved["identity"] != identity:
            diff = sorted(k for k in identity if saved["identity"].get(k) != identity[k])
            raise ResumeMismatch(
                f"{last}: a checkpoint of a run with other {', '.join(diff)}; "
                "use --restart to start over, or another --out"
            )
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        restore_rng(saved["rng"])
        state.update(saved["state"])
        resumed_from = f"epoch {state['epoch'] + 1}, step {state['step']}"

    def checkpoint() -> None:
        _save(last, {"identity": identity, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                     "rng": rng_state(towers.device), "state": state})  # fmt: skip

    def evaluate() -> Recall:
        model.eval()
        try:
            return heldout_recall(encoder, source, split.val, config.max_pixels)
        finally:
            model.train()

    if state["before"] is None:
        state["before"] = evaluate().model_dump()
        state["best"] = state["before"]
    truncation = truncation_report(towers, [p.title for p in split.train + split.val])

    def load_batch(indices: list[int]) -> tuple[Any, Any] | None:
        images, titles = [], []
        for i in indices:
            try:
                images.append(source.open(train[i].image, config.max_pixels))
                titles.append(train[i].title)
            except ImageError:
                if train[i].image not in state["skipped"]:
                    state["skipped"].append(train[i].image)
        if len(images) < 2:
            return None
        return towers.pixels(images), towers.tokens(titles)

    model.train()
    bar = tqdm(total=total, initial=state["step"], disable=not progress, desc="fine-tuning", unit="step", dynamic_ncols=True)
    ema: float | None = None
    try:
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            batches = _batches(len(train), config.batch_size, config.seed, epoch)
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            micro = 0
            for b in range(state["batch"], len(batches)):
                loaded = load_batch(batches[b])
                if loaded is not None:
                    pixels, tokens = loaded
                    with autocast:
                        img = F.normalize(towers.image_features(pixels), dim=-1)
                        txt = F.normalize(towers.text_features(tokens), dim=-1)
                        logits = towers.logit_scale.exp() * img @ txt.t()
                        labels = torch.arange(logits.shape[0], device=logits.device)
                        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
                    scaler.scale(loss / config.accumulate).backward()
                    value = float(loss.detach())
                    state["loss_sum"] += value
                    state["loss_n"] += 1
                    ema = value if ema is None else 0.9 * ema + 0.1 * value
                micro += 1
                if micro % config.accumulate and b != len(batches) - 1:
                    continue
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    towers.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
                state["step"] += 1
                state["batch"] = b + 1
                state["train_seconds"] += time.perf_counter() - started
                started = time.perf_counter()
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{ema if ema is not None else float('nan'):.4f}",
                                lr=f"{scheduler.get_last_lr()[0]:.2e}")  # fmt: skip
                if config.save_every and state["step"] % config.save_every == 0:
                    checkpoint()
                if on_step is not None:
                    on_step(state["step"])
            recall = evaluate()
            record = EpochRecord(
                epoch=epoch + 1, loss=state["loss_sum"] / max(1, state["loss_n"]), recall=recall,
                train_seconds=state["train_seconds"], steps=state["step"],
            )  # fmt: skip
            state["history"].append(record.model_dump())
            bar.write(f"epoch {epoch + 1}: loss {record.loss:.4f}  held-out {recall.line()}")
            if recall.key() > Recall.model_validate(state["best"]).key():
                tmp = workdir / "best.tmp"
                if tmp.exists():
                    import shutil

                    shutil.rmtree(tmp)
                tmp.mkdir()
                state["export"] = towers.export(tmp, best_dir)
                replace_dir(tmp, best_dir)
                state["best"], state["best_epoch"] = recall.model_dump(), epoch + 1
            state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_n=0, train_seconds=0.0)
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()  # weights change only at optimizer steps: "batch" is the last step's position
        bar.write(f"interrupted: checkpoint saved in {last} (step {state['step']}); run the same command to resume")
        raise
    finally:
        bar.close()

    history = [EpochRecord.model_validate(h) for h in state["history"]]
    kept = "finetuned" if state["best_epoch"] > 0 else "original"
    export = state["export"] if kept == "finetuned" else _original(towers)
    report = FinetuneReport(
        model=encoder.model_id, device=towers.device, precision=precision,
        freeze=config.freeze.describe(), parameters=summary,
        train_pairs=len(split.train), val_pairs=len(split.val), val_images=len(split.val_images),
        chance_r1=chance_r1(split.val), truncation=truncation,
        before=Recall.model_validate(state["before"]),
        after=history[-1].recall if history else Recall.model_validate(state["before"]),
        best=Recall.model_validate(state["best"]), best_epoch=state["best_epoch"], kept=kept,
        export=export, history=history, skipped_images=state["skipped"], steps=state["step"],
        resumed_from=resumed_from,
    )  # fmt: skip
    atomic_write_json(workdir / "report.json", report.model_dump(mode="json"))
    return report


def _original(towers: Towers) -> dict[str, str]:
    env = {"VLAGENT_CLIP_MODEL": towers.source_name}
    if towers.source_pretrained:
        env["VLAGENT_CLIP_PRETRAINED"] = towers.source_pretrained
    return env
