"""Hyperparameter evolution: mutation, clipping and the evolve.csv / hyp_evolve.yaml record."""

import numpy as np
import yaml

from utils.evolve import EVOLVE_RESULT_KEYS, mutate_hyp
from utils.loggers import print_mutation


def test_evolve_mutation_and_record(tmp_path):
    rng = np.random.default_rng(0)
    meta = {"lr0": (1, 1e-5, 1e-1), "momentum": (0.3, 0.6, 0.98), "fl_gamma": (0, 0.0, 2.0)}
    hyp = {"lr0": 0.5, "momentum": 0.9, "fl_gamma": 0.0, "other": 7}
    first = mutate_hyp(hyp, meta, tmp_path / "evolve.csv", rng)
    assert first == {"lr0": 0.1, "momentum": 0.9, "fl_gamma": 0.0, "other": 7}  # no history: only clipped
    print_mutation(EVOLVE_RESULT_KEYS, (0.5, 0.5, 0.6, 0.3, 0.1, 0.1, 0.1),
                   {k: first[k] for k in meta}, tmp_path)
    child = mutate_hyp(first, meta, tmp_path / "evolve.csv", rng)
    assert child["fl_gamma"] == 0.0  # mutation scale 0: never mutated
    assert child["lr0"] != 0.1 or child["momentum"] != 0.9
    assert 1e-5 <= child["lr0"] <= 0.1 and 0.6 <= child["momentum"] <= 0.98
    best = yaml.safe_load((tmp_path / "hyp_evolve.yaml").read_text())
    assert best == {"lr0": 0.1, "momentum": 0.9, "fl_gamma": 0.0}
