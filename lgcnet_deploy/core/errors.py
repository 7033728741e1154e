"""The exceptions a user acts on: `LgcnetError` and one subclass per kind of fault, each with
the CLI's exit code for it. Every error the SDK raises for a user derives from one of them, so
`except LgcnetError` catches them all, and each also derives from the built-in exception it
always was (ValueError, RuntimeError, ...) so existing `except` clauses keep working."""

from __future__ import annotations

from pathlib import Path

# Exit codes: 2 is argparse's for a bad command line; the rest say what kind of thing failed.
EXIT_USER_INPUT = 3  # a file, path or value the user gave is missing, unreadable or wrong
EXIT_MISSING_DEPENDENCY = 4  # an optional package (an extra) or a GPU is not there
EXIT_RUNTIME = 5  # the work itself failed (a backend, a device, the disk)


class LgcnetError(Exception):
    """Base of every error the SDK raises for a user to act on; `exit_code` is its kind."""

    exit_code = EXIT_RUNTIME


class BadInputError(LgcnetError, ValueError):
    """A file, name or value the user gave is wrong; the message says which and how to fix it."""

    exit_code = EXIT_USER_INPUT


class MissingFileError(BadInputError, FileNotFoundError):
    """A file or folder the user named is not there."""


class DamagedFileError(BadInputError):
    """A file the user gave cannot be parsed: truncated, corrupt, or not what its name says."""


class MissingDependencyError(LgcnetError, ImportError):
    """An optional package (a pip extra) or a device is not there."""

    exit_code = EXIT_MISSING_DEPENDENCY


class WorkFailedError(LgcnetError, RuntimeError):
    """The work itself failed (a backend, a device, the disk), not the user's input."""

    exit_code = EXIT_RUNTIME


# what to do about a damaged file, by what it is (the last words of `damaged`'s message)
DAMAGED_FIX = {
    "ONNX model": "re-export it (`lgcnet export CHECKPOINT.pt -o MODEL.onnx`) or copy it again",
    "checkpoint": "copy it again, or use another checkpoint (`lgcnet info FILE.pt` checks one)",
    "TensorRT engine": "rebuild it (`lgcnet build MODEL.onnx -o MODEL.engine`)",
    "video": "check that it plays (`ffprobe FILE`); re-encode it, e.g. `ffmpeg -i FILE -c:v "
             "libx264 out.mp4`",
    "image": "re-save it as JPEG or PNG",
    "genotype JSON": "fix the JSON, or start from a shipped genotype (lgcnet_deploy/model/"
                     "genotypes/default.json)",
}


def damaged(path: str | Path, what: str, cause: BaseException | str, fix: str | None = None
            ) -> DamagedFileError:
    """The one wording for a file that cannot be parsed: which file, what it should be, the
    parser's first line, and what to do (`fix`, else DAMAGED_FIX[what])."""
    fix = fix or DAMAGED_FIX[what]
    text = str(cause).strip()
    first = text.splitlines()[0][:200] if text else type(cause).__name__
    return DamagedFileError(f"{path}: damaged or truncated {what} ({first}); {fix}")
