"""Emotion readers: from the words (MiniLM head, GoEmotions), the face (FER, DeepFace) and the
voice (prosody)."""
