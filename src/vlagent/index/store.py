"""The image index in Chroma.

* Embedded ``PersistentClient`` by default; ``HttpClient`` when ``VLAGENT_CHROMA_URL`` is set
  (a ``chroma run`` server shared by several workers).
* One collection per (model, dataset): the name is ``<dataset>-<hash of model id>``; the
  collection's metadata records the model id and the embedding size, and opening it with
  another model is refused (:class:`IndexMismatchError`).
* Record ids are the image's content hash, so re-indexing is an idempotent ``upsert``.
* The HNSW graph's parameters come from settings (``VLAGENT_HNSW_*``): space, construction ef
  and M are fixed when the collection is created; search ef is applied to an existing
  collection when it differs (Chroma allows changing it after creation).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

import numpy as np
from pydantic import BaseModel, Field

from vlagent.errors import BackendUnavailableError, IndexMismatchError, VlagentError, one_line

if TYPE_CHECKING:  # pragma: no cover
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from vlagent.settings import Settings


log = logging.getLogger(__name__)


class HnswParams(BaseModel):
    """Chroma's HNSW index parameters (``VLAGENT_HNSW_*``)."""

    space: Literal["cosine", "ip", "l2"] = "cosine"
    construction_ef: int = Field(100, ge=1)
    search_ef: int = Field(256, ge=1)
    m: int = Field(16, ge=2)

    @classmethod
    def from_settings(cls, settings: "Settings") -> "HnswParams":
        return cls(
            space=settings.hnsw_space,
            construction_ef=settings.hnsw_construction_ef,
            search_ef=settings.hnsw_search_ef,
            m=settings.hnsw_m,
        )

    def configuration(self) -> dict[str, Any]:
        """Chroma >= 1.0 collection configuration."""
        return {
            "hnsw": {
                "space": self.space,
                "ef_construction": self.construction_ef,
                "ef_search": self.search_ef,
                "max_neighbors": self.m,
            }
        }

    def score(self, distance: float) -> float:
        """Cosine similarity from Chroma's distance (vectors are L2-normalised)."""
        return 1.0 - distance / 2.0 if self.space == "l2" else 1.0 - distance


def _current_hnsw(collection: "Collection") -> dict[str, Any]:
    config = getattr(collection, "configuration", None) or {}
    hnsw = config.get("hnsw") if isinstance(config, dict) else None
    return dict(hnsw or {})


class SearchHit(BaseModel):
    id: str
    image: str
    score: float
    title: str = ""
    source: str = ""


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


_OPENING = threading.Lock()


def make_client(settings: "Settings") -> "ClientAPI":
    import chromadb

    if settings.chroma_url:
        url = urlparse(settings.chroma_url if "://" in settings.chroma_url else f"http://{settings.chroma_url}")
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=_chroma_settings(),
            )
            client.heartbeat()
        except Exception as exc:
            raise BackendUnavailableError(
                f"Chroma server at {settings.chroma_url} is not reachable ({type(exc).__name__}); "
                "start one with `chroma run --path DIR --host 127.0.0.1 --port 8000` "
                "or unset VLAGENT_CHROMA_URL to use the embedded index"
            ) from None
        return client
    path = settings.resolved_index_path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with _OPENING:  # Chroma's shared system per folder is not made thread-safely (a background build)
            return chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
    except Exception as exc:  # a folder that cannot be created or written, a broken database
        raise VlagentError(
            f"the image index at {path} cannot be opened ({one_line(exc)}); "
            "point VLAGENT_INDEX_PATH at a writable folder"
        ) from None


