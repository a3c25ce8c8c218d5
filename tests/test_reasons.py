"""Reasons: they add up to the model's log-odds, match a computation from the scikit-learn pipeline, speak the data
dictionary's words, and never hide (nor invent) a protected attribute.

Checked on the committed model with every dry-run request and a messy generated set, and on small pipelines fitted
here: linear and gradient boosting, with and without the protected attributes an operator could deploy.
"""
from __future__ import annotations

import copy
import random

import numpy as np
import pandas as pd
import pytest

from pipeline.schema import FIELDS, PROTECTED_FIELDS, TARGET, clean_frame, records_to_frame, validate_observation
from pipeline.scoring.artifact import FAST_TOLERANCE, Artifact, ArtifactError, check_explainer
from pipeline.scoring.contributions import contributions, feature_field, training_reference
from pipeline.scoring.fast_features import label_of
from pipeline.scoring.fast_linear import build_scorer, probe_records
from pipeline.scoring.reasons import TOP, reason, shown_number
from pipeline.scoring.sentences import MISSING, OTHER, sentence
from pipeline.synthetic import generate as synthetic
from pipeline.training.cli import PROTECTED_CHOICES
from pipeline.training.selection import build_model
from pipeline.transform.features import RARE_CODE, StopFeatures
from pipeline.transform.shrinkage import SUFFIX as SHRUNK_SUFFIX
from tests.test_fast_scoring import _mess, _observations, _validated

pytestmark = pytest.mark.slow  # fits four small pipelines and generates two synthetic sets (~1 min)
OFFICER = "ReportingOfficerIdentificationID"
# The sentence of every code of the data dictionary, as an officer reads it (raising and lowering).
CODE_SENTENCES = {
    ("SearchAuthorizationCode", "C"): "Search by the subject's consent (C)",
    ("SearchAuthorizationCode", "I"): "Inventory search (I)",
    ("SearchAuthorizationCode", "N"): "No search authority recorded (N, not applicable)",
    ("SearchAuthorizationCode", "O"): "Search authorised by probable cause or another legal ground (O: reasonable "
                                      "suspicion, plain view, arrest, drug dog alert, exigent circumstances)",
    ("InterventionReasonCode", "V"): "Stopped for a motor vehicle violation (V)",
    ("InterventionReasonCode", "E"): "Stopped for an equipment violation (E)",
    ("InterventionReasonCode", "I"): "Investigative stop (I)",
    ("SubjectRaceCode", "A"): "Subject's race as the officer perceived it: Asian/Pacific Islander (A)",
    ("SubjectRaceCode", "B"): "Subject's race as the officer perceived it: Black (B)",
    ("SubjectRaceCode", "I"): "Subject's race as the officer perceived it: American Indian/Alaskan Native (I)",
    ("SubjectRaceCode", "W"): "Subject's race as the officer perceived it: White (W)",
    ("SubjectEthnicityCode", "H"): "Subject's ethnicity as the officer perceived it: Hispanic (H)",
    ("SubjectEthnicityCode", "M"): "Subject's ethnicity as the officer perceived it: Middle Eastern (M)",
    ("SubjectEthnicityCode", "N"): "Subject's ethnicity as the officer perceived it: neither Hispanic nor Middle "
                                   "Eastern (N)",
    ("SubjectSexCode", "F"): "Subject's sex: female (F)",
    ("SubjectSexCode", "M"): "Subject's sex: male (M)",
}
PROTECTED_SENTENCE = {"SubjectRaceCode": " Race is a protected attribute: this model variant uses it as a feature, "
                                         "which the default model does not.",
                      "SubjectEthnicityCode": " Ethnicity is a protected attribute: this model variant uses it as a "
                                              "feature, which the default model does not.",
                      "SubjectSexCode": " Sex is a protected attribute: this model variant uses it as a feature, "
                                        "which the default model does not."}


@pytest.fixture(scope="module")
def training_frame():
    frame, _ = synthetic.generate(4000, 31)
    return clean_frame(frame), frame[TARGET].astype(bool)


@pytest.fixture(scope="module")
def generated_records():
    frame, _ = synthetic.generate(1500, 32)
    rng = random.Random(32)
    return _validated([_mess(observation, rng) for observation in _observations(frame)])


@pytest.fixture(scope="module")
def dry_run_records(dry_run_requests):
    return [validate_observation(observation) for _, observation, _ in dry_run_requests]


def _fitted(training_frame, family: str, protected: str) -> Artifact:
    frame, target = training_frame
    pipeline = build_model(family, protected=PROTECTED_CHOICES[protected], min_count=5).fit(frame, target)
    card = {"version": f"{family}-{protected}", "threshold": 0.5, "reasons": training_reference(pipeline, frame)}
    return Artifact(pipeline=pipeline, card=card, scorer=build_scorer(pipeline))


