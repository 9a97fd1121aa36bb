"""Shared audio: the codec every stage decodes and encodes with, and the signal processing
the voice stages share (resampling, pitch)."""
