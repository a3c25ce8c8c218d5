"""The sentence an officer reads for one reason: what the model saw, in the data dictionary's words, and its direction.

Code meanings are those of the CTRP3 data dictionaries (/work/shared/data/ctrp3/data_dictionary.xlsx, the LDSA
capstone's, and "Data Dictionary for RP.xlsx", the official raw-file one): e.g. SearchAuthorizationCode O is
"Other: Probable Cause, Reasonable Suspicion, Plain View Contraband, Incident to Arrest, Drug Dog Alert, Exigent
Circumstances". A protected attribute (only ever a feature of a variant an operator chose to deploy) says so.
"""
from __future__ import annotations

from pipeline.schema import FIELD_BY_NAME

# What each code means, per the data dictionaries, phrased as the start of a sentence.
CODE_PHRASES = {
    "SearchAuthorizationCode": {
        "C": "Search by the subject's consent (C)",
        "I": "Inventory search (I)",
        "N": "No search authority recorded (N, not applicable)",
        "O": "Search authorised by probable cause or another legal ground (O: reasonable suspicion, plain view, "
             "arrest, drug dog alert, exigent circumstances)",
    },
    "InterventionReasonCode": {
        "V": "Stopped for a motor vehicle violation (V)",
        "E": "Stopped for an equipment violation (E)",
        "I": "Investigative stop (I)",
    },
    "SubjectRaceCode": {
        "A": "Subject's race as the officer perceived it: Asian/Pacific Islander (A)",
        "B": "Subject's race as the officer perceived it: Black (B)",
        "I": "Subject's race as the officer perceived it: American Indian/Alaskan Native (I)",
        "W": "Subject's race as the officer perceived it: White (W)",
    },
    "SubjectEthnicityCode": {
        "H": "Subject's ethnicity as the officer perceived it: Hispanic (H)",
        "M": "Subject's ethnicity as the officer perceived it: Middle Eastern (M)",
        "N": "Subject's ethnicity as the officer perceived it: neither Hispanic nor Middle Eastern (N)",
    },
    "SubjectSexCode": {
        "F": "Subject's sex: female (F)",
        "M": "Subject's sex: male (M)",
    },
}
# What a protected attribute is called in the plain statement that the model uses it.
PROTECTED_NAMES = {"SubjectRaceCode": "Race", "SubjectEthnicityCode": "Ethnicity", "SubjectSexCode": "Sex",
                   "SubjectAge": "Age"}
OFFICER_FIELD = "ReportingOfficerIdentificationID"
# Fields the default model leaves out on purpose: a reason naming one says that this model variant uses it.
FLAGGED_FIELDS = frozenset(name for name in PROTECTED_NAMES) | {OFFICER_FIELD}
FIELD_NAMES = {"Department Name": "Department", "StatuteReason": "Stop reason", OFFICER_FIELD: "Reporting officer",
               "InterventionLocationName": "Stop location", "SearchAuthorizationCode": "Search authority",
               "InterventionReasonCode": "Reason for the stop", "SubjectRaceCode": "Subject's race",
               "SubjectEthnicityCode": "Subject's ethnicity", "SubjectSexCode": "Subject's sex"}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
OTHER, MISSING = "other", "missing"
_BOOLEAN_PHRASES = {
    "ResidentIndicator": ("Subject is a Connecticut resident", "Subject is not a Connecticut resident",
                          "Connecticut residency not recorded"),
    "TownResidentIndicator": ("Subject lives in the town of the stop",
                              "Subject does not live in the town of the stop",
                              "Town residency not recorded"),
}


def direction(effect: float) -> str:
    """'raises' or 'lowers' (an effect of exactly 0 is never a reason)."""
    return "raises" if effect > 0 else "lowers"


def _category_phrase(field: str, value: str) -> str:
    name = FIELD_NAMES.get(field, field)
    if value == MISSING:
        return f"{name} not recorded"
    if value == OTHER:
        return f"{name} too rare in training to have its own weight (other)"
    if field in CODE_PHRASES:
        return CODE_PHRASES[field].get(value, f"{name} {value}")
    return f"{name} '{value}'"


def _time_phrase(feature: str, value) -> str:
    if value == MISSING:
        return "Stop time not recorded"
    if feature == "hour":
        return f"Stop between {value:02d}:00 and {value:02d}:59"
    if feature == "time_missing":
        return ("Stop time recorded as exactly midnight (12:00 AM, often a time left blank)" if value
                else "Stop time recorded (not exactly midnight)")
    if feature == "day_of_week":
        return f"Stop on a {value}"
    if feature == "month":
        return f"Stop in {value}"
    return (f"Stop date {value:.2f} on the model's trend over the training years (later dates count as the "
            "newest period seen)")


def phrase(field: str, feature: str, value) -> str:
    """The start of a reason's sentence: the field and the value the model saw, in the dictionary's words."""
    if field == "InterventionDateTime":
        return _time_phrase(feature, value)
    if field in _BOOLEAN_PHRASES:
        yes, no, missing = _BOOLEAN_PHRASES[field]
        return missing if value == MISSING else (yes if value else no)
    if field == "SubjectAge":
        return "Subject's age not recorded" if value == MISSING else f"Subject aged {value}"
    return _category_phrase(field, value)


def sentence(field: str, feature: str, value, effect: float) -> str:
    """One reason as a sentence, e.g. 'Search authorised by probable cause ... (O) raises the probability.'"""
    text = f"{phrase(field, feature, value)} {direction(effect)} the probability."
    if FIELD_BY_NAME[field].protected:
        text += (f" {PROTECTED_NAMES[field]} is a protected attribute: this model variant uses it as a feature, "
                 "which the default model does not.")
    elif field == OFFICER_FIELD:
        text += (" The officer who reports the stop is not a feature of the default model: this model variant "
                 "uses the officer id.")
    return text
