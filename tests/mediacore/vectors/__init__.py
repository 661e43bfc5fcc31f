"""Known-answer vectors, one module per RFC (the values are copied from the RFC text)."""
