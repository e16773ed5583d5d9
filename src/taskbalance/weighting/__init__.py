"""Loss-based weighting methods."""
