"""Parts of bench/detection.py (not a benchmark of their own)."""
