"""A teacher's soft targets, computed once and cached, for distillation without the teacher.

Running the teacher beside the student costs a second network's forward pass at every step; on
a CPU that doubles a run. `cache_targets` runs it once per frame instead: logits averaged over
scales and horizontal flips (a better teacher than one view), stored at a reduced resolution
(e.g. 180x240) in fp16, one `.npy` per frame named by the frame's file stem, with a manifest
naming the teacher's file, model and weights' digest, the views and the exposure target its
frames were brightened to, and holding the teacher's provenance and metrics (a student's
lineage then reaches its teacher's). Training warps each frame's cached logits through the
crop's own geometry (`data.crop_grid`), so the target always matches the view the student sees
(replaying fixed whole-frame targets overfits: Beyer et al., "Knowledge distillation: a good
teacher is patient and consistent", CVPR 2022); for the same reason a student must brighten
its frames as the teacher did.

    python -m lgcnet_research.train.targets TEACHER.pt --fold A -o runs/targets_fold_a
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lgcnet_deploy.core.exposure import normalise_exposure
from lgcnet_deploy.core.metadata import ModelMeta
from lgcnet_research.train.data import frames_of, normalize
from lgcnet_research.train.folds import FOLD_CHOICES, Frames, fold_frames
from lgcnet_research.train.peer import load_peer
from lgcnet_research.train.teacher import TEACHERS

TARGETS_FORMAT = "lgcnet-teacher-targets/1"
MANIFEST = "targets.json"


class TargetsError(ValueError):
    """A targets folder is missing, of another format, or lacks a frame."""


@torch.no_grad()
def teacher_logits(teacher: nn.Module, bgr: np.ndarray, scales: Sequence[float],
                   flip: bool) -> torch.Tensor:
    """The teacher's logits (C, H, W) for one BGR frame, averaged over its views: every scale,
    and its mirror when `flip`, each resized back to the frame."""
    x = normalize(bgr)[None]
    size, total, views = x.shape[-2:], 0.0, 0
    for scale in scales:
        xs = x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bilinear",
                                                align_corners=False)
        for mirrored in (False, True) if flip else (False,):
            y = teacher(xs.flip(-1) if mirrored else xs)
            y = y.flip(-1) if mirrored else y
            total = total + F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            views += 1
    return (total / views)[0]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cache_targets(teacher_path: Path, frames: Frames, out: Path,
                  size: tuple[int, int] = (180, 240), scales: Sequence[float] = (0.75, 1.0, 1.25),
                  flip: bool = True, progress: bool = True) -> Path:
    """Write the teacher's averaged logits of every frame to `out` (resumable: frames already
    written are kept when the manifest's teacher and views are the same); returns `out`."""
    from tqdm import tqdm

    teacher, payload = load_peer(teacher_path)
    teacher.eval()
    exposure = ModelMeta.from_dict(payload["meta"], teacher_path).exposure_target
    identity = {"format": TARGETS_FORMAT, "teacher": teacher_path.name,
                "teacher_digest": file_digest(teacher_path), "size": list(size),
                "scales": list(scales), "flip": flip, "dtype": "float16"}
    out.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(out) if (out / MANIFEST).is_file() else None
    if old is not None and {k: old.get(k) for k in identity} != identity:
        raise TargetsError(f"{out} holds targets of another teacher or views "
                           f"({old.get('teacher')}, {old.get('teacher_digest')}); write these "
                           f"to a new folder")
    # the teacher's own record travels with its targets into every student's provenance, so a
    # student's lineage names the frames its teacher learnt from (fold_eval.check_unseen)
    manifest = {**identity, "model": payload.get("model"), "exposure_target": exposure,
                "metrics": payload.get("metrics") or {},
                "provenance": payload.get("provenance") or {}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    for i, image in enumerate(tqdm(frames.images, desc="teacher targets", disable=not progress)):
        dest = out / f"{Path(image).stem}.npy"
        if dest.is_file():
            continue
        logits = teacher_logits(teacher, normalise_exposure(frames[i][0], exposure), scales,
                                flip)
        small = F.interpolate(logits[None], size=tuple(size), mode="bilinear",
                              align_corners=False)[0]
        tmp = dest.with_suffix(".partial.npy")
        np.save(tmp, small.half().numpy())
        tmp.replace(dest)
    return out


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise TargetsError(f"{folder} holds no teacher targets ({MANIFEST} missing): write "
                           f"them with `python -m lgcnet_research.train.targets TEACHER.pt -o "
                           f"{folder}`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != TARGETS_FORMAT:
        raise TargetsError(f"{path}: format {manifest.get('format')!r}, expected "
                           f"{TARGETS_FORMAT!r}")
    return manifest


def manifest_current(folder: Path) -> bool:
    """Whether `folder`'s manifest records all a student checks; one written before it
    recorded the teacher's exposure is brought up to date by caching the folder again."""
    path = folder / MANIFEST
    return path.is_file() and "exposure_target" in json.loads(path.read_text())


def check_exposure(manifest: dict[str, Any], exposure_target: float | None,
                   folder: Path) -> None:
    """Refuse targets whose teacher saw each frame brightened otherwise than the student will
    (`exposure_target`): its soft labels would describe another view than the student's."""
    if "exposure_target" not in manifest:
        raise TargetsError(f"{folder}: its manifest does not say how the teacher's frames were "
                           f"brightened; cache them again with `python -m "
                           f"lgcnet_research.train.targets TEACHER.pt --fold F -o {folder}` "
                           f"(the frames already cached are kept, the manifest is rewritten)")
    if manifest["exposure_target"] != exposure_target:
        raise TargetsError(f"{folder} holds the targets of a teacher that saw frames with "
                           f"exposure target {manifest['exposure_target']}; this run uses "
                           f"{exposure_target}: train with --exposure-target="
                           f"{manifest['exposure_target']}, or cache targets of a teacher "
                           f"trained with {exposure_target}")


def load_targets(folder: str | Path, images: Sequence[str | Path],
                 exposure_target: float | None = None
                 ) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """The cached logits of the frames `images` (fp16 tensors, in that order) and the
    manifest; every frame must be there, and the teacher's exposure target must be the
    student's (`exposure_target`)."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    check_exposure(manifest, exposure_target, folder)
    stems = [Path(p).stem for p in images]
    missing = [s for s in stems if not (folder / f"{s}.npy").is_file()]
    if missing:
        raise TargetsError(f"{folder} lacks the teacher's targets of {len(missing)} of "
                           f"{len(stems)} training frames (e.g. {missing[0]}): cache them for "
                           f"these frames (the same fold) first")
    return [torch.from_numpy(np.load(folder / f"{s}.npy")) for s in stems], manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lgcnet_research.train.targets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("teacher", type=Path, help=f"the teacher's checkpoint (lgcnet train --model "
                                               f"{' | '.join(TEACHERS)})")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write")
    p.add_argument("--fold", choices=FOLD_CHOICES, help="the fold's training frames (default: "
                                                       "CamVid train)")
    p.add_argument("--data", help="CamVid root (default: $LGCNET_CAMVID)")
    p.add_argument("--size", type=int, nargs=2, default=(180, 240), metavar=("H", "W"))
    p.add_argument("--scales", type=float, nargs="+", default=(0.75, 1.0, 1.25))
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = fold_frames(args.fold, args.data)[0] if args.fold else frames_of("train", args.data)
    cache_targets(args.teacher, frames, args.output, tuple(args.size), args.scales,
                  not args.no_flip)
    print(f"wrote {args.output}: {len(frames)} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
