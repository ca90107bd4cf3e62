"""Distributed indexing and batch evaluation on Ray (``--engine ray``).

Ray runs the same code on a laptop (a local Ray started for the run) and on a cluster
(``--address auto`` or ``ray://head:10001``). The local engine stays the default; these
modules reuse its building blocks (listing, content-hash skip and upsert from
:mod:`vlagent.index.build`; the plan, journal and merge of :mod:`vlagent.evals.harness`).
"""
