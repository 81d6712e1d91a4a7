"""Jobs over many users, in one process or on a Ray cluster: the profile job
(:mod:`.profile_job`, on Ray :mod:`.ray_profile`), batch recommendations for every user
(:mod:`.batch`), joining a Ray cluster (:mod:`.raycluster`) and the LLM servers the workers
call (:mod:`.servers`)."""
