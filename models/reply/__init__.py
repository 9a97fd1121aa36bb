"""Reply writers: the local model (ONNX int4 or transformers, with LoRA), an OpenAI-compatible
API, the rule-based replies, and the language identifier their checks use."""
