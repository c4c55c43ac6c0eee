"""The deployment engine: steps (`step`), their graph (`dag`), persistent state (`state`), the
workspace lock (`lock`), the concurrent runner (`runner`), progress views (`progress`) and the
wiring of one command (`session`)."""
