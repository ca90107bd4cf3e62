"""The agent: question cards, the understanding pass, plan, graph, answer writer.

Importing the package registers nothing: :func:`vlagent.agent.build.build_agent` assembles the
agent's one spec (:mod:`vlagent.agent.spec`) and hands it to each part."""
