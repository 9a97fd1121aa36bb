"""Toxicity checkers: the packaged profanity model and Detoxify."""
