"""Each feature's contribution to the log-odds, computed from the fitted scikit-learn pipeline itself, for many rows.

This is the reference the fast reasons (``pipeline.scoring.reasons``) are checked against, and what training uses
to record the average contribution of each feature over the training rows (the model card's ``reasons``).

- Linear family: the encoded matrix times the coefficients, columns summed per StopFeatures column.
- HistGradientBoosting: a path-based (Saabas) decomposition. Walking a tree from the root, each split moves the
  expected output from the parent's value to the child's; the difference goes to the split's feature. The leaf
  value is the root value plus those differences, so the contributions add up to the tree's output. sklearn keeps
  every node's value but shrinks only the leaves by the learning rate, so internal values are shrunk here too.

A row's log-odds is ``base + contributions.sum(axis=1)`` exactly (to rounding); ``logits`` returns it from sklearn.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.schema import records_to_frame
from pipeline.transform.features import DATETIME_FIELD, TIME_FEATURES
from pipeline.transform.shrinkage import SUFFIX as SHRUNK_SUFFIX

LINEAR, TREES = "linear", "trees"


def feature_field(feature: str) -> str:
    """The input field a StopFeatures column comes from (the time columns come from InterventionDateTime, a
    shrinkage encoding "<field>:log_odds" from its field)."""
    if feature.endswith(SHRUNK_SUFFIX):
        return feature[:-len(SHRUNK_SUFFIX)]
    return DATETIME_FIELD if feature in TIME_FEATURES else feature


def family(pipeline) -> str | None:
    """LINEAR, TREES, or None for a pipeline whose contributions this module cannot compute."""
    steps = getattr(pipeline, "named_steps", {})
    model = type(steps.get("model")).__name__
    if model == "LogisticRegression" and "encode" in steps and len(steps["model"].classes_) == 2:
        return LINEAR
    if model == "HistGradientBoostingClassifier" and steps["model"].n_trees_per_iteration_ == 1:
        return TREES
    return None


def _owner(name: str, features: list[str]) -> str:
    """The StopFeatures column an encoder output column comes from: the longest feature name it starts with."""
    owners = [f for f in features if name == f or name.startswith((f + "=", f + "[", f + ">=", f + "_"))]
    if not owners:
        raise ValueError(f"the encoder column {name!r} comes from none of the features {features}")
    return max(owners, key=len)


def _linear(pipeline, frame: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    features = [str(f) for f in pipeline.named_steps["features"].get_feature_names_out()]
    encoded = pipeline[:-1].transform(frame)
    model = pipeline.named_steps["model"]
    names = [str(n) for n in pipeline.named_steps["encode"].get_feature_names_out()]
    owners = np.array([features.index(_owner(name, features)) for name in names])
    terms = np.asarray(encoded, dtype=float) * model.coef_[0]
    out = np.zeros((len(frame), len(features)))
    for column in range(len(features)):
        out[:, column] = terms[:, owners == column].sum(axis=1)
    return float(model.intercept_[0]), pd.DataFrame(out, columns=features, index=frame.index)


def tree_node_values(model, predictor) -> np.ndarray:
    """Every node's expected output on the leaves' scale (sklearn shrinks only the leaves by the learning rate)."""
    nodes = predictor.nodes
    return np.where(nodes["is_leaf"] == 1, nodes["value"], nodes["value"] * model.learning_rate)


def _tree_goes_left(node, column: np.ndarray, predictor, known, f_idx_map) -> np.ndarray:
    """sklearn's rule (``_predict_one_from_raw_data``) for one node, on a column of the preprocessed matrix."""
    missing = np.isnan(column)
    if not node["is_categorical"]:
        with np.errstate(invalid="ignore"):
            return np.where(missing, bool(node["missing_go_to_left"]), column <= node["num_threshold"])

    def member(bitsets, row):
        codes = np.where(missing | (column < 0), 0, column).astype(np.int64)
        words = np.asarray(bitsets[row], dtype=np.uint32)[np.minimum(codes // 32, 7)]
        return (codes < 256) & (((words >> (codes % 32).astype(np.uint32)) & 1) == 1)

    absent = missing | (column < 0)
    in_left = member(predictor.raw_left_cat_bitsets, int(node["bitset_idx"])) & ~absent
    known_value = member(known, int(f_idx_map[int(node["feature_idx"])])) & ~absent
    return np.where(in_left, True, np.where(known_value, False, bool(node["missing_go_to_left"])))


def _trees(pipeline, frame: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    features_step, model = pipeline.named_steps["features"], pipeline.named_steps["model"]
    features = [str(f) for f in features_step.get_feature_names_out()]
    matrix = np.asarray(model._preprocess_X(features_step.transform(frame), reset=False), dtype=float)
    # the trees index the preprocessed columns: categorical ones first when sklearn encodes them itself
    if model._preprocessor is None:
        order = list(range(len(features)))
    else:
        categorical = np.asarray(model.is_categorical_, dtype=bool)
        order = list(np.flatnonzero(categorical)) + list(np.flatnonzero(~categorical))
    known, f_idx_map = model._bin_mapper.make_known_categories_bitsets()
    out = np.zeros((len(frame), len(features)))
    base = float(model._baseline_prediction.ravel()[0])
    for predictors in model._predictors:
        predictor = predictors[0]
        nodes, values = predictor.nodes, tree_node_values(model, predictor)
        base += float(values[0])
        reach = {0: np.ones(len(frame), dtype=bool)}
        for index in range(len(nodes)):  # children always come after their parent in sklearn's node array
            node, rows = nodes[index], reach.pop(index)
            if node["is_leaf"]:
                continue
            left = _tree_goes_left(node, matrix[:, int(node["feature_idx"])], predictor, known, f_idx_map)
            column = order[int(node["feature_idx"])]
            for child, goes in ((int(node["left"]), rows & left), (int(node["right"]), rows & ~left)):
                out[goes, column] += values[child] - values[index]
                reach[child] = goes
    return base, pd.DataFrame(out, columns=features, index=frame.index)


def contributions(pipeline, frame: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    """(base log-odds, per-row contribution of each StopFeatures column) of a frame, from sklearn's own objects."""
    kind = family(pipeline)
    if kind == LINEAR:
        return _linear(pipeline, frame)
    if kind == TREES:
        return _trees(pipeline, frame)
    raise ValueError(f"no contributions for a {type(pipeline.named_steps.get('model')).__name__} pipeline")


def record_contributions(pipeline, records: list[dict]) -> tuple[float, pd.DataFrame]:
    """``contributions`` of validated observations."""
    return contributions(pipeline, records_to_frame(records))


def logits(pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The model's log-odds for each row, as sklearn computes it (decision_function)."""
    return pipeline.decision_function(frame)


def training_reference(pipeline, frame: pd.DataFrame) -> dict:
    """The model card's ``reasons``: each feature's average contribution over the training rows, and the
    resulting reference log-odds (that of the average training record), against which every reason is stated."""
    base, table = contributions(pipeline, frame)
    means = {name: float(value) for name, value in table.mean(axis=0).items()}
    log_odds = base + sum(means.values())
    return {"reference": "the average training record: each feature's contribution to the log-odds averaged "
                         f"over the {len(frame)} training rows",
            "rows": len(frame), "method": "coefficient x encoded value" if family(pipeline) == LINEAR
            else "path-based (Saabas) tree contributions",
            "log_odds": log_odds, "probability": float(1 / (1 + np.exp(-log_odds))), "feature_means": means}