@pytest.fixture(scope="module", params=[("logistic_regression", "none"), ("logistic_regression", "all"),
                                        ("hist_gradient_boosting", "none"), ("hist_gradient_boosting", "all")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def fitted(request, training_frame) -> Artifact:
    return _fitted(training_frame, *request.param)


def _assert_additive(model: Artifact, records: list[dict]) -> None:
    """reference + every effect == sklearn's log-odds, and the fast scorer's, within 1e-9 on each record."""
    expected = model.pipeline.decision_function(records_to_frame(records))
    reference = model.explainer.reference["log_odds"]
    for record, logit in zip(records, expected):
        total = reference + sum(effect for effect, _, _ in model.explainer.explain(record))
        assert abs(total - logit) <= FAST_TOLERANCE, record
        assert abs(model.explainer.log_odds(record) - logit) <= FAST_TOLERANCE, record


def test_reasons_add_up_to_the_log_odds_on_every_dry_run_record(artifact, dry_run_records):
    assert len(dry_run_records) == 223
    _assert_additive(artifact, dry_run_records)


def test_reasons_add_up_to_the_log_odds_on_messy_generated_records(artifact, generated_records):
    _assert_additive(artifact, generated_records + probe_records(artifact.pipeline.named_steps["features"]))


def test_reasons_add_up_for_linear_and_tree_variants(fitted, generated_records, dry_run_records):
    _assert_additive(fitted, generated_records + dry_run_records)


def test_the_reference_is_the_average_training_record_named_in_the_card(artifact):
    card = artifact.card["reasons"]
    assert card["rows"] == artifact.card["training_data"]["rows"]["train"]
    assert set(card["feature_means"]) == set(artifact.card["feature_names"])
    assert artifact.explainer.reference["log_odds"] == pytest.approx(card["log_odds"], abs=1e-12)
    assert "average training record" in artifact.explainer.reference["description"]
    assert artifact.version in artifact.explainer.reference["description"]


def _seen_label(field: str, label: str) -> str:
    """A label as the data dictionary writes it: codes upper-case (O), text as normalised (milford)."""
    return label.upper() if next(f.kind for f in FIELDS if f.name == field) == "code" else label


def _shown_from_sklearn(model: Artifact, records: list[dict]) -> pd.DataFrame:
    """Each feature's value as the model saw it, read from StopFeatures' own output (the reference side)."""
    features = model.pipeline.named_steps["features"]
    matrix = features.transform(records_to_frame(records))
    encode = model.pipeline.named_steps.get("encode")
    shown = pd.DataFrame(index=matrix.index)
    shrinkage = getattr(features, "shrinkage_", None)
    for name in matrix.columns:
        if name.endswith(SHRUNK_SUFFIX):
            continue  # shown with its field below: one reason per shrunk field
        if shrinkage is not None and name in shrinkage.effects_:
            # the encoder's labels keep their own effect, so they are shown as themselves even when rare
            known = set(shrinkage.effects_[name]) | set(features.codes_.codes_by_label_.get(name, {}))
            labels = [label_of(record, name) for record in records]
            shown[name] = [MISSING if label is None else _seen_label(name, label) if label in known else OTHER
                           for label in labels]
        elif name in features.codes_.codes_by_label_:
            label_of_code = {code: label for label, code in features.codes_.codes_by_label_[name].items()}
            levels = getattr(encode, "levels_", {}).get(name) if encode is not None else None

            def seen(code, label_of_code=label_of_code, levels=levels, name=name):
                if code != code:
                    return MISSING
                if code == RARE_CODE or (levels is not None and code not in levels):
                    return OTHER
                kind = next(f.kind for f in FIELDS if f.name == name)
                return label_of_code[code].upper() if kind == "code" else label_of_code[code]
            shown[name] = [seen(code) for code in matrix[name]]
        else:
            shown[name] = [shown_number(name, float(value)) for value in matrix[name]]
    return shown


def _reference_reasons(effects: pd.Series, shown: pd.Series) -> tuple[list, list]:
    ranked = sorted(((effects[f], f, shown[f]) for f in effects.index), key=lambda item: item[0])
    raising = [(f, v) for e, f, v in reversed(ranked[-TOP:]) if e > 0]
    lowering = [(f, v) for e, f, v in ranked[:TOP] if e < 0]
    return raising, lowering


def _assert_matches_reference(model: Artifact, records: list[dict]) -> None:
    base, table = contributions(model.pipeline, records_to_frame(records))
    means = pd.Series(model.card["reasons"]["feature_means"])
    # a shrunk field's effect is its code column's and its "<field>:log_odds" column's together
    effects = (table - means[table.columns]).T.groupby(lambda f: f.removesuffix(SHRUNK_SUFFIX), sort=False).sum().T
    shown = _shown_from_sklearn(model, records)
    for i, record in enumerate(records):
        fast = {feature: (effect, value) for effect, feature, value in model.explainer.explain(record)}
        unused = set(effects.columns) - set(fast)  # computed by the features step, read by no model term
        assert set(fast) <= set(effects.columns) and (effects.iloc[i][sorted(unused)] == 0).all()
        effects_i = effects.iloc[i][list(fast)]
        for feature in fast:
            assert abs(fast[feature][0] - effects_i[feature]) <= FAST_TOLERANCE, (feature, record)
            assert fast[feature][1] == shown.iloc[i][feature], (feature, record)
        answer = model.explainer.reasons(record)
        raising, lowering = _reference_reasons(effects_i, shown.iloc[i])
        assert [(r["feature"], r["value"]) for r in answer["raising"]] == raising, record
        assert [(r["feature"], r["value"]) for r in answer["lowering"]] == lowering, record
        for item in answer["raising"] + answer["lowering"]:
            assert item["effect"] == pytest.approx(effects.iloc[i][item["feature"]], abs=FAST_TOLERANCE)
            assert item["field"] == feature_field(item["feature"])


def test_fast_reasons_equal_a_computation_from_the_sklearn_pipeline(artifact, dry_run_records, generated_records):
    _assert_matches_reference(artifact, dry_run_records + generated_records[:500])


def test_fast_reasons_equal_sklearn_for_linear_and_tree_variants(fitted, dry_run_records, generated_records):
    _assert_matches_reference(fitted, dry_run_records + generated_records[:300])


def test_tree_contributions_follow_sklearns_own_paths(fitted, generated_records):
    """The reference's tree walk lands on sklearn's leaves: its sum is sklearn's decision function."""
    frame = records_to_frame(generated_records)
    base, table = contributions(fitted.pipeline, frame)
    np.testing.assert_allclose(base + table.sum(axis=1), fitted.pipeline.decision_function(frame), rtol=0,
                               atol=FAST_TOLERANCE)


def test_answers_show_at_most_three_each_way_largest_first(artifact, dry_run_records):
    for record in dry_run_records:
        answer = artifact.reasons(record)
        raising, lowering = answer["raising"], answer["lowering"]
        assert len(raising) <= TOP and len(lowering) <= TOP and raising + lowering
        assert all(r["effect"] > 0 for r in raising) and all(r["effect"] < 0 for r in lowering)
        assert [r["effect"] for r in raising] == sorted((r["effect"] for r in raising), reverse=True)
        assert [r["effect"] for r in lowering] == sorted(r["effect"] for r in lowering)
        assert all(r["sentence"].endswith(("raises the probability.",)) for r in raising)
        assert all(r["sentence"].endswith(("lowers the probability.",)) for r in lowering)


@pytest.mark.parametrize("field_name,code", sorted(CODE_SENTENCES))
def test_every_dictionary_code_has_its_sentence(field_name, code):
    suffix = PROTECTED_SENTENCE.get(field_name, "")
    assert sentence(field_name, field_name, code, 0.4) == CODE_SENTENCES[field_name, code] + \
        " raises the probability." + suffix
    assert sentence(field_name, field_name, code, -0.4) == CODE_SENTENCES[field_name, code] + \
        " lowers the probability." + suffix


def test_the_sentence_table_covers_every_code_of_the_schema():
    assert set(CODE_SENTENCES) == {(f.name, code) for f in FIELDS if f.kind == "code" for code in f.codes}


def test_sentences_for_other_values():
    assert sentence("Department Name", "Department Name", OTHER, 0.2) == \
        "Department too rare in training to have its own weight (other) raises the probability."
    assert sentence("Department Name", "Department Name", "new haven", -0.2) == \
        "Department 'new haven' lowers the probability."
    assert sentence("InterventionDateTime", "hour", 4, 0.1) == "Stop between 04:00 and 04:59 raises the probability."
    assert sentence("InterventionDateTime", "day_of_week", "Sunday", 0.1) == "Stop on a Sunday raises the probability."
    assert sentence("ResidentIndicator", "ResidentIndicator", False, -0.1) == \
        "Subject is not a Connecticut resident lowers the probability."
    assert sentence("SubjectAge", "SubjectAge", 19, 0.3) == ("Subject aged 19 raises the probability. Age is a "
                                                            "protected attribute: this model variant uses it as a "
                                                            "feature, which the default model does not.")


def test_the_default_model_never_gives_a_protected_attribute_or_the_officer_as_a_reason(
        artifact, dry_run_records, generated_records):
    excluded = set(PROTECTED_FIELDS) | {OFFICER}
    assert not excluded & {feature_field(f) for f in artifact.card["feature_names"]}
    for record in dry_run_records + generated_records:
        assert not excluded & {feature_field(f) for _, f, _ in artifact.explainer.explain(record)}
        answer = artifact.reasons(record)
        for item in answer["raising"] + answer["lowering"]:
            assert item["field"] not in excluded and item["protected"] is False
            assert "protected" not in item["sentence"]


def test_a_variant_using_protected_attributes_says_so_plainly(training_frame, dry_run_records, generated_records):
    variant = _fitted(training_frame, "logistic_regression", "all")
    shown = [item for record in dry_run_records + generated_records
             for item in (lambda a: a["raising"] + a["lowering"])(variant.reasons(record))]
    protected = [item for item in shown if item["field"] in PROTECTED_FIELDS]
    assert {item["field"] for item in protected} >= {"SubjectAge", "SubjectSexCode"}
    for item in shown:
        assert item["protected"] is (item["field"] in PROTECTED_FIELDS)
        assert ("is a protected attribute: this model variant uses it" in item["sentence"]) is item["protected"]


def test_the_officer_id_cannot_be_made_a_feature():
    with pytest.raises(ValueError, match="not protected fields"):
        StopFeatures(protected=(OFFICER,))._protected()


def test_reasons_that_do_not_add_up_are_refused_at_load(artifact):
    explainer = copy.deepcopy(artifact.explainer)
    explainer.reference["log_odds"] += 1e-6
    with pytest.raises(ArtifactError, match="do not add up to its log-odds"):
        check_explainer(explainer, artifact.scorer, artifact.pipeline, "here")
    check_explainer(artifact.explainer, artifact.scorer, artifact.pipeline, "here")


def test_a_card_without_a_training_average_states_the_intercept_as_reference(artifact, dry_run_records):
    card = {key: value for key, value in artifact.card.items() if key != "reasons"}
    bare = Artifact(pipeline=artifact.pipeline, card=card, scorer=artifact.scorer)
    assert bare.explainer.reference["log_odds"] == artifact.scorer.intercept
    assert "intercept" in bare.explainer.reference["description"]
    _assert_additive(bare, dry_run_records[:20])


@pytest.mark.parametrize("include_officer", [False, True])
def test_shrunk_models_reasons_add_up_and_equal_sklearn_per_field(include_officer, dry_run_records):
    """A model retrained from the log (shrinkage encodings): a shrunk field's effect is its code column's and its
    "<field>:log_odds" column's together, against sklearn's; the officer id, when a variant uses it, says so."""
    from pipeline.training.log_model import build_log_model
    from tests.test_shrinkage import random_records
    frame, labels = random_records(1500)
    pipeline = build_log_model(include_officer=include_officer).fit(frame, labels)
    model = Artifact(pipeline=pipeline, card={"version": "log", "threshold": 0.5,
                                              "reasons": training_reference(pipeline, frame)},
                     scorer=build_scorer(pipeline))
    records, _ = random_records(300, seed=9)
    records = [dict(zip(row.index, row.values)) for _, row in records.drop(columns=[TARGET]).iterrows()]
    records = [{k: (None if v is None or v != v else v) for k, v in r.items()} | {
        "InterventionDateTime": r["InterventionDateTime"].to_pydatetime(), "SubjectAge": int(r["SubjectAge"])}
        for r in records] + dry_run_records
    _assert_additive(model, records)
    base, table = contributions(pipeline, records_to_frame(records))
    means = pd.Series(model.card["reasons"]["feature_means"])
    from pipeline.transform.shrinkage import SUFFIX
    by_field = (table - means[table.columns]).T.groupby(lambda feature: feature.removesuffix(SUFFIX)).sum().T
    officer_effects = []
    for i, record in enumerate(records):
        for effect, feature, value in model.explainer.explain(record):
            assert abs(effect - by_field.iloc[i][feature]) <= FAST_TOLERANCE, (feature, record)
            if feature == OFFICER:
                officer_effects.append((feature, value, effect))
    assert bool(officer_effects) is include_officer
    # the officer's effects are small in these data, so the answer's reason is built for them directly
    for feature, value, effect in officer_effects:
        item = reason(feature, value, effect if effect else 1e-3)
        assert item["field"] == OFFICER and item["protected"] is True
        assert item["sentence"].startswith("Reporting officer ")
        assert item["sentence"].endswith("this model variant uses the officer id.")
