"""Task kinds: loss, metrics with direction, and split-level accumulation."""
