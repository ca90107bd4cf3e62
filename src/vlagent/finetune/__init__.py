"""Contrastive fine-tuning of the retrieval CLIP on a catalogue's image-title pairs.

* :mod:`.data` — pairs from ``train_annotation.csv`` + the image source, the seeded held-out split;
* :mod:`.towers` — the trainable view of a loaded encoder (open_clip or transformers), its
  parameter groups and where the best weights are written for ``vlagent index``;
* :mod:`.freeze` — which parameters train;
* :mod:`.metrics` — text→image recall@k on the held-out split;
* :mod:`.train` — the loop (symmetric InfoNCE, warmup + cosine, accumulation, AMP, resume).
"""
