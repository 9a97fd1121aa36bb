"""The local web chat: the front door when no platform token is set."""
