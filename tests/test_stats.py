"""Statistics for ablations: hand-computed means, sample stds, t quantiles and intervals."""

import math

import pytest

from utils.stats import betainc, confidence_interval, mean, paired_difference, std, summarize, t_cdf, t_ppf


def test_mean_and_sample_std_hand_computed():
    x = [1.0, 2.0, 3.0, 4.0]
    assert mean(x) == 2.5
    # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3
    assert std(x) == pytest.approx(math.sqrt(5 / 3), rel=1e-12)
    assert math.isnan(std([1.0]))
    with pytest.raises(ValueError, match="empty"):
        mean([])


@pytest.mark.parametrize("t", [-3.0, -0.5, 0.0, 0.7, 2.0, 40.0])
def test_t_cdf_matches_closed_forms(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)  # Cauchy
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


@pytest.mark.parametrize("p,df,expected", [
    (0.975, 1, 12.706204736), (0.975, 2, 4.302652730), (0.975, 3, 3.182446305), (0.975, 10, 2.228138852),
    (0.975, 30, 2.042272456), (0.9, 1, 3.077683537), (0.995, 5, 4.032142984), (0.975, 1000, 1.962339081)])
def test_t_ppf_published_values(p, df, expected):
    assert t_ppf(p, df) == pytest.approx(expected, abs=1e-8)
    assert t_ppf(1 - p, df) == pytest.approx(-expected, abs=1e-8)
    assert t_cdf(t_ppf(p, df), df) == pytest.approx(p, abs=1e-12)


def test_betainc_edges_and_symmetry():
    assert betainc(2.0, 3.0, 0.0) == 0.0 and betainc(2.0, 3.0, 1.0) == 1.0
    # I_x(1, 1) = x and I_x(a, b) = 1 - I_{1-x}(b, a)
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3, abs=1e-13)
    assert betainc(2.5, 0.5, 0.8) == pytest.approx(1 - betainc(0.5, 2.5, 0.2), abs=1e-13)
    # I_x(2, 1) = x^2
    assert betainc(2.0, 1.0, 0.6) == pytest.approx(0.36, abs=1e-13)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        betainc(1.0, 1.0, 1.5)


def test_confidence_interval_hand_computed():
    lo, hi = confidence_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305 * math.sqrt(5 / 3) / 2  # t(0.975, 3) * s / sqrt(n)
    assert lo == pytest.approx(2.5 - half, abs=1e-8) and hi == pytest.approx(2.5 + half, abs=1e-8)
    assert lo == pytest.approx(0.445739, abs=1e-6)
    s = summarize([5.0])
    assert s["n"] == 1 and s["mean"] == 5.0 and math.isnan(s["std"]) and math.isnan(s["ci_lo"])


def test_paired_difference_hand_computed():
    a, b = [0.5, 0.6, 0.7], [0.4, 0.55, 0.58]
    d = paired_difference(a, b)  # differences 0.10, 0.05, 0.12: mean 0.09, s = sqrt(0.0026 / 2)
    assert d["n"] == 3
    assert d["mean"] == pytest.approx(0.09, abs=1e-12)
    assert d["std"] == pytest.approx(math.sqrt(0.0013), abs=1e-12)
    half = 4.302652730 * math.sqrt(0.0013) / math.sqrt(3)
    assert d["ci_lo"] == pytest.approx(0.09 - half, abs=1e-8) and d["ci_hi"] == pytest.approx(0.09 + half, abs=1e-8)
    # pairing matters: the unpaired spread of a is larger than that of the differences
    assert d["std"] < std(a)
    with pytest.raises(ValueError, match="length"):
        paired_difference([1.0], [1.0, 2.0])
