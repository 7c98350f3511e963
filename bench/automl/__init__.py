"""Parts of bench/automl_quality.py (not a benchmark of their own)."""
