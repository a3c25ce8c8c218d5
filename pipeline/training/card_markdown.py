"""Render a model card JSON as the human-readable MODEL_CARD.md, so the summary never drifts from the artifact.

    python -m pipeline.training.card_markdown artifacts/default --bench /tmp/ctrp3-bench.txt > MODEL_CARD.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.scoring.artifact import read_card

REPRODUCE = """```bash
.venv/bin/python -m pipeline.synthetic --rows 2473643 --seed 2018 --out /tmp/ctrp3-synthetic.csv
.venv/bin/python -m pipeline.train --data /tmp/ctrp3-synthetic.csv --out artifacts/default --synthetic
.venv/bin/python bench/train.py --data /tmp/ctrp3-synthetic.csv | tee /tmp/ctrp3-bench.txt
.venv/bin/python -m pipeline.experiments --data /tmp/ctrp3-synthetic.csv --out artifacts/experiments
.venv/bin/python -m pipeline.training.card_markdown artifacts/default --bench /tmp/ctrp3-bench.txt \
    --experiments artifacts/experiments --generator-commit "$(git rev-parse HEAD)" > MODEL_CARD.md
```
The card's `training_data.sha256` identifies the generated file; the same generator commit, rows and seed give the
same file. `code.commit` in the card is the commit of the training code."""

THRESHOLD_NOTE = """The threshold maximises recall on the validation rows (the 10% of rows just before the held-out
newest 10%) subject to the **95% Wilson lower bound** of precision being at least {min_precision} + margin
{margin:.4f}, two safeguards for two different risks:
- Sampling: with {n} recommended searches in validation, the precision estimate is uncertain by about {half:.1%}
  (point minus lower bound); a threshold tuned to a point estimate of exactly 0.50 would fall below the bar on new
  data about as often as not.
- Drift: the hit rate moves between periods (33% in the training file, 36% in the 2018 production stream, per
  ../shared/data/ctrp3/CALIBRATION.md, but it can fall too). Under label shift precision's log-odds move one for
  one with the hit rate's, so the margin is the precision whose log-odds exceed 0.5's by the largest fall in hit-rate
  log-odds between consecutive validation-sized periods of the training rows: {drop:.3f} here (period hit rates
  {rates}).
Precision on the held-out newest rows is the check."""

PROTECTED_NOTE = """Protected attributes were measured, not assumed. The same family was fitted with no protected
feature, with age only, and with race, ethnicity, sex and age, each with its own validation threshold, and scored on
the held-out rows (table below; pooled gaps are the largest precision difference between groups with all departments
together, among groups with at least {pooled_min} recommended searches, so that a handful of searches of a small
group cannot dominate; the per-department counts use the fairness minimums above). Adopted: **{adopted}**.

Measured effect of adding age to the no-protected model: the pooled age-group gap goes from {age_before} to
{age_after}; the largest widening of any other pooled gap is {widening:.1f} points; (department, attribute) pairs
breaking the 5-point rule go from {breaks_before} of {evaluated_before} evaluated to {breaks_after} of {evaluated_after}; recall at the chosen
threshold from {recall_before:.3f} to {recall_after:.3f}; AUC from {auc_before:.4f} to {auc_after:.4f}.

Protected attributes stay out of the features unless a measured fairness gain on the client's own rule (precision
gaps WITHIN each department) justifies them; a better AUC or a narrower pooled gap is not that rule. On this run
adding age {verdict} the share of (department, attribute) pairs that break the rule. The default is `none`;
train with `--protected-features age` only where the per-department figures on the client's data favour it.

