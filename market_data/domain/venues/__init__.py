"""Pure venue knowledge: parsers from each venue's frames to `Tick`, and the deduper."""
