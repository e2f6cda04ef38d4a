"""Kalman filters of the trackers against values computed by hand (all covariances stay diagonal per coordinate)."""

import numpy as np
import pytest

from trackers.kalman import KalmanFilterXYAH, KalmanFilterXYWH


def test_xyah_initiate_predict_update_by_hand():
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(np.array([[10.0, 20.0, 0.5, 40.0]]))
    assert mean[0].tolist() == [10, 20, 0.5, 40, 0, 0, 0, 0]
    # std: 2 * h / 20 = 4 for x, y, h; 1e-2 for a; 10 * h / 160 = 2.5 for the velocities; 1e-5 for a's
    assert np.diag(cov[0]) == pytest.approx([16, 16, 1e-4, 16, 6.25, 6.25, 1e-10, 6.25])

    mean, cov = kf.predict(mean, cov)
    assert mean[0, :4].tolist() == [10, 20, 0.5, 40]  # still: no velocity yet
    # x: 16 + 6.25 (velocity) + (40 / 20)^2 (process noise); x-vx covariance 6.25; vx: 6.25 + (40 / 160)^2
    assert cov[0, 0, 0] == pytest.approx(26.25)
    assert cov[0, 0, 4] == pytest.approx(6.25)
    assert cov[0, 4, 4] == pytest.approx(6.3125)
    assert cov[0, 2, 2] == pytest.approx(2e-4 + 1e-10)

    mean, cov = kf.update(mean, cov, np.array([[12.0, 20.0, 0.5, 40.0]]))
    s = 26.25 + 4  # innovation variance of x: predicted + measurement noise (40 / 20)^2
    assert mean[0, 0] == pytest.approx(10 + 2 * 26.25 / s)  # 11.7355
    assert mean[0, 4] == pytest.approx(2 * 6.25 / s)  # the velocity learns from the same innovation
    assert mean[0, 1] == pytest.approx(20) and mean[0, 5] == pytest.approx(0)
    assert cov[0, 0, 0] == pytest.approx(26.25 * 4 / s)
    assert cov[0, 4, 4] == pytest.approx(6.3125 - 6.25**2 / s)


def test_xywh_noise_scales_x_by_width_and_y_by_height():
    kf = KalmanFilterXYWH()
    mean, cov = kf.initiate(np.array([[10.0, 20.0, 30.0, 40.0]]))
    assert np.diag(cov[0]) == pytest.approx(np.square([3, 4, 3, 4, 1.875, 2.5, 1.875, 2.5]))
    mean, cov = kf.predict(mean, cov)
    assert cov[0, 0, 0] == pytest.approx(9 + 1.875**2 + 1.5**2)
    assert cov[0, 1, 1] == pytest.approx(16 + 2.5**2 + 2**2)


@pytest.mark.parametrize("kf", [KalmanFilterXYAH(), KalmanFilterXYWH()])
def test_constant_velocity_is_learned_and_batches_match_single_tracks(kf):
    boxes = np.array([[0.0, 0, 20, 30], [100, 50, 140, 70]])
    mean, cov = kf.initiate(kf.from_xyxy(boxes))
    for t in range(1, 30):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, kf.from_xyxy(boxes + [3 * t, -t, 3 * t, -t]))
    assert mean[:, 4:6] == pytest.approx(np.array([[3, -1], [3, -1]]), abs=0.05)
    assert kf.to_xyxy(mean) == pytest.approx(boxes + [87, -29, 87, -29], abs=0.2)
    one_mean, one_cov = kf.predict(mean[1:], cov[1:])
    both_mean, both_cov = kf.predict(mean, cov)
    assert one_mean[0] == pytest.approx(both_mean[1]) and one_cov[0] == pytest.approx(both_cov[1])


@pytest.mark.parametrize("kf", [KalmanFilterXYAH(), KalmanFilterXYWH()])
def test_box_conversions_round_trip(kf):
    boxes = np.array([[1.0, 2, 11, 42], [5, 5, 6, 9]])
    assert kf.to_xyxy(np.pad(kf.from_xyxy(boxes), ((0, 0), (0, 4)))) == pytest.approx(boxes)
