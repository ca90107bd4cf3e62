"""Search the image index by text or by image, with the encoder that built it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vlagent.errors import VlagentError
from vlagent.index.store import ImageIndex, SearchHit, other_models
from vlagent.models.clip import ClipEncoder, encoder_from_settings
from vlagent.settings import Settings


class Retriever:
    """A CLIP encoder and the index collection it built."""

    def __init__(self, encoder: ClipEncoder, index: ImageIndex) -> None:
        self.encoder = encoder
        self.index = index
        self._text_vectors: dict[str, np.ndarray] = {}

    def prime_texts(self, texts: list[str]) -> int:
        """Encode many query texts in batches ahead of time (the batch harness); returns how many."""
        todo = sorted({t for t in texts if t not in self._text_vectors})
        for text, vec in zip(todo, self.encoder.encode_texts(todo)):
            self._text_vectors[text] = vec
        return len(todo)

    @classmethod
    def from_settings(cls, settings: Settings, encoder: ClipEncoder | None = None) -> "Retriever":
        encoder = encoder or encoder_from_settings(settings)
        index = ImageIndex.open(settings, encoder.model_id, encoder.dim)
        if index.count() == 0:
            others = other_models(index.client, settings.dataset, encoder.model_id)
            hint = (
                f"; dataset {settings.dataset!r} was indexed with {', '.join(others)} — "
                "set VLAGENT_CLIP_MODEL to that model"
                if others
                else ""
            )
            raise VlagentError(
                f"no images indexed for dataset {settings.dataset!r} with {encoder.model_id}: "
                f"run `vlagent index IMAGES` first{hint}"
            )
        return cls(encoder, index)

    def search_texts(self, texts: list[str], k: int = 5) -> list[list[SearchHit]]:
        missing = [t for t in texts if t not in self._text_vectors]
        fresh = dict(zip(missing, self.encoder.encode_texts(missing))) if missing else {}
        vectors = np.stack([self._text_vectors.get(t, fresh.get(t)) for t in texts])
        return self.index.query(vectors, k)

    def search_text(self, text: str, k: int = 5) -> list[SearchHit]:
        return self.search_texts([text], k)[0]

    def search_image(self, image: Image.Image, k: int = 5) -> list[SearchHit]:
        return self.index.query(self.encoder.encode_images([image]), k)[0]
