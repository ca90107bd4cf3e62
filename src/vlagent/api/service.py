"""What the web UI and the HTTP API share: one agent per process, image names checked against
the catalogue and the session's uploads, answers as a whole or step by step, catalogue search."""

from __future__ import annotations

import hashlib
import re
import logging
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from vlagent.agent.names import display_name
from vlagent.agent.types import Answer, RetrievedImage
from vlagent.api.steps import Step, steps_of
from vlagent.api.uploads import UploadError, UploadFolder
from vlagent.data.queries import check_question
from vlagent.errors import ImageNotAllowedError, VlagentError
from vlagent.settings import Settings
from vlagent.agent.build import build_agent

log = logging.getLogger(__name__)


class SearchUnavailableError(VlagentError):
    """No retrieval tool for this kind of query here (e.g. image search without a CLIP model)."""


class AgentService:
    """The agent, built once, and everything a request needs around it."""

    def __init__(self, agent: Any, settings: Settings, catalogue: list[Path] | None = None) -> None:
        self.agent = agent
        self.settings = settings
        self.catalogue = [Path(p) for p in catalogue or []]
        self._tmp = tempfile.TemporaryDirectory(prefix="vlagent-uploads-")
        self.upload_root = Path(self._tmp.name)
        self._allow(self.upload_root)  # the image sandbox: uploads become readable, nothing else

    @classmethod
    def from_settings(
        cls, settings: Settings, images: list[Path] | None = None, annotations: Path | None = None
    ) -> "AgentService":
        """Build the agent (models load once, here) over ``images`` or ``settings.catalogue``."""

        catalogue = list(images or settings.catalogue)
        annotations = annotations or settings.annotations
        agent = build_agent(settings, images=catalogue, annotations=annotations)
        return cls(agent, settings, catalogue)

    # ------------------------------------------------------------------ uploads and names
    def uploads(self, key: str | None = None) -> UploadFolder:
        """The upload folder of a session (``key``: a thread id or a session token; None: a new one)."""
        token = hashlib.sha256(key.encode()).hexdigest()[:24] if key else uuid.uuid4().hex
        return UploadFolder(self.upload_root / token, self.settings.upload_max_bytes, self.settings.max_image_pixels)

    def _allow(self, root: Path) -> None:
        resolver = getattr(getattr(self.agent, "ctx", None), "resolver", None)
        allow = getattr(resolver, "allow", None)
        if callable(allow):
            allow(root)

    def in_catalogue(self, name: str) -> bool:
        resolver = getattr(getattr(self.agent, "ctx", None), "resolver", None)
        if Path(name).is_absolute() or ".." in Path(name).parts:
            return False
        for source in getattr(resolver, "sources", []) or []:
            if name in source:
                return True
        return False

    def catalogue_names(self) -> list[str]:
        resolver = getattr(getattr(self.agent, "ctx", None), "resolver", None)
        names: list[str] = []
        for source in getattr(resolver, "sources", []) or []:
            names += source.names()
        return names

    def image_args(self, names: list[str], uploads: UploadFolder | None = None) -> list[str]:
        """Names a client gave → what the agent is asked about: the session's uploads (by file
        name) and catalogue images; anything else is refused with one line."""
        if len(names) > self.settings.upload_max_images:
            raise UploadError(f"{len(names)} images: at most {self.settings.upload_max_images} per question")
        out: list[str] = []
        for name in names:
            name = str(name).strip()
            if not name:
                continue
            stored = uploads.lookup(name) if uploads is not None else None
            if uploads is not None and uploads.owns(name):
                out.append(str(Path(name).resolve()))
            elif stored is not None:
                out.append(str(stored))
            elif self.in_catalogue(name):
                out.append(name)
            else:
                raise ImageNotAllowedError(
                    f"{display_name(name)}: not in the catalogue and not uploaded in this session"
                )
        return out

    # ------------------------------------------------------------------ answers
    def check_question(self, question: str) -> str:
        """The question stripped, or the one-line refusal (empty; longer than
        ``question_max_chars``: ``QuestionTooLongError``, HTTP 413) before any other work."""
        return check_question(question, self.settings.question_max_chars)

    def public(self, answer: Answer) -> Answer:
        """The answer with upload paths cut to file names (clients see names, never server paths)."""
        pattern = re.compile(re.escape(str(self.upload_root)) + r"/[^/]+/")

        def scrub(value: Any) -> Any:
            if isinstance(value, str):
                return pattern.sub("", value)
            if isinstance(value, list):
                return [scrub(v) for v in value]
            if isinstance(value, dict):
                return {k: scrub(v) for k, v in value.items()}
            return value

        return Answer.model_validate(scrub(answer.model_dump(mode="json")))

    def answer(self, question: str, images: list[str], thread_id: str | None = None) -> Answer:
        answer = self.agent.invoke(question, images=images, thread_id=thread_id)
        return self.public(answer)

    def stream(self, question: str, images: list[str], thread_id: str | None = None) -> Iterator[Step | Answer]:
        """The steps as they happen, then the :class:`Answer`."""
        tid = thread_id or f"ephemeral-{uuid.uuid4().hex}"
        try:
            for update in self.agent.stream(question, images=images, thread_id=tid):
                yield from steps_of(update)
            yield self.public(self.agent.to_answer(self.agent.state(tid)))
        finally:
            if thread_id is None:
                self.agent.forget(tid)

    def forget(self, thread_id: str) -> None:
        self.agent.forget(thread_id)

    # ------------------------------------------------------------------ catalogue search
    def _tool(self, *names: str) -> Any:
        tools = self.agent.parts.tools
        return next((tools[n] for n in names if n in tools), None)

    def search(self, text: str | None = None, image: str | None = None, k: int = 8) -> list[RetrievedImage]:
        """Text → images (CLIP, or titles without CLIP) or image → images, best first."""
        if image:
            tool, args = self._tool("image_search"), {"image": image, "k": k}
            why = self.agent.parts.unavailable.get("image_search", "no image search tool")
        elif text and text.strip():
            text = check_question(text, self.settings.question_max_chars, what="query")
            tool, args = self._tool("clip_search", "title_search"), {"text": text, "k": k}
            why = self.agent.parts.unavailable.get("clip_search", "no search tool")
        else:
            raise VlagentError("type a query or upload an image to search with")
        if tool is None:
            raise SearchUnavailableError(f"search is not available here: {why}")
        msg = tool.invoke({"type": "tool_call", "name": tool.name, "args": args, "id": "search"})
        hits = msg.artifact if isinstance(getattr(msg, "artifact", None), list) else []
        return [
            RetrievedImage(image=h["image"], score=float(h["score"]), title=h.get("title", ""), by=str(h.get("by", "")))
            for h in hits
        ]

    def thumbnail(self, name: str, side: int = 256) -> Image.Image:
        resolver = self.agent.ctx.resolver
        image = resolver.load(name).image.copy()
        image.thumbnail((side, side))
        return image

    def close(self) -> None:
        self._tmp.cleanup()
