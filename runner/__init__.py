"""Training and evaluation (heavy imports of torch, transformers and peft happen lazily, inside runner only)."""
