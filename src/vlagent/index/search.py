"""Search the image index by text or by image, with the encoder that built it."""

from __future__ import annotations

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
        return self.index.query(self.encoder.encode_texts(texts), k)

    def search_text(self, text: str, k: int = 5) -> list[SearchHit]:
        return self.search_texts([text], k)[0]

    def search_image(self, image: Image.Image, k: int = 5) -> list[SearchHit]:
        return self.index.query(self.encoder.encode_images([image]), k)[0]
