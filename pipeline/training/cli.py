"""Train the search model from a CTRP3 CSV and write an artifact (pipeline + model card).

    python -m pipeline.train --data train.csv --out artifacts/NAME
    python -m pipeline.train --from-log [--data train.csv]   (retrain from the service's log; see --from-log --help)

Steps: load searched rows and drop exact duplicates; split by time (oldest train, then validation, newest
test); compare model families with time-aware cross-validation on the training rows; fit the best; choose the
threshold on validation rows (maximum recall with the Wilson lower bound of precision >= 0.5); measure on the
held-out test rows; write the card.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.evaluation.metrics import ThresholdError, select_threshold
from pipeline.evaluation.summary import fairness, fairness_comparison, quality
from pipeline.loading import load_training_data
from pipeline.progress import Progress
from pipeline.schema import TARGET
from pipeline.scoring.artifact import save_artifact
from pipeline.training.card import build_card
from pipeline.training.from_log import main as from_log_main
from pipeline.training.selection import FAMILIES, build_model, compare_families, describe, drift_margin, time_split
from pipeline.training.two_models import build_two_models, describe_two_models, set_unsuspected_offset

DEFAULT_FAMILIES = ("hist_gradient_boosting", "logistic_regression", "random_forest", "shrinkage_logistic_regression")
PROTECTED_CHOICES = {"none": (), "age": ("SubjectAge",),
                     "all": ("SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode", "SubjectAge")}


@dataclass(frozen=True)
class TrainingConfig:
    """One training run's settings, built once from the command line and never changed (see ``--help``).

    ``margin`` None means "drift": the run measures it on the training rows (``resolve_margin``) and passes the
    number on by name; the configuration itself keeps what the user asked for.
    """

    data: Path
    out: Path | None = None
    version: str | None = None
    families: tuple[str, ...] = DEFAULT_FAMILIES
    cv_folds: int = 3
    validation: float = 0.1
    test: float = 0.1
    min_precision: float = 0.5
    margin: float | None = None
    criterion: str = "wilson"
    min_count: int = 30
    protected_features: str = "none"
    two_models: bool = False
    no_protected_check: bool = False
    fairness_min_department: int = 100
    fairness_min_group: int = 20
    synthetic: bool = False
    seed: int = 0
    chunksize: int = 500_000
    quiet: bool = False

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> "TrainingConfig":
        """The configuration of parsed arguments (``--margin drift`` becomes None)."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
        values["families"] = tuple(values["families"])
        values["margin"] = None if args.margin == "drift" else float(args.margin)
        return cls(**values)


def parse_args(argv=None) -> TrainingConfig:
    """The configuration of ``python -m pipeline.train`` from its command line."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="CTRP3 CSV with the 15 training columns")
    parser.add_argument("--out", type=Path, help="artifact directory (default: artifacts/<version>)")
    parser.add_argument("--version", help="model version id (default: <family>-<UTC time>-<data sha prefix>)")
    parser.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES), choices=sorted(FAMILIES),
                        help="model families to compare (default: all)")
    parser.add_argument("--cv-folds", type=int, default=3, help="time-series CV folds (default 3)")
    parser.add_argument("--validation", type=float, default=0.1, help="share of rows for validation (default 0.1)")
    parser.add_argument("--test", type=float, default=0.1, help="share of newest rows held out (default 0.1)")
    parser.add_argument("--min-precision", type=float, default=0.5, help="precision requirement (default 0.5)")
    parser.add_argument("--margin", default="drift",
                        help="extra precision demanded above --min-precision on validation: a number, or 'drift' "
                             "(default) for the largest period-to-period fall in hit rate seen in training")
    parser.add_argument("--criterion", choices=("wilson", "point"), default="wilson",
                        help="wilson: the 95%% lower bound of validation precision must clear the bar (default)")
    parser.add_argument("--min-count", type=int, default=30,
                        help="categories seen fewer times in training are grouped as rare (default 30)")
    parser.add_argument("--protected-features", choices=sorted(PROTECTED_CHOICES), default="none",
                        help="protected attributes used as features: none (default: the client allows one only for a "
                             "measured within-department fairness gain; see MODEL_CARD.md), age, or all (race, "
                             "ethnicity, sex, age); the card measures every choice")
    parser.add_argument("--two-models", action="store_true",
                        help="two models routed on SearchAuthorizationCode = N (pipeline.transform.router): the chosen "
                             "family for suspected stops, a small linear model for N, whose searches must reach the "
                             "precision bar on their own validation rows or are never recommended (see MODEL_CARD.md)")
    parser.add_argument("--no-protected-check", action="store_true",
                        help="skip fitting the other --protected-features choices for the card's comparison")
    parser.add_argument("--fairness-min-department", type=int, default=100)
    parser.add_argument("--fairness-min-group", type=int, default=20)
    parser.add_argument("--synthetic", action="store_true",
                        help="mark the card as trained on generated data (also set when <stem>.truth.csv exists)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunksize", type=int, default=500_000, help="CSV rows read at a time")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    if args.margin != "drift":
        try:
            float(args.margin)
        except ValueError:
            parser.error(f"--margin must be a number or 'drift', not {args.margin!r}")
    if not args.data.is_file():
        parser.error(f"--data {args.data} is not a file; pass the CTRP3 CSV (or generate one with "
                     "`python -m pipeline.synthetic --rows N --seed S --out PATH`)")
    return TrainingConfig.from_namespace(args)


def _fit_and_score(family, config: TrainingConfig, margin: float, train, validation, test, protected=()):
    if not config.two_models:
        model = build_model(family, config.seed, protected=protected, min_count=config.min_count)
        model.fit(train, train[TARGET].to_numpy())
        return model, model.predict_proba(validation)[:, 1], model.predict_proba(test)[:, 1]
    model = build_two_models(family, config.seed, protected=protected, min_count=config.min_count)
    model.fit(train, train[TARGET].to_numpy())
    model.routing_ = set_unsuspected_offset(model, validation, model.predict_proba(validation)[:, 1],
                                            config.min_precision, margin, config.criterion)
    return model, model.predict_proba(validation)[:, 1], model.predict_proba(test)[:, 1]


def _threshold(config: TrainingConfig, margin: float, validation, scores) -> dict:
    try:
        return select_threshold(validation[TARGET].to_numpy(), scores, config.min_precision, margin,
                                config.criterion)
    except ThresholdError as error:
        raise SystemExit(f"cannot choose a threshold: {error} Try --criterion point, a smaller --validation "
                         "share, or more data.") from None


def resolve_margin(config: TrainingConfig, train_rows, validation, say) -> dict:
    """The precision margin of this run and where it comes from: --margin's number, or the measured drift."""
    if config.margin is not None:
        return {"margin": config.margin, "source": "--margin"}
    drift = drift_margin(train_rows[TARGET].to_numpy(), len(validation), config.min_precision)
    say(f"drift margin {drift['margin']:.4f} (largest fall in hit-rate log-odds between training periods "
        f"{drift['largest_logit_drop']:.3f})")
    return drift


