"""The vision engines: OCR, captioning, VQA, colours, and what they do to images first."""
