"""Stage 2, candidates: ``plan`` turns a profile and constraints into queries, ``fusion``
combines their ranked answers (RRF, MMR), ``retriever`` asks the item index in batches."""
