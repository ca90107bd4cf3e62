"""Session fixtures (see conftest.py)."""
