"""Rewrite the absolute paths a checkpoint's provenance names (and, for text files such as
genotype JSON, the whole text) to paths relative to the repository or the CamVid root, so a
shipped file names nothing of the machine that trained it. The weights stay byte-identical:
only the other parts of the checkpoint are rewritten, and the tool reloads the file and
compares every tensor before it keeps the result.

    python -m experiments.scrub_provenance lgcnet_deploy/model/weights/*.pt \\
        lgcnet_deploy/model/genotypes/*.json [--map OLD=NEW ...] [--replace OLD=NEW ...]
    python -m experiments.scrub_provenance --check FILES...     # report only, exit 1 if any

A path under the repository becomes relative to it; one under a CamVid root becomes
`$LGCNET_CAMVID/...`; any other folder needs a `--map` (for example a runs folder kept
outside the checkout: `--map /elsewhere/runs=runs`). A file that would still name an absolute
path, or the word "session", is left as it was and reported.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = "state_dict"
# An absolute POSIX path of two or more components, not part of a URL or a relative path.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~$-])/(?:[\w.+~-]+/)+[\w.+~-]*")
SESSION = re.compile(r"\bsessions?\b", re.IGNORECASE)


def text_problems(text: str) -> list[str]:
    """The absolute paths and the mentions of working sessions in `text`."""
    return ABSOLUTE_PATH.findall(text) + [m.group(0) for m in SESSION.finditer(text)]


def provenance_problems(obj: Any, where: str = "") -> list[str]:
    """`where: found` for every string in a nested dict/list that names an absolute path or a
    working session (dict keys included)."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for item in (k, v)
                for p in provenance_problems(item, f"{where}/{k}")]
    if isinstance(obj, list | tuple):
        return [p for i, v in enumerate(obj) for p in provenance_problems(v, f"{where}[{i}]")]
    if isinstance(obj, str):
        return [f"{where or '/'}: {found}" for found in text_problems(obj)]
    return []


def path_rewriter(maps: dict[str, str], root: Path = ROOT,
                  data_roots: tuple[Path, ...] = ()) -> Callable[[str], str]:
    """A function that rewrites every absolute path in a string: `maps` prefixes first
    (longest first), then the CamVid roots (`$LGCNET_CAMVID/...`), then the repository
    (relative to it); other paths are left for `provenance_problems` to report."""
    prefixes = sorted({**{str(d): "$LGCNET_CAMVID" for d in data_roots},
                       **maps}.items(), key=lambda kv: -len(kv[0]))

    def one(match: re.Match[str]) -> str:
        path = match.group(0)
        for old, new in prefixes:
            if path == old or path.startswith(old.rstrip("/") + "/"):
                rest = path[len(old.rstrip("/")):].lstrip("/")
                return "/".join(p for p in (new.rstrip("/"), rest) if p) or "."
        if path == str(root) or path.startswith(f"{root}/"):
            return path[len(str(root)):].lstrip("/") or "."
        return path

    return lambda text: ABSOLUTE_PATH.sub(one, text)


def rewrite(obj: Any, fix: Callable[[str], str]) -> Any:
    """`obj` with `fix` applied to every string (dict keys included), structure unchanged."""
    if isinstance(obj, dict):
        return {rewrite(k, fix): rewrite(v, fix) for k, v in obj.items()}
    if isinstance(obj, list):
        return [rewrite(v, fix) for v in obj]
    if isinstance(obj, tuple):
        return tuple(rewrite(v, fix) for v in obj)
    return fix(obj) if isinstance(obj, str) else obj


def scrub_checkpoint(path: Path, fix: Callable[[str], str]) -> list[str]:
    """Rewrite every part of a .pt checkpoint but its weights; returns the problems left
    (then the file is not written)."""
    import torch

    from lgcnet_deploy.model.checkpoint import save_payload

    payload = torch.load(path, map_location="cpu", weights_only=True)
    rest = {k: v for k, v in payload.items() if k != WEIGHTS}
    scrubbed = rewrite(rest, fix)
    left = provenance_problems(scrubbed)
    if left or scrubbed == rest:
        return left
    scrubbed = {k: payload[WEIGHTS] if k == WEIGHTS else scrubbed[k] for k in payload}
    save_payload(path, scrubbed)
    check_weights_unchanged(payload[WEIGHTS], torch.load(path, map_location="cpu",
                                                         weights_only=True)[WEIGHTS], path)
    return []


def check_weights_unchanged(before: dict, after: dict, path: Path) -> None:
    """Every tensor of `after` has the name, dtype, shape and bytes of `before`'s."""
    if before.keys() != after.keys():
        raise RuntimeError(f"{path}: the rewritten file holds other tensors")
    import torch

    for name, t in before.items():
        u = after[name]
        if (t.dtype, t.shape) != (u.dtype, u.shape) or not torch.equal(
                t.contiguous().reshape(-1).view(torch.uint8),
                u.contiguous().reshape(-1).view(torch.uint8)):
            raise RuntimeError(f"{path}: tensor {name} changed in the rewrite")


def scrub_text(path: Path, fix: Callable[[str], str]) -> list[str]:
    """Rewrite a text file (JSON, logs) in place, formatting kept; returns the problems left."""
    text = path.read_text()
    new = fix(text)
    left = text_problems(new)
    if not left and new != text:
        path.write_text(new)
    return left


def parse_pairs(pairs: list[str], flag: str) -> dict[str, str]:
    """OLD=NEW strings → a dict; a pair without `=` is a usage error."""
    out = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old:
            raise SystemExit(f"{flag} wants OLD=NEW, got {pair!r}")
        out[old] = new
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path, help=".pt checkpoints or text files")
    p.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                   help="rewrite paths under the folder OLD as NEW/... (repeatable)")
    p.add_argument("--data-root", action="append", default=[], type=Path,
                   help="a CamVid root to write as $LGCNET_CAMVID (repeatable; default: "
                        "$LGCNET_CAMVID when set)")
    p.add_argument("--replace", action="append", default=[], metavar="OLD=NEW",
                   help="literal text to replace in every string (wording), repeatable")
    p.add_argument("--check", action="store_true", help="only report what a file names")
    args = p.parse_args(argv)
    from lgcnet_deploy.core.data import CAMVID_ENV

    env_root = os.environ.get(CAMVID_ENV)
    data_roots = tuple(args.data_root) or ((Path(env_root).resolve(),) if env_root else ())
    move = path_rewriter(parse_pairs(args.map, "--map"), ROOT, data_roots)
    words = parse_pairs(args.replace, "--replace")

    def fix(text: str) -> str:
        for old, new in words.items():
            text = text.replace(old, new)
        return move(text)

    bad = 0
    for path in args.files:
        scrub = scrub_checkpoint if path.suffix in (".pt", ".pth") else scrub_text
        left = scrub(path, (lambda s: s) if args.check else fix)
        bad += bool(left)
        print(f"{path}: " + ("clean" if not left else f"{len(left)} left: " + "; ".join(left[:8])))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
