"""``vlagent index --engine ray``: the indexing pipeline on Ray Data.

1. **hash** (Ray tasks): read each image's bytes and hash them. The driver then drops the
   duplicates and, through :func:`vlagent.index.build.split_known` (the local path's own
   step), skips the ids the collection already holds and refreshes changed titles.
2. **decode** (Ray tasks, CPU): read and decode the images left, with the local path's checks.
3. **encode** (an actor pool, one CLIP model per actor, ``num_gpus=1`` each when the cluster
   has GPUs): batches of ``clip_batch_size`` images.
4. **upsert** (the driver): batches into the configured Chroma (the server when
   ``VLAGENT_CHROMA_URL`` is set, else the embedded index, which only one process may write).

Each upserted batch is durable and record ids are content hashes, so a killed run continues
where it stopped: the next run skips what was upserted. Workers read the images by path: on a
cluster the catalogue must be on storage every node sees at the same path (NFS, a mounted
bucket). The summary is the local path's :class:`~vlagent.index.build.IndexSummary`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vlagent.data.images import ImageSource, load_image, open_source
from vlagent.distributed.common import as_user_error, draining, gpus_available, ray_session
from vlagent.errors import ImageError
from vlagent.index.build import (
    Failure,
    IndexSummary,
    Item,
    new_summary,
    read_item,
    split_known,
    title_lookup,
)
from vlagent.index.store import ImageIndex
from vlagent.models import loader
from vlagent.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.data.annotations import Annotation
    from vlagent.models.clip import ClipEncoder

#: names per hashing task batch, and rows per batch the driver checks / upserts at once
HASH_BATCH = 256
UPSERT_BATCH = 256

Progress = Callable[[str, int, int], None]  # (stage, advance, total)

# --------------------------------------------------------------------------- worker side

_SOURCES: dict[str, ImageSource] = {}


def _source(root: str) -> ImageSource:
    """One open source per worker process (a zip's directory is read once)."""
    if root not in _SOURCES:
        _SOURCES[root] = open_source(root)
    return _SOURCES[root]


def hash_batch(batch: dict[str, np.ndarray], root: str) -> dict[str, list[str]]:
    """Read and hash (nothing decoded): id, or the reason the file cannot be read."""
    source = _source(root)
    ids, errors = [], []
    for name, title in zip(batch["name"], batch["title"]):
        got = read_item(source, str(name), str(title))
        ids.append(got.id if isinstance(got, Item) else "")
        errors.append(got.reason if isinstance(got, Failure) else "")
    return {"name": list(batch["name"]), "title": list(batch["title"]), "id": ids, "error": errors}


_EMPTY = np.zeros((1, 1, 3), dtype=np.uint8)


def decode_batch(batch: dict[str, np.ndarray], root: str, max_pixels: int) -> dict[str, Any]:
    """Decode to RGB pixel arrays with the local path's checks; a failure keeps its reason."""
    source = _source(root)
    pixels, errors = [], []
    for name in batch["name"]:
        try:
            img = load_image(source.read_bytes(str(name)), str(name), max_pixels)
            pixels.append(np.asarray(img, dtype=np.uint8))
            errors.append("")
        except (OSError, ImageError) as exc:
            pixels.append(_EMPTY)
            errors.append(str(exc))
    return {**batch, "pixels": pixels, "error": errors}


def load_encoder(settings: "Settings") -> "ClipEncoder":
    """The CLIP encoder of a worker process, through the one model loader (cached per process)."""

    return loader.load("clip", settings)  # type: ignore[no-any-return]


class ClipActor:
    """One CLIP model per actor; encodes batches of decoded pixels to L2-normalised vectors."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.encoder = load_encoder(Settings(**settings))

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from PIL import Image

        ok = [i for i, e in enumerate(batch["error"]) if not e]
        vectors = np.zeros((len(batch["error"]), self.encoder.dim), dtype=np.float32)
        if ok:
            images = [Image.fromarray(np.asarray(batch["pixels"][i], dtype=np.uint8)) for i in ok]
            vectors[ok] = self.encoder.encode_images(images)
        out = {k: v for k, v in batch.items() if k != "pixels"}
        out["embedding"] = vectors
        return out


def probe_encoder(settings: dict[str, Any]) -> tuple[str, int]:
    """Load the model once on a worker: its id and size (and a clear error when it cannot load)."""

    encoder = load_encoder(Settings(**settings))
    return encoder.model_id, encoder.dim


# --------------------------------------------------------------------------- driver side


def _worker_settings(settings: "Settings") -> dict[str, Any]:
    """The driver's settings, resolved, for the workers (their environment may differ)."""
    return settings.model_dump(mode="json", exclude_none=True)


def index_with_ray(
    images: str | Path,
    settings: "Settings",
    annotations: list["Annotation"] | None = None,
    *,
    address: str | None = None,
    progress: Progress | None = None,
) -> IndexSummary:
    """Index the folder or zip ``images`` on Ray; returns the local path's summary."""
    root = str(Path(images).expanduser().resolve())  # what the workers read
    shown = str(Path(images))  # what the records name as their source, as the local path does
    with open_source(root) as source:
        names = source.names()
    title_of = title_lookup(annotations)
    worker_settings = _worker_settings(settings)
    with ray_session(settings, address) as ray:
        import ray.data
        from ray.data import ActorPoolStrategy

        gpus = 1.0 if gpus_available(ray) > 0 else 0.0
        actors = settings.ray_encode_actors or max(1, int(gpus_available(ray)) if gpus else 1)
        try:
            model_id, dim = ray.get(
                ray.remote(num_cpus=1, num_gpus=gpus)(probe_encoder).remote(worker_settings)
            )
        except Exception as exc:  # a RayTaskError wrapping the worker's ModelLoadError
            raise as_user_error(exc, "cannot load the CLIP model on a Ray worker") from None
        index = ImageIndex.open(settings, model_id, dim)
        with open_source(root) as source:
            summary = new_summary(source, index, annotations)

        # 1. hash everything; the driver skips what the index holds
        fresh: list[Item] = []
        seen: set[str] = set()
        listing = ray.data.from_items([{"name": n, "title": title_of(n)} for n in names])
        hashed = listing.map_batches(
            hash_batch, fn_kwargs={"root": root}, batch_size=HASH_BATCH, num_cpus=settings.ray_decode_cpus,
            batch_format="numpy",
        )  # fmt: skip
        # in name order: the first of duplicate files wins, as locally
        with draining(hashed, UPSERT_BATCH, "hashing the images on Ray failed", in_order=True) as batches:
            for batch in batches:
                items: list[Item] = []
                for name, title, id_, error in zip(batch["name"], batch["title"], batch["id"], batch["error"]):
                    if error:
                        summary.failed.append(Failure(image=str(name), reason=str(error)))
                    elif id_ in seen:
                        summary.duplicates += 1
                    else:
                        seen.add(str(id_))
                        items.append(Item(str(name), str(id_), {"file": str(name), "title": str(title), "source": shown}))
                fresh += split_known(index, items, summary)
                if progress:
                    progress("hash", len(batch["name"]), len(names))

        # 2-4. decode, encode, upsert the rest
        if fresh:
            with warnings.catch_warnings():  # max_restarts is passed the old way: Ray warns
                warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
                todo = ray.data.from_items(
                    [{"name": i.name, "id": i.id, "title": i.meta["title"]} for i in fresh]
                )
                encoded = todo.map_batches(
                    decode_batch, fn_kwargs={"root": root, "max_pixels": settings.max_image_pixels},
                    batch_size=settings.clip_batch_size, num_cpus=settings.ray_decode_cpus, batch_format="numpy",
                ).map_batches(
                    ClipActor, fn_constructor_kwargs={"settings": worker_settings},
                    batch_size=settings.clip_batch_size, compute=ActorPoolStrategy(size=actors),
                    num_gpus=gpus, num_cpus=1, batch_format="numpy",
                    # the model's memory, reserved per actor; differing resources also keep Ray Data
                    # from fusing the decode tasks into the actors: decoding stays in parallel tasks
                    memory=settings.ray_encode_actor_memory_mb * 1024 * 1024,
                    # a dead actor is not restarted: the run stops, and the next run resumes
                    max_restarts=0,
                )  # fmt: skip
            with draining(encoded, UPSERT_BATCH, "encoding the images on Ray failed") as batches:
                for batch in batches:
                    good = [k for k, e in enumerate(batch["error"]) if not e]
                    for k, e in enumerate(batch["error"]):
                        if e:
                            summary.failed.append(Failure(image=str(batch["name"][k]), reason=str(e)))
                    if good:
                        index.upsert(
                            [str(batch["id"][k]) for k in good],
                            np.asarray(batch["embedding"][good], dtype=np.float32),
                            [{"file": str(batch["name"][k]), "title": str(batch["title"][k]), "source": shown} for k in good],
                        )  # fmt: skip
                        summary.indexed += len(good)
                    if progress:
                        progress("encode", len(batch["error"]), len(fresh))
        summary.count = index.count()
    return summary
