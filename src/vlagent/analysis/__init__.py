"""``vlagent analyze``: which kinds of questions a query file holds, three ways side by side.

* :mod:`.questions` — read ``query.json`` (or a JSONL of labelled questions) with gold types;
* :mod:`.clusters` — TF-IDF over jieba words + KMeans, k chosen by silhouette;
* :mod:`.llm_labels` — the agent's classifier with its LLM, cached in a JSONL (resumable);
* :mod:`.agreement` — adjusted Rand index and cross-tabs between the methods;
* :mod:`.report` — report.json, report.md and a bar chart.
"""
