"""Segment one image and save the overlay and the class map.

    python samples/image_demo.py street.jpg --model lgcnet.onnx
"""

import argparse
from pathlib import Path

import cv2

from lgcnet_deploy import Segmenter
from lgcnet_deploy.core.data import read_image
from lgcnet_deploy.model.shipped import DEFAULT_MODEL

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
ap.add_argument("image")
ap.add_argument("--model", default=str(DEFAULT_MODEL))
ap.add_argument("-o", "--out", default="out/image_demo")
args = ap.parse_args()

seg = Segmenter(args.model)
r = seg.predict(read_image(args.image))  # any size; resized to the model and back
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
cv2.imwrite(str(out / "overlay.png"), r.overlay(0.5))
cv2.imwrite(str(out / "mask.png"), r.mask)
top = sorted(r.class_fractions().items(), key=lambda kv: -kv[1])[:4]
print(f"{out}/overlay.png; " + ", ".join(f"{n} {f:.0%}" for n, f in top) + f"; {r.speed}")
