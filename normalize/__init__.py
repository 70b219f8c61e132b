"""Normalisation: source records → events and occurrences of the unified schema."""
