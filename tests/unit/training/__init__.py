"""Tests for model/train.py and textclf train."""
