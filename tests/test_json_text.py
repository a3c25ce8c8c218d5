"""service.json_text: orjson's speed, the standard library's bytes, whatever the value (issue 15)."""
from __future__ import annotations

import dataclasses
import json
import math
import random
import struct
import uuid
from datetime import datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.schema import validate_observation
from pipeline.scoring.artifact import load_artifact
from service import json_text
from service.json_text import _same_as_json
from tests.test_schema import DRY_RUN


def _standard(value, sort_keys=False, ensure_ascii=True, default=None) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=default)


def _both_ways(value, **options) -> None:
    assert json_text.dumps(value, **options) == _standard(value, **options)


@dataclasses.dataclass
class _Point:
    x: int


class _Text(str):
    pass


EDGES = [math.nan, math.inf, -math.inf, [math.nan, None], 1e-5, 9.99e-05, 1.5e-07, 5e-324, 1e16, 1e300, -0.0, 0.0001,
         2**63, -(2**63) - 1, 10**30, "Grüße", "\u00e9\u4e2d", "\x7f", "".join(map(chr, range(32))), "\ud800",
         {"b": 1, "a": [1, 2.5, None, True]}, (1, 2), [[[[]]]], {"k": "null"}, "1e-5", _Text("sub"), {1: "int key"},
         {"ü": 1, "u": 2}, {"z": {"y": 0.1, "x": -1e-6}}]


@pytest.mark.parametrize("value", EDGES, ids=repr)
@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_edge_values_give_the_standard_librarys_bytes(value, sort_keys, ensure_ascii):
    _both_ways(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)


def test_types_json_does_not_know_go_to_default_as_before():
    for value in ([datetime(2018, 5, 16, 4, 8)], {"p": _Point(1)}):
        _both_ways(value, sort_keys=True, default=str)
        with pytest.raises(TypeError):
            json_text.dumps(value)
    # orjson writes a UUID itself, as str() does: what Flask's default gives (without one, json would refuse it).
    _both_ways({"id": uuid.UUID(int=7)}, sort_keys=True, default=str)


def test_refusals_are_the_standard_librarys():
    with pytest.raises(TypeError):
        json_text.dumps({1: "a", "b": 2}, sort_keys=True)  # mixed keys cannot be sorted
    deep = []
    for _ in range(400):  # deeper than orjson goes; json recurses
        deep = [deep]
    _both_ways(deep)


def test_random_floats_give_the_standard_librarys_bytes():
    rng = random.Random(15)
    for index in range(50_000):
        if index % 2:
            value = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
        else:
            value = rng.uniform(-1, 1) * 10 ** rng.uniform(-9, 18)
        _both_ways([value, {"p": value}])


def test_dry_run_answers_take_orjsons_path_with_the_same_bytes():
    """Nearly every real answer is written by orjson (the speed-up is real); every one has json.dumps' bytes.

    An answer holding an effect below 1e-4 (1 of 223 with the shrinkage default: -4.1e-05) takes the standard
    library's path, as it must: orjson would write it as 0.000041...
    """
    model = load_artifact()
    fast = 0
    for raw in DRY_RUN:
        record = validate_observation(raw)
        reasons = model.reasons(record)
        answer = {"observation_id": uuid.uuid4().hex, "should_search": True,
                  "probability": model.predict_one(record), "model_version": model.version, "reasons": reasons}
        fast += _same_as_json(orjson.dumps(answer, option=orjson.OPT_SORT_KEYS), ensure_ascii=True)
        _both_ways(answer, sort_keys=True)
        _both_ways(reasons, ensure_ascii=False)
        _both_ways(raw, ensure_ascii=False)
    assert fast >= 0.95 * len(DRY_RUN), f"only {fast} of {len(DRY_RUN)} answers take the fast path"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES, st.booleans(), st.booleans())
def test_any_json_value_gives_the_standard_librarys_bytes(value, sort_keys, ensure_ascii):
    _both_ways(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