def collection_name(dataset: str, model_id: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9_-]+", "-", dataset).strip("-_")[:40] or "dataset"
    digest = hashlib.sha1(model_id.encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


class ImageIndex:
    """One Chroma collection of image embeddings built by one CLIP model."""

    def __init__(
        self, client: "ClientAPI", dataset: str, model_id: str, dim: int, hnsw: HnswParams | None = None
    ) -> None:
        self.client = client
        self.dataset = dataset
        self.model_id = model_id
        self.dim = dim
        self.hnsw = hnsw or HnswParams()
        self.name = collection_name(dataset, model_id)
        self.collection = self._open()

    @classmethod
    def open(cls, settings: "Settings", model_id: str, dim: int) -> "ImageIndex":
        try:
            return cls(make_client(settings), settings.dataset, model_id, dim, HnswParams.from_settings(settings))
        except VlagentError:
            raise
        except Exception as exc:  # a folder that cannot be created or written, a broken database
            where = settings.chroma_url or settings.resolved_index_path
            raise VlagentError(
                f"the image index at {where} cannot be opened ({one_line(exc)}); "
                "point VLAGENT_INDEX_PATH at a writable folder"
            ) from None

    def _open(self) -> "Collection":
        existing = self._find(self.name)
        if existing is not None:
            meta = existing.metadata or {}
            if meta.get("model_id") != self.model_id or int(meta.get("dim", self.dim)) != self.dim:
                raise IndexMismatchError(
                    f"collection {self.name!r} was built by {meta.get('model_id')!r} "
                    f"(dim {meta.get('dim')}), not {self.model_id!r} (dim {self.dim}); "
                    "embeddings of two models are never mixed: use another dataset name"
                )
            self._adopt_hnsw(existing)
            return existing
        return self.client.create_collection(
            self.name,
            configuration=self.hnsw.configuration(),  # type: ignore[arg-type]
            metadata={"model_id": self.model_id, "dim": self.dim, "dataset": self.dataset},
            embedding_function=None,
        )

    def _adopt_hnsw(self, collection: "Collection") -> None:
        """An existing collection keeps its graph (space, construction ef, M); search ef follows settings."""
        current = _current_hnsw(collection)
        fixed = {
            "space": current.get("space", self.hnsw.space),
            "construction_ef": current.get("ef_construction", self.hnsw.construction_ef),
            "m": current.get("max_neighbors", self.hnsw.m),
        }
        wanted = self.hnsw.search_ef
        self.hnsw = self.hnsw.model_copy(update=fixed)
        if current and current.get("ef_search") != wanted:
            try:
                collection.modify(configuration={"hnsw": {"ef_search": wanted}})  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - an older server: search with its ef
                log.warning("could not set search ef %s on %s: %s", wanted, self.name, exc)
                self.hnsw = self.hnsw.model_copy(update={"search_ef": current.get("ef_search", wanted)})

    def _find(self, name: str) -> "Collection | None":
        try:
            return self.client.get_collection(name, embedding_function=None)
        except Exception:  # chromadb raises NotFoundError / ValueError depending on version
            return None

    # --- writing ---
    def existing(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Metadata of the ids already in the collection."""
        if not ids:
            return {}
        got = self.collection.get(ids=list(ids), include=["metadatas"])
        return {i: dict(m or {}) for i, m in zip(got["ids"], got["metadatas"] or [])}

    def upsert(
        self, ids: Sequence[str], embeddings: np.ndarray, metadatas: Sequence[dict[str, Any]]
    ) -> None:
        if len(ids) == 0:
            return
        if embeddings.shape[1] != self.dim:
            raise IndexMismatchError(
                f"embedding size {embeddings.shape[1]} does not match the collection's {self.dim}"
            )
        self.collection.upsert(ids=list(ids), embeddings=embeddings, metadatas=list(metadatas))

    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        if ids:
            self.collection.update(ids=list(ids), metadatas=list(metadatas))

    # --- reading ---
    def count(self) -> int:
        return self.collection.count()

    def query(self, embeddings: np.ndarray, k: int = 5) -> list[list[SearchHit]]:
        """Nearest images for each query vector, best first; score = cosine similarity.

        No ``count()`` on the way: Chroma counts with a scan of its SQLite table (≈ 60 ms at a
        million rows, most of a query's time), and returns fewer than ``k`` hits by itself when
        the collection is smaller. The emptiness check runs only when nothing came back.
        """
        res = self.collection.query(
            query_embeddings=np.asarray(embeddings, dtype=np.float32),
            n_results=k,
            include=["metadatas", "distances"],
        )
        if not any(res["ids"]) and self.count() == 0:
            raise VlagentError(
                f"the index {self.name!r} (dataset {self.dataset!r}) is empty: run `vlagent index` first"
            )
        out: list[list[SearchHit]] = []
        for ids, metas, dists in zip(res["ids"], res["metadatas"] or [], res["distances"] or []):
            out.append(
                [
                    SearchHit(
                        id=i,
                        image=str((m or {}).get("file", "")),
                        title=str((m or {}).get("title", "")),
                        source=str((m or {}).get("source", "")),
                        score=self.hnsw.score(float(d)),
                    )
                    for i, m, d in zip(ids, metas, dists)
                ]
            )
        return out

    def embeddings_of(self, ids: Sequence[str]) -> np.ndarray:
        got = self.collection.get(ids=list(ids), include=["embeddings"])
        order = {i: n for n, i in enumerate(got["ids"])}
        return np.asarray([got["embeddings"][order[i]] for i in ids], dtype=np.float32)


def other_models(client: "ClientAPI", dataset: str, model_id: str) -> list[str]:
    """Model ids that built collections of ``dataset`` (to explain an empty search)."""
    found = []
    for col in client.list_collections():
        meta = col.metadata or {}
        other = str(meta.get("model_id"))
        if other.startswith("image-text/"):  # the image-text index (vlagent.index.text_index)
            continue
        if meta.get("dataset") == dataset and meta.get("model_id") != model_id:
            found.append(str(meta.get("model_id")))
    return found
