"""Stage 1, the interest profile: ``facts`` (deterministic, from data), ``drift`` (long-term vs
recent interest), ``profiler`` (facts + one validated LLM call) and ``job`` (profiles for
many users into the profile store, resumable)."""
