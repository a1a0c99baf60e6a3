"""Root conftest: kept minimal.

Its presence inside the ``tests`` package makes pytest put the repository root on
``sys.path``, so every test can ``from tests.helpers.tiny_model import make_tiny_model_dir``.
"""
