"""The package version (stage 0, so every stage can stamp it into what it writes)."""

__version__ = "0.1.0"
