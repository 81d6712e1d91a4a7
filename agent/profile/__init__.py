"""Stage 1, the interest profile: ``facts`` (deterministic, from data), ``drift`` (long-term vs
recent interest), ``profiler`` (facts + one validated LLM call). The job that profiles many
users into the profile store is in :mod:`tastelens.agent.jobs`."""
