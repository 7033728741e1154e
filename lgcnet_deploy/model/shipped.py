"""The models shipped inside the package, addressable by short name: `Segmenter("lgcnet-camvid")`,
`lgcnet predict --model lgcnet-camvid ...`. Each ships twice in weights/: NAME.pt, the
checkpoint (provenance in it: `lgcnet info`), and NAME.onnx, its export (360x480 uint8 BGR in,
class map out, weights digest in its metadata) that the base install runs without torch.
`make shipped-onnx` re-exports every .pt; tests/test_shipped.py holds each ONNX to a fresh
export of its checkpoint."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from lgcnet_deploy.core.errors import BadInputError, MissingFileError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# short name -> file stem in weights/ (STEM.pt and STEM.onnx)
SHIPPED_MODELS = {
    "lgcnet-camvid": "lgcnet_camvid",  # the default: ImageNet trunk under random-0 cells, CamVid
    "lgcnet-camvid-searched": "lgcnet_camvid_searched",  # the gradient search's genotype
    "lgcnet-camvid-handwritten": "lgcnet_camvid_handwritten",  # paper-like widths
}
# short name -> the CamVid splits its training lineage saw, as its checkpoint's provenance says
# (tests/test_shipped.py holds the two equal); for `lgcnet eval` in the base install
SHIPPED_TRAINED_ON = {"lgcnet-camvid": ("train", "val"), "lgcnet-camvid-searched": ("train",),
                      "lgcnet-camvid-handwritten": ("train",)}
DEFAULT_MODEL = "lgcnet-camvid"  # what Segmenter() and `lgcnet predict` run without --model
SHIPPED_SUFFIXES = (".pt", ".onnx")


class UnknownModelError(MissingFileError):
    """A model name that is neither a file nor a shipped model."""


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """'; did you mean 'x'?' for the closest of `names`, or ''."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_model_name(source: str | Path) -> None:
    """UnknownModelError for a name without a file suffix that is neither a file nor a shipped
    model (a typo): it lists the shipped names and suggests the closest."""
    name = str(source)
    if Path(name).suffix or name in SHIPPED_MODELS or Path(name).exists():
        return
    raise UnknownModelError(f"{name!r} is neither a model file nor a shipped model ("
                            f"{', '.join(SHIPPED_MODELS)}){did_you_mean(name, SHIPPED_MODELS)}")


def shipped_file(name: str, suffix: str = ".pt") -> Path:
    """The checkpoint (.pt) or the exported ONNX (.onnx) of a shipped model."""
    if suffix not in SHIPPED_SUFFIXES:
        raise BadInputError(f"shipped models are {' and '.join(SHIPPED_SUFFIXES)} files, not "
                            f"{suffix!r}")
    return WEIGHTS_DIR / f"{SHIPPED_MODELS[name]}{suffix}"


def resolve_model(source: str | Path, suffix: str = ".pt") -> str | Path:
    """A shipped model's short name -> its checkpoint (.pt: export, training) or, with
    suffix=".onnx", its shipped ONNX (what runs); anything else unchanged (an existing file
    of that name wins over the short name)."""
    name = str(source)
    if name in SHIPPED_MODELS and not Path(name).exists():
        return shipped_file(name, suffix)
    return source