def _choose_threshold(config: TrainingConfig, drift: dict, validation, val_scores, say) -> dict:
    """The validation threshold under the Wilson criterion, with the run's margin."""
    choice = dict(_threshold(config, drift["margin"], validation, val_scores), drift=drift)
    say(f"threshold {choice['threshold']:.4f}: validation precision {choice['precision']:.3f} "
        f"(lower bound {choice['precision_low']:.3f}), recall {choice['recall']:.3f}")
    return choice


def _protected_check(config: TrainingConfig, margin: float, parts, family, scores, threshold, settings) -> dict:
    """Fit the same family with each choice of protected features and compare quality and fairness on test rows.

    The client's fairness rule is about precision per group; a model blind to a group's base rate recommends
    searches of low-rate groups too readily, so seeing an attribute can narrow the gaps. These figures are what
    a choice of ``--protected-features`` must be justified by.
    """
    train, validation, test = parts
    variants = {}
    for name, fields in PROTECTED_CHOICES.items():
        if name == config.protected_features:
            variants[name] = fairness_comparison(test, scores, threshold, **settings)
            continue
        _, val_scores, test_scores = _fit_and_score(family, config, margin, train, validation, test,
                                                    protected=fields)
        choice = select_threshold(validation[TARGET].to_numpy(), val_scores, config.min_precision, margin,
                                  config.criterion, raise_if_infeasible=False)
        variants[name] = (fairness_comparison(test, test_scores, choice["threshold"], **settings)
                          if choice["feasible"] else {"infeasible": choice["reason"]})
    return {"adopted": config.protected_features, "fields": PROTECTED_CHOICES, "family": family,
            "rows": "held-out test rows; each variant with its own validation-chosen threshold",
            "variants": variants}


def train(config: TrainingConfig) -> Path:
    """Run the whole training and write the artifact; returns its directory."""
    say = Progress(config.quiet)
    say(f"loading {config.data}")
    loaded = load_training_data(config.data, config.chunksize, progress=say)
    frame = loaded.frame
    split = time_split(frame["InterventionDateTime"], config.validation, config.test)
    parts = tuple(frame.iloc[rows].reset_index(drop=True) for rows in (split.train, split.validation, split.test))
    train_rows, validation, test = parts
    say(f"{len(train_rows):,} train / {len(validation):,} validation / {len(test):,} test rows")
    say(f"comparing {', '.join(config.families)} with {config.cv_folds}-fold time-series CV")
    protected = PROTECTED_CHOICES[config.protected_features]
    comparison = compare_families(train_rows, config.families, config.cv_folds, config.seed, config.min_count,
                                  config.quiet, protected)
    family = max(comparison, key=lambda name: comparison[name]["auc_mean"])
    drift = resolve_margin(config, train_rows, validation, say)
    say(f"fitting {family} on the training rows")
    model, val_scores, test_scores = _fit_and_score(family, config, drift["margin"], train_rows, validation, test,
                                                    protected)
    choice = _choose_threshold(config, drift, validation, val_scores, say)
    threshold = choice["threshold"]
    settings = {"min_department": config.fairness_min_department, "min_group": config.fairness_min_group}
    evaluation = {"validation": quality(validation[TARGET], val_scores, threshold),
                  "test": quality(test[TARGET], test_scores, threshold),
                  "fairness_test": fairness(test, test_scores, threshold, **settings)}
    say(f"test: precision {evaluation['test']['precision']['value']:.3f}, recall "
        f"{evaluation['test']['recall']['value']:.3f}, AUC {evaluation['test']['auc']:.4f}")
    if not config.no_protected_check:
        say("measuring the other choices of protected features for the card")
        evaluation["protected_features_check"] = _protected_check(config, drift["margin"], parts, family,
                                                                  test_scores, threshold, settings)
    description = describe_two_models(model) if config.two_models else describe(model)
    if config.two_models:
        choice["routing"] = model.routing_
    card = build_card(config, loaded=loaded, parts=parts, model=model, description=description, family=family,
                      comparison=comparison, choice=choice, evaluation=evaluation)
    out = config.out or Path("artifacts") / card["version"]
    save_artifact(model, card, out)
    say(f"wrote {out} (version {card['version']})")
    return out


def main(argv=None) -> int:
    """Entry point of ``python -m pipeline.train`` (``--from-log``: retrain from the service's log instead)."""
    if "--from-log" in (sys.argv[1:] if argv is None else argv):
        return from_log_main(argv)
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
