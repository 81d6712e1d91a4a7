"""Stage 3, re-ranking: ``prompt`` is the ranking prompt (shared with the ranking fine-tuning
data), ``reranker`` orders the retrieved candidates with the LLM."""
