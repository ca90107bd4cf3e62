"""The agent's graph for LangGraph's own server (``langgraph dev`` / LangGraph Platform), named
in ``langgraph.json``. The server brings threads, runs, streaming and the checkpointer, so the
graph is compiled without one. Configuration comes from settings (``VLAGENT_*``): the catalogue
is ``VLAGENT_CATALOGUE='["images/"]'`` and ``VLAGENT_ANNOTATIONS=train_annotation.csv``.

Input: ``{"question": "...", "images": ["catalogue_name.jpg"]}``; a follow-up on the same
thread may leave ``images`` out and refers to the previous turn's images. Output: the graph
state (``answer``, ``classification``, ``trace``, ``retrieved``, ``evidence``, ``error``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from vlagent.agent.build import build_agent
from vlagent.agent.graph import build_graph
from vlagent.settings import Settings


@lru_cache(maxsize=1)
def make_graph() -> Any:
    """Build the agent once per server process (models load here) and return its graph."""

    settings = Settings()
    agent = build_agent(settings, images=list(settings.catalogue), annotations=settings.annotations)
    return build_graph(agent.parts, checkpointer=None)


#: what langgraph.json names; importing this module builds the agent (only LangGraph's server does)
graph = make_graph()
