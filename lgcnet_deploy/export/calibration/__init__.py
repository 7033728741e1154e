"""INT8 calibration input: the shipped CamVid list (package data beside this file) and folders
of a user's own frames (`frames.py`)."""
