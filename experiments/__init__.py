"""Experiments on the research library: one-off studies and the scripts behind the shipped
models and the committed results. Not part of the wheel; run them from the repository root
(a checkout with the `[dev]` extra installed) as `python -m experiments.<name>`:

    gpu_sprint/      everything a short GPU run should answer (its README.md)
    sanity.py        the NAS sanity check: searched vs random genotypes at one predicted latency
    pareto.py        accuracy against cost: val mIoU, parameters, FLOPs, latency per model
    parity.py        the same model through every backend and precision: mIoU and agreement
    agreement.py     seed agreement of searches, and the convergence of their choices
    gradient_snr.py  the α gradient's signal against its noise across seeds
    ship.py          a trained checkpoint -> a package model, with its lineage
    configs/         the settings each experiment ran with

Their results live in results/, their tests in tests/.
"""
