"""Latency tables for the search's LAT term, measured on the target backend (`lut.py`), and
their check against measured whole-network latency (`check.py`)."""
