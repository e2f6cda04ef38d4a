"""HOTA, MOTA and IDF1 on tiny ground truths computed by hand and against TrackEval, MOT file parsing and errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from trackers.metrics import evaluate, evaluate_arrays, format_scores
from trackers.mot import format_rows, read_mot

REFERENCE = Path(__file__).parent / "fixtures" / "trackeval_reference.json"


def rows(*boxes):
    """MOT rows (frame, id, x, y, w, h, conf) from tuples (frame, id, x, y, w, h[, conf])."""
    return np.array([(*b, 1)[:7] for b in boxes], dtype=float)


def test_perfect_result_scores_one():
    gt = rows(*[(f, k, 10 * k, 0, 10, 10) for f in range(1, 6) for k in (1, 2)])
    s = evaluate_arrays(gt, gt)
    assert (s["HOTA"], s["MOTA"], s["IDF1"], s["IDSW"], s["FP"], s["FN"]) == (1, 1, 1, 0, 0, 0)


def test_one_id_switch_by_hand():
    gt = rows(*[(f, 1, 0, 0, 10, 10) for f in range(1, 5)])
    res = rows(*[(f, 1 if f <= 2 else 2, 0, 0, 10, 10) for f in range(1, 5)])
    s = evaluate_arrays(gt, res)
    assert s["MOTA"] == pytest.approx(1 - 1 / 4)  # 1 - (FN + FP + IDSW) / GT = 1 - (0 + 0 + 1) / 4
    assert s["IDSW"] == 1
    # IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN): gt 1 <-> result 1 shares 2 frames, so IDTP 2, IDFP 2, IDFN 2
    assert s["IDF1"] == pytest.approx(0.5)
    # HOTA = sqrt(DetA * AssA): every box matched (DetA 1); each match's association 2 / (2 + 2 + 0) = 0.5
    assert s["DetA"] == pytest.approx(1) and s["AssA"] == pytest.approx(0.5)
    assert s["HOTA"] == pytest.approx(np.sqrt(0.5))


def test_localisation_enters_hota_through_its_alphas():
    # IoU 0.625: a match for the 12 alphas 0.05 ... 0.60 of TrackEval's 19 (0.05 ... 0.95), a miss for the others
    s = evaluate_arrays(rows((1, 1, 0, 0, 10, 10)), rows((1, 7, 0, 0, 10, 6.25)))
    assert s["HOTA"] == pytest.approx(12 / 19)
    assert s["MOTA"] == 1 and s["MOTP"] == pytest.approx(0.625)  # CLEAR counts a match from IoU 0.5


def test_misses_and_false_positives_by_hand():
    gt = rows((1, 1, 0, 0, 10, 10), (2, 1, 0, 0, 10, 10), (2, 2, 50, 50, 10, 10))
    res = rows((1, 5, 0, 0, 10, 10), (2, 5, 0, 0, 10, 10), (2, 6, 80, 80, 10, 10))  # gt 2 missed, one stray box
    s = evaluate_arrays(gt, res)
    assert (s["FN"], s["FP"], s["IDSW"]) == (1, 1, 0)
    assert s["MOTA"] == pytest.approx(1 - 2 / 3)
    assert s["IDF1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_ignored_ground_truth_neither_rewards_nor_punishes():
    gt = rows((1, 1, 0, 0, 10, 10), (1, 2, 50, 50, 10, 10, 0))  # gt 2 is marked 'not considered'
    hit = evaluate_arrays(gt, rows((1, 1, 0, 0, 10, 10), (1, 2, 50, 50, 10, 10)))
    miss = evaluate_arrays(gt, rows((1, 1, 0, 0, 10, 10)))
    assert hit == miss and hit["FP"] == 0 and hit["MOTA"] == 1


def test_format_rows_is_motchallenge_and_reads_back(tmp_path):
    tracks = np.array([[10.0, 20.0, 40.0, 60.0, 3, 0.875, 1, 0]])  # x1 y1 x2 y2 id conf cls idx
    line = format_rows(7, tracks)
    assert line == "7,3,10.00,20.00,30.00,40.00,0.8750,-1,-1,-1\n"  # top-left x, y and w, h in pixels
    (tmp_path / "r.txt").write_text(line)
    assert read_mot(tmp_path / "r.txt").tolist() == [[7, 3, 10, 20, 30, 40, 0.875]]


def test_evaluate_files_and_table(tmp_path):
    (tmp_path / "gt.txt").write_text("1,1,0,0,10,10,1,1,1.0\n2,1,1,0,10,10,1,1,1.0\n")
    (tmp_path / "res.txt").write_text("1,4,0,0,10,10,0.9,-1,-1,-1\n2,4,1,0,10,10,0.9,-1,-1,-1\n")
    s = evaluate(tmp_path / "gt.txt", tmp_path / "res.txt")
    head, vals = format_scores(s)
    assert head.split() == ["HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW", "FP", "FN"]
    assert vals.split()[3] == "100.0" and vals.split()[-3:] == ["0", "0", "0"]
    assert evaluate(tmp_path / "gt.txt", tmp_path / "none.txt")["FN"] == 2  # no result file: everything missed


@pytest.mark.parametrize("text, match", [
    ("1,1,0,0,10,10\n2,1,0,0,10\n", r"gt.txt:2: expected at least 6"),
    ("1,1,0,0,10,10\n\n3,a,0,0,10,10\n", r"gt.txt:3: non-numeric"),
    ("0,1,0,0,10,10\n", r"gt.txt:1: frame must be a whole number from 1"),
    ("1,1,0,0,-4,10\n", r"gt.txt:1: negative box width"),
    ("1,1.5,0,0,4,10\n", r"gt.txt:1: id must be a whole number"),
    ("1,1,0,0,nan,10\n", r"gt.txt:1: non-finite"),
])
def test_malformed_ground_truth_names_the_file_and_line(tmp_path, text, match):
    (tmp_path / "gt.txt").write_text(text)
    with pytest.raises(ValueError, match=match):
        evaluate(tmp_path / "gt.txt", tmp_path / "res.txt")


def test_missing_or_empty_ground_truth(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.txt not found"):
        evaluate(tmp_path / "nothere.txt", tmp_path / "res.txt")
    (tmp_path / "gt.txt").write_text("\n")
    with pytest.raises(ValueError, match="has no boxes"):
        evaluate(tmp_path / "gt.txt", tmp_path / "res.txt")


def random_sequence(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth and a result with misses, jitter, id swaps and changes, stray boxes (one box per id and frame)."""
    rng = np.random.default_rng(seed)
    n, frames = int(rng.integers(2, 6)), int(rng.integers(10, 30))
    pos, vel, ids = rng.uniform(0, 100, (n, 2)), rng.normal(0, 3, (n, 2)), np.arange(1, n + 1)
    gt, res = [], []
    for t in range(1, frames + 1):
        pos += vel
        ids = rng.permutation(ids) if rng.random() < 0.1 else ids + 10 if rng.random() < 0.05 else ids
        for k in range(n):
            if rng.random() < 0.9:
                gt.append((t, k + 1, *pos[k], 20, 20, 1))
            if rng.random() < 0.85:
                res.append((t, ids[k], *(pos[k] + rng.normal(0, 4, 2)), 20, 20, 1))
        if rng.random() < 0.3:
            res.append((t, 999, *rng.uniform(0, 100, 2), 20, 20, 1))
    return np.array(gt, float), np.array(res, float)


def test_scores_equal_trackevals_on_random_sequences():
    # tests/fixtures/trackeval_reference.json: TrackEval 1.3.0's HOTA, CLEAR and Identity classes run on the same
    # sequence_data() input for these seeds (trackeval is not a dependency: it pulls in a second OpenCV)
    ref = json.loads(REFERENCE.read_text())["seeds"]
    for seed, want in ref.items():
        got = evaluate_arrays(*random_sequence(int(seed)))
        assert got == pytest.approx(want, abs=1e-12), seed
    assert len({round(v["IDF1"], 6) for v in ref.values()}) == len(ref)  # six different cases


def test_one_box_per_id_and_frame(tmp_path):
    (tmp_path / "r.txt").write_text("1,1,0,0,10,10\n1,2,0,0,10,10\n1,1,5,5,10,10\n")
    with pytest.raises(ValueError, match=r"r.txt:3: id 1 appears twice in frame 1"):
        read_mot(tmp_path / "r.txt")
