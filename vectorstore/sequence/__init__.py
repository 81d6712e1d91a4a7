"""The sequence model that turns a history into a user vector: SASRec (network and
trainer), whose item vectors live in Chroma's behaviour collection."""