Race, ethnicity and sex are not adopted by default even where they narrow gaps further: the generator writes
race/ethnicity/sex offsets straight into its truth, so a gain on generated data is partly an artefact, and an explicit
race or sex term in a search recommendation is disparate treatment that the client (under the CT racial-profiling law
that CTRP3 exists for) must decide on, not the model. Retrain with `--protected-features none` or `all` to change the
choice; the card records all three variants on every run."""

def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _interval(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def _auc(metrics: dict) -> str:
    interval = metrics.get("auc_interval")
    return f"{metrics['auc']:.4f}" + (f" [{interval['low']:.4f}, {interval['high']:.4f}]" if interval else "")


def _metrics_table(metrics: dict) -> list[str]:
    lines = ["| rows | n | base rate | precision | recall | F1 | accuracy | ROC AUC | tn / fp / fn / tp |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ("validation", "test"):
        m = metrics[name]
        c = m["counts"]
        lines.append(f"| {name} | {m['n']:,} | {_pct(m['base_rate'])} | {_interval(m['precision'])} | "
                     f"{_interval(m['recall'])} | {_interval(m['f1'])} | {_interval(m['accuracy'])} | "
                     f"{_auc(m)} | {c['tn']} / {c['fp']} / {c['fn']} / {c['tp']} |")
    return lines


def _protected_table(check: dict) -> list[str]:
    attributes = ("SubjectAgeGroup", "SubjectEthnicityCode", "SubjectRaceCode", "SubjectSexCode")
    lines = ["| protected features | AUC | precision | recall | dept x attribute pairs evaluated | pairs breaking "
             "5-pt rule | mean gap per pair | "
             + " | ".join(f"pooled gap {a.removeprefix('Subject')}" for a in attributes) + " |",
             "|---" * (7 + len(attributes)) + "|"]
    for name, v in check["variants"].items():
        if "infeasible" in v:
            lines.append(f"| {name} | infeasible: {v['infeasible']} |")
            continue
        gaps = " | ".join(_pct(v["pooled_max_gap"].get(a)) for a in attributes)
        lines.append(f"| {name}{' (adopted)' if name == check['adopted'] else ''} | {v['auc']:.4f} | "
                     f"{v['precision_at_threshold']:.3f} | {v['recall_at_threshold']:.3f} | "
                     f"{v['pairs_evaluated']} | {v['pairs_breaking_rule']} | {_pct(v['mean_max_gap_per_department'])}"
                     f" | {gaps} |")
    return lines


def _fairness_table(fairness: dict) -> list[str]:
    lines = ["| attribute | who | departments evaluated | ok | break rule | break rule (clear) | largest gap |",
             "|---|---|---|---|---|---|---|"]
    for attribute in fairness["model"]["by_attribute"]:
        for who in ("model", "officers"):
            a = fairness[who]["by_attribute"][attribute]
            lines.append(f"| {attribute} | {who} | {a['evaluated']} of {a['departments']} | {a['ok']} | "
                         f"{a['breaks_rule']} | {a['breaks_rule_clear']} | {_pct(a['largest_gap'])} |")
    return lines


def _population(population: dict, rows: int) -> list[str]:
    lines = [f"Training rows: {rows:,}. Shares per value (top 6) of the protected and main input fields; the full "
             "table is `population` in the JSON card, which the production report compares against.", ""]
    for field in ("SubjectRaceCode", "SubjectEthnicityCode", "SubjectSexCode", "SubjectAge",
                  "SearchAuthorizationCode", "InterventionReasonCode", "ResidentIndicator", "TownResidentIndicator"):
        top = sorted(population.get(field, {}).items(), key=lambda kv: -kv[1])[:6]
        lines.append(f"- {field}: " + ", ".join(f"{k} {_pct(v)}" for k, v in top))
    return lines


def _protected_note(check: dict) -> str:
    none, age = check["variants"].get("none", {}), check["variants"].get("age", {})
    if "pooled_max_gap" not in none or "pooled_max_gap" not in age:
        return f"Adopted protected features: **{check['adopted']}** (a variant was infeasible; see the table)."
    before, after = none["pooled_max_gap"], age["pooled_max_gap"]
    others = [after[a] - before[a] for a in before if a != "SubjectAgeGroup" and None not in (before[a], after[a])]
    return PROTECTED_NOTE.format(
        adopted=check["adopted"], pooled_min=age.get("pooled_min_group"), age_before=_pct(before.get("SubjectAgeGroup")),
        age_after=_pct(after.get("SubjectAgeGroup")), widening=100 * max(others + [0.0]),
        breaks_before=none["pairs_breaking_rule"], evaluated_before=none["pairs_evaluated"],
        breaks_after=age["pairs_breaking_rule"], evaluated_after=age["pairs_evaluated"],
        recall_before=none["recall_at_threshold"], recall_after=age["recall_at_threshold"],
        auc_before=none["auc"], auc_after=age["auc"], verdict=_age_verdict(none, age))


def _age_verdict(none: dict, age: dict) -> str:
    """Whether adding age lowered the share of department x attribute pairs breaking the 5-point rule."""
    share = {name: v["pairs_breaking_rule"] / v["pairs_evaluated"] if v["pairs_evaluated"] else None
             for name, v in (("none", none), ("age", age))}
    if None in share.values():
        return "could not be measured on"
    return "lowers" if share["age"] < share["none"] else "does not lower"


def _reasons(reasons: dict) -> list[str]:
    """The reference every reason of the service is stated against, and each feature's average contribution."""
    out = [f"Every `/should_search` answer gives its reasons as effects in log-odds against {reasons['reference']} "
           f"({reasons['method']}): log-odds **{reasons['log_odds']:.4f}**, probability "
           f"{_pct(reasons['probability'])}. That reference plus every feature's effect is the model's log-odds for "
           "the record. The averages (the card's `reasons.feature_means`):", "",
           "| feature | average contribution (log-odds) |", "|---|---|"]
    return out + [f"| {name} | {value:+.4f} |" for name, value in reasons["feature_means"].items()]


