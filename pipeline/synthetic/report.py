"""Calibration report of a CTRP3-format file: its figures beside the CALIBRATION.md targets and their sources.

    python -m pipeline.synthetic.report data/synthetic.csv        # also reads data/synthetic.truth.csv if present

Works on a generated file and on the client's real ``train.csv`` alike, so the two can be compared line by line.
Every figure quoted in ``synthetic_calibration.py`` as "measured" comes from this report on
``python -m pipeline.synthetic --rows 2473643 --seed 0 --out /tmp/synthetic.csv``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.loading import read_truth, truth_path
from pipeline.schema import CT_DATETIME_FORMAT, SEARCHED, TARGET

AGE_BANDS = [0, 18, 20, 23, 28, 35, 40, 61, 200]


def _flag(column: pd.Series) -> np.ndarray:
    return (column.astype(str) == "True").to_numpy()


def _rates(values: pd.Series, flags: np.ndarray, mask: np.ndarray | None = None) -> str:
    mask = np.ones(len(values), bool) if mask is None else mask
    rate = pd.Series(flags[mask]).groupby(values[mask].to_numpy(), dropna=True).mean()
    return " ".join(f"{k} {v:.1%}" for k, v in rate.sort_index().items())


def _shares(values: pd.Series) -> str:
    share = values.value_counts(normalize=True).sort_index()
    return " ".join(f"{k} {v:.1%}" for k, v in share.items())


def _population(frame, searched, hit):
    out = [("search rate", f"{searched.mean():.2%}", "3.10% [R]"),
           ("hit rate among searched", f"{hit[searched].mean():.2%}", "33.25% [R, J]"),
           ("contraband among unsearched", f"{hit[~searched].mean():.3%}", "0.12% [R]")]
    sac = frame["SearchAuthorizationCode"]
    out += [("SAC shares, all rows", _shares(sac), "C 1.11% I 0.65% N 96.41% O 1.84% [J]"),
            ("SAC shares, searched", _shares(sac[searched]), "C 35.26% I 20.47% N 4.29% O 39.96% [J]"),
            ("hit rate by SAC", _rates(sac, hit, searched), "C ~25% I ~12% N ~14% O ~53% [J plot]"),
            ("contraband by SAC, all rows", _rates(sac, hit), "C 25.0% I 12.2% N 0.13% O 35.8% (T4 test set)")]
    for column, shares, search, hits in (
            ("SubjectRaceCode", "A 2.0% B 15.6% I 0.8% W 81.6%", "A 1.02% B 5.82% I 1.11% W 2.65% [R]",
             "A 28.9% B 29.5% I 30.6% W 34.6% [I]"),
            ("SubjectEthnicityCode", "H 13.3% M 1.8% N 84.9%", "H 5.34% M 1.92% N 2.78% [R]",
             "H 27.4% M 27.1% N 34.8% [I]"),
            ("SubjectSexCode", "F 36.8% M 63.2%", "F 1.51% M 4.03% (T6)", "F 31.6% M 33.4% [I]")):
        out += [(f"{column} shares", _shares(frame[column]), shares + " [J, R]"),
                (f"{column} search rate", _rates(frame[column], searched), search),
                (f"{column} hit rate, searched", _rates(frame[column], hit, searched), hits)]
    for column, overall, among in (("ResidentIndicator", "86.1%", "91.3%"),
                                   ("TownResidentIndicator", "31.2%", "39.7%")):
        flag = _flag(frame[column])
        out.append((f"{column} True, all / searched", f"{flag.mean():.1%} / {flag[searched].mean():.1%}",
                    f"{overall} / {among} [J, R]"))
    return out


def _age_and_time(frame, searched, hit):
    age = pd.to_numeric(frame["SubjectAge"], errors="coerce")
    band = pd.cut(age, AGE_BANDS, right=False)
    by_band = pd.Series(hit[searched]).groupby(band[searched].to_numpy(), observed=True).mean()
    when = pd.to_datetime(frame["InterventionDateTime"].astype(str), format=CT_DATETIME_FORMAT, errors="coerce")
    times = frame["InterventionDateTime"].astype(str).str[11:].value_counts()
    night = when.dt.hour.isin([22, 23, 1, 2, 3, 4]).to_numpy()
    group = pd.cut(age, [0, 18, 36, 56, 200], right=False, labels=["Youth", "Young Adult", "Adult", "Senior"])
    return [("age group shares, all / searched", " ".join(
                f"{g} {a:.1%}/{b:.1%}" for g, a, b in zip(group.cat.categories, group.value_counts(normalize=True,
                sort=False), group[searched].value_counts(normalize=True, sort=False))),
             "Youth 1.3/1.7 Young Adult 47.9/73.3 Adult 35.5/21.2 Senior 15.3/3.7 (T6)"),
            ("age mean / sd / median / quartiles",
             f"{age.mean():.1f} / {age.std():.1f} / {age.median():.0f} / "
             f"{age.quantile(.25):.0f}, {age.quantile(.75):.0f}",
             "38.7 / 15.0 / 36 / 26, 50 [J]"),
            ("age min / max / rows under 16", f"{age.min():.0f} / {age.max():.0f} / {(age < 16).sum():,}",
             "1 / 99 / 1,177 of 2.47M [J]"),
            ("hit rate by age band, searched", " ".join(f"{b.left}-{b.right - 1} {v:.0%}" for b, v in by_band.items()),
             "18-19 ~50%, 22 ~40%, 27 ~33%, 35 ~26%, 40-60 ~22% [J plot]"),
            ("hit rate, searched, night (22-04h) / other", f"{hit[searched & night].mean():.1%} / "
             f"{hit[searched & ~night].mean():.1%}", "higher at night (choice)"),
            ("hit rate, searched, 2018", f"{hit[searched & (when.dt.year == 2018).to_numpy()].mean():.1%}",
             "35.7% [F]"),
            ("date span", f"{when.min()} .. {when.max()}", "2013-10-01 00:00 .. 2018-05-16 02:02 [R]"),
            ("12:00:00 AM rows / next most frequent time", f"{times.get('12:00:00 AM', 0):,} / {times.iloc[1]:,}",
             ">10x (OPP via [J])")]


def _mess(frame, searched, hit):
    dept = frame["Department Name"].value_counts()
    year = frame["InterventionDateTime"].astype(str).str[6:10]
    statute = pd.Series(hit[searched]).groupby(frame["StatuteReason"][searched].to_numpy()).mean()
    location = frame["InterventionLocationName"].dropna().astype(str)
    clean = location.str.replace(r"\s+", " ", regex=True).str.strip().str.upper().value_counts()
    state = frame["Department Name"] == "State Police"
    return [("hit rate by statute, searched: min / max", f"{statute.idxmin()} {statute.min():.0%} / "
             f"{statute.idxmax()} {statute.max():.0%}", "Suspended License ~19% .. ~41% [J plot]"),
            ("departments; stops median / p10 / min", f"{dept.size} ; {dept.median():,.0f} / "
             f"{dept.quantile(.1):,.0f} / {dept.min():,}", "122 ; 14,754 / 1,315 / 4 [J, R]"),
            ("State Police share / rows in 2018", f"{state.mean():.1%} / {(state & (year == '2018')).sum():,}",
             "13% / 0 [J]"),
            ("locations raw / cleaned / cleaned seen once", f"{location.nunique():,} / {clean.size:,} / "
             f"{(clean == 1).sum():,}", "2,504 / ~1,500 / about half [J, I]"),
            ("officer ids", f"{frame['ReportingOfficerIdentificationID'].nunique():,}", "8,593 [R]"),
            ("missing values", " ".join(f"{k} {v}" for k, v in frame.isna().sum().items() if v),
             "StatuteReason 507, Location 36, SAC 10, Reason 2, Officer 2 [R]"),
            ("exact duplicate rows", f"{frame.duplicated().mean():.2%}", "8.28% [R]")]


def calibration_report(frame: pd.DataFrame, truth: np.ndarray | None = None) -> list[tuple[str, str, str]]:
    """(figure, value in this file, target and source) rows for a CTRP3-format frame (text or typed columns)."""
    searched, hit = _flag(frame[SEARCHED]), _flag(frame[TARGET])
    rows = _population(frame, searched, hit) + _age_and_time(frame, searched, hit) + _mess(frame, searched, hit)
    if truth is not None:
        from sklearn.metrics import roc_auc_score

        auc = roc_auc_score(hit[searched], truth[searched])
        rows.append(("Bayes AUC among searched (truth)", f"{auc:.3f}", "0.70-0.78 (issue; a real model: 0.67)"))
    return rows


def format_report(rows) -> str:
    """The report as aligned text lines."""
    width = max(len(name) for name, _, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}\n{'':<{width}}  target: {target}" for name, value, target in rows)


def main(argv=None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.synthetic.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="a CTRP3-format CSV; its <name>.truth.csv sidecar is used when present")
    args = parser.parse_args(argv)
    path = Path(args.csv)
    if not path.is_file():
        parser.error(f"{path} does not exist; generate one with python -m pipeline.synthetic --out {path}")
    print(f"reading {path}", file=sys.stderr)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    sidecar = truth_path(path)
    truth = read_truth(sidecar) if sidecar.is_file() else None
    print(format_report(calibration_report(frame, truth)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
