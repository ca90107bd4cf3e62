"""One browser session of the web UI: its chat thread, its private upload folder, the images
picked in Search for the next question."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from vlagent.api.service import AgentService
from vlagent.api.uploads import UploadFolder


@dataclass
class WebSession:
    service: AgentService
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    thread_id: str = field(default_factory=lambda: f"ui-{uuid.uuid4().hex}")
    pending: list[str] = field(default_factory=list)  # catalogue images picked in Search
    _uploads: UploadFolder | None = None

    @property
    def uploads(self) -> UploadFolder:
        if self._uploads is None:
            self._uploads = self.service.uploads(f"ui-session-{self.token}")
        return self._uploads

    @property
    def eval_dir(self) -> Path:
        return self.uploads.root.with_name(self.uploads.root.name + "-eval")

    def new_thread(self) -> None:
        self.service.forget(self.thread_id)
        self.thread_id = f"ui-{uuid.uuid4().hex}"
        self.pending = []

    def close(self) -> None:
        self.service.forget(self.thread_id)
        if self._uploads is not None:
            shutil.rmtree(self.eval_dir, ignore_errors=True)
            self._uploads.remove()


def ensure(session: WebSession | None, service: AgentService) -> WebSession:
    return session if isinstance(session, WebSession) else WebSession(service)
