"""A recommendation chat on top of the pipeline: ``session`` (state and turns), ``intent``
(rules), ``reader`` (the LLM's guided-JSON reading, merged with the rules), ``catalog``
(title and genre look-ups), ``reply`` (the sentences) and ``tools`` (a tool-calling agent
over the same operations)."""
