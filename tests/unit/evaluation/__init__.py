"""Tests for textclf evaluate."""
