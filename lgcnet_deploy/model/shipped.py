"""The models shipped inside the package, addressable by short name: `Segmenter("lgcnet-camvid")`,
`lgcnet predict --model lgcnet-camvid ...`. Their provenance is in each checkpoint
(`lgcnet info lgcnet-camvid`)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# short name -> checkpoint file in weights/
SHIPPED_MODELS = {
    "lgcnet-camvid": "lgcnet_camvid.pt",  # the default: random-search genotype, CamVid, 11 classes
    "lgcnet-camvid-searched": "lgcnet_camvid_searched.pt",  # the gradient search's genotype
    "lgcnet-camvid-handwritten": "lgcnet_camvid_handwritten.pt",  # paper-like widths
}
DEFAULT_MODEL = "lgcnet-camvid"


def resolve_model(source: str | Path) -> str | Path:
    """A shipped model's short name -> its checkpoint path; anything else unchanged (an
    existing file of that name wins over the short name)."""
    name = str(source)
    if name in SHIPPED_MODELS and not Path(name).exists():
        return WEIGHTS_DIR / SHIPPED_MODELS[name]
    return source


def default_model_path() -> Path:
    return WEIGHTS_DIR / SHIPPED_MODELS[DEFAULT_MODEL]
