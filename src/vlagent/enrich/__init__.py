"""Batch jobs over a catalogue: captions, categories."""
