"""The alarm: four verdicts on a report, each "breach", "ok" or "unknown" (not enough evidence), with its reason.

A breach is called only when the evidence is clear, so a scheduler that runs ``python -m pipeline.report --check``
every day does not cry wolf:
- precision: the 95% Wilson interval of the slice's precision lies wholly below 0.5 (at least 30 outcomes);
- fairness: a department and protected attribute break the 5-point rule clearly (pipeline.evaluation.fairness with
  the report's minimum counts: the interval of the largest gap lies wholly above 5 points);
- SAC=N: the share of requests with SearchAuthorizationCode N (no suspicion stated: the client's own production
  failure) in the slice's last SAC_RECENT_DAYS days exceeds the earlier days' by SAC_JUMP or more, and the two
  Wilson intervals do not overlap (at least SAC_MIN_REQUESTS requests on each side);
- population: some field's PSI against the live model's training population exceeds PSI_ALARM (the "major shift"
  band) and is at least twice its noise floor (the PSI sampling alone would give).
"""
from __future__ import annotations

from datetime import timedelta

import pandas as pd

from pipeline.evaluation.metrics import rate

PRECISION_TARGET, PRECISION_MIN_OUTCOMES = 0.5, 30
SAC_RECENT_DAYS, SAC_JUMP, SAC_MIN_REQUESTS = 7, 0.05, 100
PSI_ALARM, PSI_MIN_REQUESTS = 0.25, 100
CHECKS = ("precision", "fairness", "sac_none", "population")


def _verdict(status: str, message: str, **figures) -> dict:
    return {"status": status, "message": message, **figures}


def precision_check(report: dict) -> dict:
    """Breach when the precision interval lies wholly below 0.5."""
    counts = report["performance"]["metrics"]["counts"]
    n = counts["tp"] + counts["fp"]
    measured = rate(counts["tp"], n)
    shown = f"precision {measured['value']:.3f} [{measured['low']:.3f}, {measured['high']:.3f}] over {n} " \
            "recommended searches with outcomes" if n else "no recommended search has an outcome"
    if n < PRECISION_MIN_OUTCOMES:
        return _verdict("unknown", f"{shown}; at least {PRECISION_MIN_OUTCOMES} are needed", precision=measured)
    if measured["high"] < PRECISION_TARGET:
        return _verdict("breach", f"{shown}: the whole interval is below {PRECISION_TARGET}", precision=measured)
    return _verdict("ok", shown, precision=measured)


def fairness_check(report: dict) -> dict:
    """Breach when some department and attribute break the gap rule clearly."""
    fairness = report["fairness"]
    clear = [e for e in fairness["breaking_rule"] if e["clear"]]
    evaluated = sum(s["evaluated"] for s in fairness["model"]["summary"]["by_attribute"].values())
    gap = fairness["parameters"]["max_gap"]
    if clear:
        worst = ", ".join(f"{e['department']} / {e['attribute']} gap {e['max_gap']:.3f} "
                          f"[{e['gap_low']:.3f}, {e['gap_high']:.3f}] ({e['highest_group']} vs {e['lowest_group']})"
                          for e in clear[:3])
        return _verdict("breach", f"{len(clear)} department/attribute pair(s) clearly break the {gap * 100:.0f}-point "
                                  f"rule: {worst}", clear=len(clear), evaluated=evaluated)
    if not evaluated:
        return _verdict("unknown", "no department has enough outcomes for a fairness verdict", clear=0, evaluated=0)
    return _verdict("ok", f"no clear breach of the {gap * 100:.0f}-point rule in {evaluated} department/attribute "
                          f"pairs ({len(fairness['breaking_rule'])} unclear)", clear=0, evaluated=evaluated)


def sac_none_check(by_day: pd.DataFrame, recent_days: int = SAC_RECENT_DAYS) -> dict:
    """Breach when the SAC=N share of the last ``recent_days`` days clearly jumps above the earlier days'."""
    if by_day.empty:
        return _verdict("unknown", "no requests")
    days = pd.to_datetime(by_day["day"]).dt.date
    cutoff = max(days) - timedelta(days=recent_days - 1)
    recent, earlier = by_day[days >= cutoff], by_day[days < cutoff]
    now, before = (rate(int(part["sac_n"].sum()), int(part["requests"].sum())) for part in (recent, earlier))
    shown = (f"SAC=N share {now['value'] or 0:.1%} of {now['n']} requests in the last {recent_days} days "
             f"(since {cutoff}) against {before['value'] or 0:.1%} of {before['n']} before")
    if now["n"] < SAC_MIN_REQUESTS or before["n"] < SAC_MIN_REQUESTS:
        return _verdict("unknown", f"{shown}; {SAC_MIN_REQUESTS} requests on each side are needed",
                        recent=now, earlier=before)
    if now["value"] - before["value"] >= SAC_JUMP and now["low"] > before["high"]:
        return _verdict("breach", f"{shown}: a jump of {(now['value'] - before['value']) * 100:.1f} points; officers "
                                  "may be asking without suspicion", recent=now, earlier=before)
    return _verdict("ok", shown, recent=now, earlier=before)


def population_check(report: dict) -> dict:
    """Breach when a field's PSI exceeds PSI_ALARM and twice its noise floor."""
    population = report["population"]
    if not population["known"]:
        return _verdict("unknown", "the live model's card has no training population")
    if population["requests"] < PSI_MIN_REQUESTS:
        return _verdict("unknown", f"{population['requests']} requests; {PSI_MIN_REQUESTS} are needed for PSI")
    scored = [(field, entry) for field, entry in population["psi"].items() if entry.get("psi") is not None]
    if not scored:
        return _verdict("unknown", "no field has a PSI")
    field, worst = max(scored, key=lambda item: item[1]["psi"])
    shown = f"largest PSI {worst['psi']:.3f} on {field} (noise floor {worst.get('noise_floor') or 0:.4f})"
    shifted = [(f, e) for f, e in scored if e["psi"] > PSI_ALARM and e["psi"] >= 2 * (e.get("noise_floor") or 0)]
    if shifted:
        names = ", ".join(f"{f} {e['psi']:.3f}" for f, e in shifted)
        return _verdict("breach", f"the population drifted past PSI {PSI_ALARM}: {names}", worst_field=field)
    return _verdict("ok", shown, worst_field=field)


def checks(report: dict, sac_by_day: pd.DataFrame) -> dict:
    """All four verdicts of a report, and the overall status: "breach" if any is."""
    found = {"precision": precision_check(report), "fairness": fairness_check(report),
             "sac_none": sac_none_check(sac_by_day), "population": population_check(report)}
    status = "breach" if any(c["status"] == "breach" for c in found.values()) else "ok"
    return {"status": status, "checks": found,
            "rules": {"precision_target": PRECISION_TARGET, "precision_min_outcomes": PRECISION_MIN_OUTCOMES,
                      "sac_recent_days": SAC_RECENT_DAYS, "sac_jump": SAC_JUMP, "psi_alarm": PSI_ALARM}}


def summary_line(alarm: dict) -> str:
    """One line: "ok: ..." with each verdict's figures, or the breaches."""
    parts = [f"{name} {c['status']} ({c['message']})" for name, c in alarm["checks"].items()]
    return f"{alarm['status']}: " + "; ".join(parts)

