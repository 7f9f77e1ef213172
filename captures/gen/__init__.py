"""Helpers for make_captures.py: PKI, peers, capture on lo, scenarios."""
