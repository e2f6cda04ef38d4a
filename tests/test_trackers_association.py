"""ByteTrack and BoT-SORT on crafted scenes: crossings, occlusions, low-confidence stretches, camera jumps."""

import dataclasses
import itertools

import cv2
import numpy as np
import pytest

from trackers import BOTSORT, BYTETracker, TrackerConfig, build_tracker
from trackers.gmc import GMC
from trackers.matching import box_iou, fuse_score, linear_assignment

BYTE = TrackerConfig()
BOT = TrackerConfig(tracker_type="botsort", gmc_method="none")


def det(x, y, conf=0.9, cls=0, w=30, h=30):
    return [x, y, x + w, y + h, conf, cls]


def ids_by_object(tracker, frames, imgs=None):
    """For each frame, {object index (the detection's row) -> track id} of the tracks reported."""
    out = []
    for k, rows in enumerate(frames):
        tracks = tracker.update(np.array(rows, dtype=float).reshape(-1, 6), None if imgs is None else imgs[k])
        out.append({int(t[7]): int(t[4]) for t in tracks})
    return out


def test_iou_fuse_and_assignment_by_hand():
    a = np.array([[0.0, 0, 10, 10]])
    b = np.array([[0.0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert box_iou(a, b)[0] == pytest.approx([1, 50 / 150, 0])
    assert fuse_score(1 - box_iou(a, b), np.array([0.5, 1.0, 1.0]))[0] == pytest.approx([0.5, 1 - 1 / 3, 1])
    cost = np.array([[0.1, 0.2, 0.9], [0.15, 0.9, 0.9], [0.9, 0.9, 0.95]])
    matches, rows, cols = linear_assignment(cost, 0.8)
    # row 0 gives way to row 1 on column 0 (0.2 + 0.15 < 0.1 + 0.9); row 2's best (0.9) is over the limit
    assert sorted(map(tuple, matches.tolist())) == [(0, 1), (1, 0)]
    assert rows.tolist() == [2] and cols.tolist() == [2]
    # one cheap pair saves more than two pairs just under the limit: 0.8 - 0.1 > 2 * (0.8 - 0.75)
    matches, _, _ = linear_assignment(np.array([[0.1, 0.75], [0.75, 0.9]]), 0.8)
    assert matches.tolist() == [[0, 0]]


def test_assignment_saves_as_much_as_the_best_of_every_partial_matching():
    """Exhaustive check, without the optional lap: over every way to pair rows with distinct columns or leave them
    unmatched, with pairs above the limit not allowed, none saves more than the solver's matching."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        cost = np.where(rng.random((3, 4)) < 0.6, rng.random((3, 4)), 1.0)
        ours, _, _ = linear_assignment(cost, 0.8)
        assert all(cost[i, j] <= 0.8 for i, j in ours)
        best = 0.0
        for cols in itertools.product([None, 0, 1, 2, 3], repeat=3):
            pairs = [(i, j) for i, j in enumerate(cols) if j is not None]
            if len({j for _, j in pairs}) == len(pairs) and all(cost[p] <= 0.8 for p in pairs):
                best = max(best, sum(0.8 - cost[p] for p in pairs))
        assert (0.8 - cost[tuple(ours.T)]).sum() == pytest.approx(best)


def test_scipy_assignment_solves_lapjvs_problem():
    lap = pytest.importorskip("lap")  # optional: the benchmark compares the two solvers where it is installed
    rng = np.random.default_rng(0)
    for _ in range(500):
        cost = np.where(rng.random((6, 8)) < 0.5, rng.random((6, 8)), 1.0)
        ours, _, _ = linear_assignment(cost, 0.8)
        _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=0.8)
        theirs = [(i, j) for i, j in enumerate(x) if j >= 0]
        assert (0.8 - cost[tuple(ours.T)]).sum() == pytest.approx(sum(0.8 - cost[p] for p in theirs))


@pytest.mark.parametrize("cfg", [BYTE, BOT])
def test_two_objects_crossing_keep_their_ids(cfg):
    tracker = build_tracker(cfg)
    # A goes right on y=40, B goes left on y=52: their boxes overlap most (IoU 0.43) where they cross
    frames = [[det(10 + 4 * t, 40), det(170 - 4 * t, 52)] for t in range(40)]
    seen = ids_by_object(tracker, frames)
    assert all(len(s) == 2 for s in seen)
    assert {s[0] for s in seen} == {seen[0][0]} and {s[1] for s in seen} == {seen[0][1]}
    assert seen[0][0] != seen[0][1]


@pytest.mark.parametrize("cfg", [BYTE, BOT])
def test_object_hidden_shorter_than_track_buffer_gets_its_id_back(cfg):
    def run(hidden):
        tracker = build_tracker(cfg)
        frames = [[det(10 + 3 * t, 50)] if not 10 <= t < 10 + hidden else [] for t in range(10 + hidden + 10)]
        return ids_by_object(tracker, frames)

    seen = run(hidden=20)  # < track_buffer (30)
    assert all(s == {} for s in seen[10:30]) and {s[0] for s in seen[:10] + seen[30:]} == {1}
    seen = run(hidden=40)  # > track_buffer: the track was dropped, the object comes back as a new track
    assert seen[9][0] == 1 and seen[-1][0] == 2


def test_bytetrack_keeps_an_object_through_low_confidence_frames():
    frames = [[det(10 + 3 * t, 50, conf=0.3 if 10 <= t < 20 else 0.9)] for t in range(30)]
    seen = ids_by_object(BYTETracker(BYTE), frames)
    assert [s.get(0) for s in seen] == [1] * 30  # the second stage matches the 0.3 boxes (track_low_thresh 0.1)
    without = dataclasses.replace(BYTE, track_low_thresh=0.5)  # no second stage for them: lost, then found again
    seen = ids_by_object(BYTETracker(without), frames)
    assert all(s == {} for s in seen[10:20]) and seen[25] == {0: 1}


def test_new_tracks_need_new_track_thresh_and_are_confirmed_on_their_second_frame():
    tracker = BYTETracker(BYTE)
    seen = ids_by_object(tracker, [[det(0, 0)], [det(0, 0), det(100, 100, conf=0.55)], [det(0, 0), det(100, 100)],
                                   [det(0, 0), det(100, 100)], [det(0, 0), det(100, 100)]])
    assert seen[0] == {0: 1}  # confirmed at once on the first frame
    assert seen[1] == {0: 1}  # 0.55 < new_track_thresh 0.6: no track
    assert seen[2] == {0: 1}  # started (id 2), reported from its second frame
    assert seen[3] == seen[4] == {0: 1, 1: 2}


def textured(h=240, w=320, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((h, w)) * 255).astype(np.uint8), (5, 5), 1.5)


@pytest.mark.parametrize("method", ["sparseOptFlow", "ecc"])
def test_gmc_finds_a_camera_shift(method):
    big = cv2.cvtColor(textured(300, 400), cv2.COLOR_GRAY2BGR)
    gmc = GMC(method)
    assert gmc.apply(big[20:260, 20:340]).tolist() == np.eye(2, 3).tolist()  # first frame: nothing to compare
    warp = gmc.apply(big[20 + 6:260 + 6, 20 + 10:340 + 10])  # camera moved right 10, down 6: content moves -10, -6
    assert warp[:, :2] == pytest.approx(np.eye(2), abs=0.02)
    assert warp[:, 2] == pytest.approx([-10, -6], abs=0.5)


def test_botsort_motion_compensation_keeps_ids_through_a_camera_jump():
    world = cv2.cvtColor(textured(400, 600, seed=1), cv2.COLOR_GRAY2BGR)
    objects = [(100, 100), (200, 150), (300, 100)]  # still in the world; the camera jumps 24 px at frame 6
    cams = [(0, 0)] * 6 + [(24, 0)] * 6
    imgs = [world[cy:cy + 240, cx:cx + 320] for cx, cy in cams]
    frames = [[det(x - cx, y - cy) for x, y in objects] for cx, cy in cams]
    with_gmc = ids_by_object(BOTSORT(dataclasses.replace(BOT, gmc_method="sparseOptFlow")), frames, imgs)
    assert all(s == with_gmc[0] for s in with_gmc)
    no_gmc = ids_by_object(BOTSORT(BOT), frames, imgs)  # IoU 0.11 after the jump: every object starts a new track
    assert no_gmc[-1] and not set(no_gmc[-1].values()) & set(no_gmc[0].values())


def test_botsort_with_reid_matches_by_appearance_within_the_gates():
    img = np.full((200, 300, 3), 128, np.uint8)
    img[50:80, 50:80] = (0, 0, 255)
    img[50:80, 100:130] = (255, 0, 0)
    tracker = BOTSORT(dataclasses.replace(BOT, with_reid=True))
    tracker.update(np.array([det(50, 50), det(100, 50)], float), img)
    assert all(t.feat is not None and np.linalg.norm(t.feat) == pytest.approx(1) for t in tracker.tracks)
    red, blue = tracker.tracks
    cost = tracker.distance([red, blue], tracker_candidates(tracker, [det(52, 50), det(102, 50)], img))
    assert cost[0, 0] < 0.05 and cost[1, 1] < 0.05 and cost[0, 1] > 0.5


def tracker_candidates(tracker, rows, img):
    from trackers.byte_tracker import Candidates

    dets = np.array(rows, float)
    return Candidates(dets, np.arange(len(dets)), tracker.features(img, dets[:, :4]))
