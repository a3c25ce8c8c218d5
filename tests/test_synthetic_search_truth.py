"""The generator's second truth column: P(a search finds contraband) for every stop, searched or not."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.schema import SEARCHED
from pipeline.synthetic import generate as synthetic
from pipeline.synthetic.model import contraband_probability, draw_outcomes, sample_features
from pipeline.synthetic.world import build_world

ROWS, SEED = 6_000, 21


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    """(raw CSV text frame, sidecar frame) of a small generated file written through the CLI."""
    path = tmp_path_factory.mktemp("search_truth") / "stops.csv"
    assert synthetic.main(["--rows", str(ROWS), "--seed", str(SEED), "--out", str(path)]) == 0
    return pd.read_csv(path, dtype=str), pd.read_csv(synthetic.truth_path(path))


def test_sidecar_has_both_columns_for_every_row(small_file):
    raw, sidecar = small_file
    assert list(sidecar.columns) == [synthetic.TRUTH_COLUMN, synthetic.SEARCH_TRUTH_COLUMN]
    assert len(sidecar) == len(raw) == ROWS
    assert sidecar.notna().all().all() and ((sidecar > 0) & (sidecar < 1)).all().all()


def test_search_truth_equals_the_contraband_truth_on_searched_rows_only(small_file):
    raw, sidecar = small_file
    searched = (raw[SEARCHED] == "True").to_numpy()
    found, if_searched = sidecar[synthetic.TRUTH_COLUMN].to_numpy(), sidecar[synthetic.SEARCH_TRUTH_COLUMN].to_numpy()
    # 6 significant digits are written, so equal up to rounding on searched rows
    np.testing.assert_allclose(if_searched[searched], found[searched], rtol=1e-5)
    # unsearched stops: contraband *found* is near zero (0.12% in the real file); a search would find far more
    assert found[~searched].mean() < 0.005 < 0.03 < if_searched[~searched].mean()


def test_search_truth_is_the_searched_probability_of_the_same_columns():
    """Recomputed from the world: an unsearched stop searched under its own SAC code."""
    world = build_world()
    rng = np.random.default_rng(5)
    features = sample_features(world, 3_000, rng)
    searched, sac, _, (found, if_searched) = draw_outcomes(world, features, rng)
    expected = contraband_probability(world, features, np.ones(searched.size, bool), sac)
    np.testing.assert_array_equal(if_searched, expected)
    np.testing.assert_array_equal(found[searched], if_searched[searched])
    assert (~searched).sum() > 2_000


def test_generate_keeps_its_two_item_shape_and_bytes():
    """Callers of ``generate`` are unchanged: same frame and contraband truth as the three-item form."""
    frame, truth = synthetic.generate(500, 4)
    frame3, truth3, search_truth = synthetic.generate_with_search_truth(500, 4)
    pd.testing.assert_frame_equal(frame, frame3)
    np.testing.assert_array_equal(truth, truth3)
    assert search_truth.shape == truth.shape
