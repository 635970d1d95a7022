"""The scenario suite (see programs.py)."""