def _model_input_lines(card: dict) -> list[str]:
    """What the model step reads of those features, when an encoding step chooses (older cards: nothing)."""
    inputs = card.get("model_inputs")
    if not inputs:
        return []
    return [f"- The model reads `{', '.join(inputs['one_hot'])}` one-hot and `{', '.join(inputs['numeric'])}` as "
            "standardised numbers" + (f", `{inputs['age']}` in bands" if inputs.get("age") else "")
            + "; the other features above are computed but not used."]


def _two_models_lines(card: dict) -> list[str]:
    """The routing of a two-model card (``--two-models``), or nothing."""
    routing = card["threshold_selection"].get("routing")
    if card["model"].get("class") != "SacRouter" or not routing:
        return []
    unsuspected = card["model"]["sides"]["unsuspected"]
    n_side = ("**never recommends a search** (no threshold of the N model reached the precision bar on its "
              f"{routing['validation_unsuspected_rows']} validation rows; best lower bound "
              f"{routing['unsuspected_best_precision']:.3f}), and answers probability 0"
              if routing["unsuspected_never_recommended"] else
              f"uses its own validated threshold {routing['unsuspected_threshold']:.4f} (offset "
              f"{routing['unsuspected_offset']:.3f} on the log-odds, so its answer is a decision score)")
    return [f"- Two models: stops with SearchAuthorizationCode N go to a `{unsuspected['class']}` (C "
            f"{unsuspected['params'].get('C')}, fewer levels, no location, weekday or month); all others (and a "
            f"missing code) to the {card['model']['family']} above. The N side {n_side}."]


