"""Tally: model evaluation metrics over billion-row tables from mergeable count tables."""

__version__ = "0.1.0"
