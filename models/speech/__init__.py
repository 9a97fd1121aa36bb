"""Speech to text: faster-whisper."""
