"""Helpers shared by test areas (tiny models, small data)."""
