"""The agent: question cards, classifier, plan, graph, answer writer.

Importing the package registers the built-in question cards (:mod:`vlagent.agent.cards`), so
``QuestionType`` knows them before any module of the agent is used."""

from vlagent.agent import cards as _cards  # noqa: F401 - registers the built-in question types
