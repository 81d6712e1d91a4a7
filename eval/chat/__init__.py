"""`tastelens eval chat`: conversational recommendation measured on human dialogues."""