def render(card: dict, bench: str | None = None, generator_commit: str | None = None,
           experiments: str | None = None) -> str:
    """The markdown text of MODEL_CARD.md for one card (and optionally the benchmark's printed output)."""
    data, rows = card["training_data"], card["training_data"]["rows"]
    choice, fairness = card["threshold_selection"], card["fairness"]
    half = (choice["precision"] - choice["precision_low"])
    out = [f"# Model card: `{card['version']}`", "",
           f"> **{card['notice']}**" if card.get("synthetic") else f"> {card['notice']}", "",
           "Generated from `artifacts/default/model_card.json` by `python -m pipeline.training.card_markdown`; "
           "every figure below is in that JSON or in the benchmark output quoted at the end.", "",
           "## Reproduce", "", REPRODUCE, "",
           *([f"The data were generated by `pipeline.synthetic` at commit `{generator_commit}` (to regenerate "
              f"exactly: `git archive {generator_commit[:12]} pipeline | tar -x -C /tmp/gen && cd /tmp/gen && "
              "python -m pipeline.synthetic ...`).", ""] if generator_commit else []),
           "## Data", "",
           f"- File `{data['file']}`, sha256 `{data['sha256']}`; code commit `{card.get('code', {}).get('commit')}`"
           f"{' (its pipeline modules had uncommitted changes)' if card.get('code', {}).get('pipeline_modified') else ''}.",
           f"- Rows read {rows['rows_read']:,}; searched {rows['searched']:,}; after dropping exact duplicates "
           f"{rows['after_dedup']:,}; usable {rows['usable']:,} ({data['filter']}).",
           f"- Time split: train {rows['train']:,} ({data['dates']['train']['first']} to "
           f"{data['dates']['train']['last']}), validation {rows['validation']:,} (to "
           f"{data['dates']['validation']['last']}), test {rows['test']:,} (newest, to {data['dates']['test']['last']}).",
           f"- Hit rate among searched: train {_pct(data['base_rate']['train'])}, validation "
           f"{_pct(data['base_rate']['validation'])}, test {_pct(data['base_rate']['test'])}.", "",
           "## Model", "",
           f"- Family **{card['model']['family']}** (`{card['model']['class']}`), features "
           f"`{', '.join(card['feature_names'])}`; categorical: `{', '.join(card['categorical_features'])}`.",
           *_model_input_lines(card),
           *_two_models_lines(card),
           "- The officer id and race, ethnicity and sex are not features; see *Protected attributes*.",
           "- Fitted on the training rows only: validation rows choose the threshold and test rows are never seen, "
           "so the figures below are honest estimates for the next period.",
           f"- Comparison ({card['model_comparison']['method']}):", ""]
    out += ["| family | CV ROC AUC | sd | mean fit s |", "|---|---|---|---|"]
    out += [f"| {name} | {r['auc_mean']:.4f} | {r['auc_std']:.4f} | {r['fit_seconds_mean']:.1f} |"
            for name, r in card["model_comparison"]["results"].items()]
    out += ["", "## Threshold", "", f"Threshold **{card['threshold']:.4f}**: validation precision "
            f"{choice['precision']:.3f} (Wilson lower bound {choice['precision_low']:.3f}), recall {choice['recall']:.3f}.",
            "", THRESHOLD_NOTE.format(min_precision=choice["min_precision"], margin=choice["margin"],
                                      n=choice["predicted_positive"], half=half,
                                      drop=choice.get("drift", {}).get("largest_logit_drop", 0.0),
                                      rates=", ".join(_pct(r) for r in choice.get("drift", {})
                                                      .get("block_hit_rates", []))), "",
            "## Quality (95% intervals: Wilson; F1 Bonferroni-derived; AUC Hanley-McNeil)", ""] + _metrics_table(card["metrics"])
    params = fairness["model"]["parameters"]
    out += ["", f"## Fairness on the held-out rows (min {params['min_department']} recommended searches per "
            f"department, {params['min_group']} per group, max gap {params['max_gap']})", "",
            "'officers' is the officers' own searches (every searched stop was their yes). 'clear' means the 95% "
            "interval of the gap lies above 5 points.", ""] + _fairness_table(fairness)
    if "protected_features_check" in card:
        out += ["", "## Protected attributes", "", _protected_note(card["protected_features_check"]), ""]
        out += _protected_table(card["protected_features_check"])
    out += ["", "## Training population (drift baseline)", ""] + _population(card["population"],
                                                                             card.get("population_rows", 0))
    if "reasons" in card:
        out += ["", "## Reasons: the reference", ""] + _reasons(card["reasons"])
    out += ["", "## Packages", "", ", ".join(f"{k} {v}" for k, v in card["packages"].items())]
    if experiments:
        out += ["", experiments.strip()]
    if bench:
        out += ["", "## Full-size benchmark (`bench/train.py`)", "", "```", bench.strip(), "```"]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    """Print MODEL_CARD.md for an artifact directory."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.training.card_markdown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path, help="artifact directory holding model_card.json")
    parser.add_argument("--bench", type=Path, help="saved stdout of bench/train.py to quote")
    parser.add_argument("--generator-commit", help="git commit of pipeline.synthetic that generated the data")
    parser.add_argument("--experiments", type=Path,
                        help="output directory of `python -m pipeline.experiments`: its comparison.md becomes a section")
    args = parser.parse_args(argv)
    bench = args.bench.read_text() if args.bench else None
    experiments = (args.experiments / "comparison.md").read_text() if args.experiments else None
    sys.stdout.write(render(read_card(args.artifact), bench, args.generator_commit, experiments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
