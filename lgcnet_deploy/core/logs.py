"""The SDK's log: one logger, `lgcnet_deploy`, whose level also decides how much the libraries
underneath may print on their own: ONNX Runtime's C++ log (its notices about initializers it
removes or nodes it places are graph notices, not faults: shown from "info" on) and FFmpeg
inside OpenCV (a dropped stream's lines: shown from "info" on). `lgcnet --log-level LEVEL`
sets it; in Python, `logging.getLogger("lgcnet_deploy").setLevel(...)`."""

from __future__ import annotations

import logging
import os

LOGGER = logging.getLogger("lgcnet_deploy")
LEVELS = ("debug", "info", "warning", "error")
# ONNX Runtime's severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal
_ORT_SEVERITY = {logging.DEBUG: 0, logging.INFO: 1}
# FFmpeg's AV_LOG_* levels as OpenCV reads them from OPENCV_FFMPEG_LOGLEVEL
_FFMPEG_LEVEL = {logging.DEBUG: "48", logging.INFO: "32"}


def _level() -> int:
    level = LOGGER.getEffectiveLevel()
    return logging.DEBUG if level <= logging.DEBUG else (
        logging.INFO if level <= logging.INFO else logging.WARNING)


def ort_severity() -> int:
    """The ONNX Runtime log severity that matches the SDK's log level."""
    return _ORT_SEVERITY.get(_level(), 3)


def configure(level: str = "warning") -> None:
    """The command line's logging: the SDK's records on stderr from `level` on, and the
    libraries' own output held to the same level."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: choose one of {', '.join(LEVELS)}")
    logging.basicConfig(format="lgcnet %(levelname)s: %(message)s")
    LOGGER.setLevel(level.upper())
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = _FFMPEG_LEVEL.get(_level(), "-8")
