"""Heartline's domain: types, emotions, personas, prompts, moderation policy and the pipeline.

Nothing here performs I/O; backends live in `models/` and `storage/` and are wired in `config/`.
"""
