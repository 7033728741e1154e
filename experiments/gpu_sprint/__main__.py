"""`python -m experiments.gpu_sprint`: parse the flags, run the sprint, print its table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.gpu_sprint import __doc__ as DOC
from experiments.gpu_sprint.config import SprintConfig


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 if a stage failed (a stage stopped at its box is not a failure)."""
    p = argparse.ArgumentParser(prog="python -m experiments.gpu_sprint", description=DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    SprintConfig.add_flags(p)
    args = p.parse_args(argv)
    try:
        cfg = SprintConfig.from_args(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.plan:
        from experiments.gpu_sprint.plan import plan_sprint, report
        from experiments.gpu_sprint.runner import sprint_header

        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        plan, problems = plan_sprint(cfg, sprint_header(cfg))
        print(report(plan))
        return 1 if problems else 0
    from experiments.gpu_sprint.runner import run_sprint

    stages = run_sprint(cfg)["stages"].values()
    return 1 if any(str(s.get("status", "")).startswith("failed") for s in stages) else 0


if __name__ == "__main__":
    raise SystemExit(main())
