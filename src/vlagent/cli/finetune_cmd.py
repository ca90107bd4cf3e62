"""``vlagent finetune``: contrastive fine-tuning of the retrieval CLIP on the catalogue."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from vlagent.cli.options import AnnotationsOpt, CatalogueOpt, JsonOpt, VerboseOpt
from vlagent.cli.quiet import quiet_libraries
from vlagent.errors import DataError, VlagentError
from vlagent.data.annotations import read_annotations
from vlagent.data.images import open_source
from vlagent.finetune.data import match_pairs, split_pairs
from vlagent.finetune.freeze import FreezeSpec
from vlagent.finetune.towers import towers_for
from vlagent.finetune.train import FinetuneConfig, finetune as run
from vlagent.models.extras import require
from vlagent.models.clip import encoder_from_settings
from vlagent.settings import Settings

console = Console()


def _default_out(home: Path, model: str, dataset: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model.removeprefix("local-dir:")).name or model).strip("-")
    return home / "finetune" / f"{slug}-{dataset}"


def finetune(
    images: CatalogueOpt = None,
    annotations: AnnotationsOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="work folder: last.pt, best/, report.json (default HOME/finetune/MODEL-DATASET)")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="CLIP model to start from (env VLAGENT_CLIP_MODEL)")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="open_clip pretrained tag or checkpoint file (env VLAGENT_CLIP_PRETRAINED)")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="passes over the training pairs")] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="pairs per batch (the InfoNCE negatives)")] = 32,
    accumulate: Annotated[int, typer.Option(min=1, help="batches per optimizer step (gradient accumulation)")] = 1,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW)")] = 5e-5,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.01,
    warmup: Annotated[float, typer.Option(help="share of the steps spent warming up, then cosine decay")] = 0.1,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="share of the images held out for recall")] = 0.1,
    seed: Annotated[int, typer.Option(help="seed of the split, the batch order and the run")] = 0,
    freeze: Annotated[str, typer.Option(help="none | image | text (freeze that tower) | projections (train only the projections)")] = "none",
    last_blocks: Annotated[Optional[int], typer.Option("--last-blocks", min=0, help="train only the last N blocks of each tower (+ projections)")] = None,
    precision: Annotated[str, typer.Option(help="auto (fp32 on CPU, bf16/fp16 on GPU) | fp32 | bf16 | fp16")] = "auto",
    save_every: Annotated[int, typer.Option("--save-every", min=0, help="optimizer steps between checkpoints (0: each epoch)")] = 0,
    restart: Annotated[bool, typer.Option("--restart", help="ignore the checkpoint in --out and start over")] = False,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fine-tune the retrieval CLIP on the catalogue's image-title pairs (symmetric InfoNCE).

    Reports text→image R@1/5/10 on a held-out split before and after, keeps the better model and
    prints the export line that makes `vlagent index` use it. Interrupted runs resume."""

    quiet_libraries(verbose)
    require("vlagent finetune", "torch", "transformers")  # the CLIP role names what its backend adds
    if not images or len(images) != 1:
        raise VlagentError("give the catalogue once: --images DIR_OR_ZIP")
    if annotations is None:
        raise VlagentError("give the titles: --annotations train_annotation.csv")
    if freeze not in ("none", "image", "text", "projections"):
        raise VlagentError(f"--freeze {freeze!r}: expected none, image, text or projections")
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise VlagentError(f"--precision {precision!r}: expected auto, fp32, bf16 or fp16")
    settings = Settings(**{k: v for k, v in {"clip_model": model, "clip_pretrained": pretrained}.items() if v})
    config = FinetuneConfig(
        epochs=epochs, batch_size=batch_size, accumulate=accumulate, lr=lr, weight_decay=weight_decay,
        warmup_ratio=warmup, seed=seed, precision=precision,  # type: ignore[arg-type]
        freeze=FreezeSpec(freeze=freeze, last_blocks=last_blocks),  # type: ignore[arg-type]
        save_every=save_every, max_pixels=settings.max_image_pixels,
    )  # fmt: skip
    workdir = out or _default_out(settings.home, settings.clip_model, settings.dataset)
    rows = read_annotations(annotations)
    with open_source(images[0]) as source:
        pairs = match_pairs(rows, source)
        if not pairs.pairs:
            raise DataError(f"{annotations}: no row names an image of {images[0]}")
        split = split_pairs(pairs.pairs, val_fraction, seed)
        with console.status(f"loading {settings.clip_model} ..."):
            encoder = encoder_from_settings(settings)
        towers = towers_for(encoder, settings.clip_model, settings.clip_pretrained)
        if pairs.missing:
            console.print(f"[yellow]{len(pairs.missing)} annotation row(s) name no image of the catalogue[/] (e.g. {pairs.missing[0]})")
        report = run(towers, source, split, workdir, config, resume=not restart, progress=not as_json)
    if as_json:
        console.print_json(data=report.model_dump(mode="json"))
        return
    table = Table(title=f"held-out text→image recall ({report.val_pairs} titles, {report.val_images} images; chance R@1 {report.chance_r1:.3f})")
    for col in ("model", "R@1", "R@5", "R@10"):
        table.add_column(col, justify="right" if col != "model" else "left")
    rows_out = [("before (start)", report.before), ("after (last epoch)", report.after),
                (f"best (epoch {report.best_epoch})", report.best)]  # fmt: skip
    for label, rec in rows_out:
        table.add_row(label, f"{rec.r1:.3f}", f"{rec.r5:.3f}", f"{rec.r10:.3f}")
    console.print(table)
    trunc = report.truncation
    console.print(
        f"titles longer than the text context ({trunc.context_length} tokens): {trunc.truncated} of {trunc.titles} "
        "(cut the same way at search time)"
    )
    if report.skipped_images:
        console.print(f"[yellow]{len(report.skipped_images)} unreadable image(s) skipped[/] (e.g. {report.skipped_images[0]})")
    if report.kept == "original":
        console.print("[yellow]fine-tuning did not beat the model it started from: keep using it[/]")
    else:
        console.print(f"kept the fine-tuned model of epoch {report.best_epoch}: {workdir / 'best'}")
    console.print(f"report: {workdir / 'report.json'}")
    console.print(report.export_line(), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
