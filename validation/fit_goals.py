"""Maps learned from data alone, measured against the goals of docs/neural.md ('Maps from
data'), with ``fit``'s defaults and no tuning.

Run ``NUMBA_NUM_THREADS=1 python -m validation.fit_goals`` (``--seeds 3``,
``--ground-truth truth.npz``: the paper mixture's 129² map of ``python -m gridflow
groundtruth``, built into a temporary folder when not given; about 8 s). ``--rows N`` and
``--steps K`` change the data's size and the training's length (the goals are stated for
the defaults, 10 000 rows and ``fit``'s steps), ``--problems`` runs one of the two.

For each seed s (the data and the training both drawn from seed s):

- mixture: 10 000 samples (``--rows``) of the paper's mixture → ``fit`` → UVP against the
  ground truth on 20 000 fresh samples, the KL(T#ϱ0 | γ) = E[log ϱ0 − log p_θ] on
  the same samples (the held-out NLL minus the entropy of ϱ0), and the training's wall time;
- gaussian8: 10 000 samples of a random Gaussian in d = 8 (``neural.studies.dimensions``'s
  source law) → ``fit`` to N(0, I) → UVP against the closed-form OT map; beside it the UVP
  of the OT map of the Gaussian fit of the same 10 000 rows, which knows the law's family:
  the statistical floor of the data;
- on the mixture's map: the inverse's residual ‖T(T⁻¹(y)) − y‖ over 10 000 y ~ γ with
  ‖y‖ ≤ 3 (the bulk), the energy distance of 2000 model samples to 2000 samples of ϱ0
  against that of two independent samples of ϱ0 (each the mean of 10 draws), and a
  save → load round trip compared to the bit.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from gridflow import Gaussian, LogConcaveTarget, gaussian, load_map, map_distance, save_map
from gridflow.examples import paper_mixture
from gridflow.groundtruth import build_ground_truth
from neural import load
from neural.errors import NotConvergedError
from neural.mmd import energy_distance
from neural.model import FitSettings, fit
from neural.studies.dimensions import gaussian_problem

GOALS = {
    "mixture UVP %": 0.1,
    "mixture seconds": 30.0,
    "mixture KL nats": 0.01,
    "gaussian8 UVP %": 0.02,
    "inverse residual": 1e-8,
    "sample energy ratio": 2.0,
}
EVALUATION = 20_000


def _ground_truth(path) -> object:
    if path is not None:
        return load_map(path)
    with tempfile.TemporaryDirectory() as folder:
        fine, metadata = build_ground_truth("paper-mixture", "standard", 129, progress=False)
        save_map(Path(folder) / "truth.npz", fine, metadata)
        return load_map(Path(folder) / "truth.npz")


def _sample_checks(model, source, rng, n: int = 2000, repeats: int = 10) -> dict:
    """The mean energy distance of n model samples to n samples of ϱ0 over the mean energy
    distance of two independent samples of ϱ0 of size n (each mean over ``repeats`` draws:
    one draw of either fluctuates), and the share of model samples with a coordinate beyond
    twice the largest coordinate of ϱ0's samples (in absolute value); NaN for both when
    some γ sample has no preimage."""
    try:
        samples = [model.sample(rng, n) for _ in range(repeats)]
    except NotConvergedError:
        return {"sample energy ratio": math.nan, "far samples %": math.nan}
    sources = [source.sample(rng, n) for _ in range(3 * repeats)]
    first, second, third = sources[:repeats], sources[repeats : 2 * repeats], sources[2 * repeats :]
    model_to_source = np.mean([energy_distance(a, b) for a, b in zip(samples, third, strict=True)])
    source_to_source = np.mean([energy_distance(a, b) for a, b in zip(first, second, strict=True)])
    reach = 2 * max(np.abs(x).max() for x in sources)
    far = np.mean([np.mean(np.abs(x).max(axis=1) > reach) for x in samples])
    return {
        "sample energy ratio": float(model_to_source / source_to_source),
        "far samples %": 100 * float(far),
    }


def mixture_row(seed: int, truth, rows: int, settings: FitSettings) -> dict:
    source, target = paper_mixture(), LogConcaveTarget.standard_gaussian(2)
    rng = np.random.default_rng(seed)
    result = fit(source.sample(rng, rows), settings=settings, rng=rng)
    model = result.map
    x = source.sample(rng, EVALUATION)
    x = x[np.all(np.abs(x) <= 6.0, axis=1)]
    y = target.sample(rng, 10_000)
    y = y[np.linalg.norm(y, axis=1) <= 3.0]
    residual = np.linalg.norm(model(model.inverse(y)) - y, axis=1).max()
    sample_checks = _sample_checks(model, source, rng)
    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "map.npz")
        loaded = load(Path(folder) / "map.npz")
        identical = all(
            np.array_equal(f(loaded)(x[:1000]), f(model)(x[:1000]))
            for f in (lambda m: m, lambda m: m.log_density, lambda m: m.potential)
        )
    return {
        "mixture UVP %": map_distance(model, truth, x, target).uvp,
        "mixture seconds": result.seconds,
        "mixture KL nats": float(np.mean(source.log_density(x) - model.log_density(x))),
        "held-out NLL": result.held_out_nll,
        "Gaussian fit NLL": result.gaussian_nll,
        "inverse residual": residual,
        **sample_checks,
        "save/load bit-identical": identical,
    }


def gaussian_row(seed: int, rows: int, settings: FitSettings) -> dict:
    rng = np.random.default_rng(seed)
    source_law = gaussian_problem(8, rng)[0]
    source = Gaussian(source_law.mean, source_law.cov)
    standard = Gaussian(np.zeros(8), np.eye(8))
    exact = gaussian.ot_map(source, standard)
    data = source.sample(rng, rows)
    result = fit(data, settings=settings, rng=rng)
    x = source.sample(rng, EVALUATION)
    # the statistical floor: the OT map of the Gaussian fit of all the rows (sample mean
    # and covariance), the estimate of an estimator that knows the law is Gaussian
    fitted = gaussian.ot_map(Gaussian(data.mean(axis=0), np.cov(data, rowvar=False)), standard)
    return {
        "gaussian8 UVP %": map_distance(result.map, exact, x, np.eye(8)).uvp,
        "gaussian8 Gaussian-fit UVP %": map_distance(fitted, exact, x, np.eye(8)).uvp,
        "gaussian8 seconds": result.seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m validation.fit_goals", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..S-1 (default 3)")
    parser.add_argument("--ground-truth", default=None, help="the mixture's 129² map file")
    parser.add_argument("--rows", type=int, default=10_000, help="rows of data (default 10000)")
    parser.add_argument("--steps", type=int, default=None, help="fit's steps (default fit's)")
    parser.add_argument(
        "--convexity-floor", type=float, default=None, help="fit's convexity_floor (default fit's)"
    )
    parser.add_argument(
        "--problems", nargs="+", choices=["mixture", "gaussian8"], default=["mixture", "gaussian8"]
    )
    args = parser.parse_args(argv)
    given = {"steps": args.steps, "convexity_floor": args.convexity_floor}
    settings = FitSettings(**{key: value for key, value in given.items() if value is not None})
    if os.environ.get("NUMBA_NUM_THREADS") != "1":
        print("note: the goals are stated for one thread (NUMBA_NUM_THREADS=1)")
    start = time.perf_counter()
    truth = _ground_truth(args.ground_truth) if "mixture" in args.problems else None
    rows = []
    for seed in range(args.seeds):
        row = {}
        if "mixture" in args.problems:
            row |= mixture_row(seed, truth, args.rows, settings)
        if "gaussian8" in args.problems:
            row |= gaussian_row(seed, args.rows, settings)
        rows.append(row)
    keys = list(rows[0])
    width = max(map(len, keys))
    print(f"{'':{width}}  " + "  ".join(f"seed {s:<6}" for s in range(args.seeds)) + "  goal")
    for key in keys:
        values = "  ".join(f"{row[key]!s:<11.11}" if isinstance(row[key], bool)
                           else f"{row[key]:<11.4g}" for row in rows)  # fmt: skip
        goal = GOALS.get(key)
        if goal is None:
            verdict = ""
        else:
            met = all(row[key] <= goal for row in rows)  # NaN (not onto) fails
            verdict = f"≤ {goal:g}: {'met' if met else 'NOT met'}"
        print(f"{key:{width}}  {values}  {verdict}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
