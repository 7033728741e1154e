"""Segment a video, an image folder or a webcam; overlay + legend + live FPS; write an MP4.

    python samples/video_demo.py $LGCNET_CAMVID/val/images -o out/camvid_val.mp4
    python samples/video_demo.py 0 --model lgcnet.engine --device cuda     # webcam 0
"""

import argparse

from lgcnet_deploy import Segmenter
from lgcnet_deploy.cli.commands.predict import segment_video
from lgcnet_deploy.model.shipped import DEFAULT_MODEL

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
ap.add_argument("source", help="video file, folder of frames, or webcam index")
ap.add_argument("-o", "--output", default="out/video_demo.mp4")
ap.add_argument("--model", default=str(DEFAULT_MODEL), help=".onnx, .pt or .engine")
ap.add_argument("--device", default="cpu")
ap.add_argument("--alpha", type=float, default=0.5)
ap.add_argument("--max-frames", type=int, default=None)
args = ap.parse_args()

with Segmenter(args.model, device=args.device) as seg:  # pipelined: decode overlaps inference
    run = segment_video(seg, args.source, args.output, args.alpha, args.max_frames, progress=True)
    ms = ", ".join(f"{k} {v:.1f}" for k, v in seg.speed.items())
    print(f"wrote {run.path} ({run.frames} frames); last frame ms: {ms}")
