"""Speaking: Piper and Kokoro stock voices, XTTS-v2 cloning, the offline voice converter, the
speaker encoder and the checks on a user's recorded clips."""
