"""Where datasets come from; each source returns splits in the store format."""
