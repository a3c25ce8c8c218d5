"""Calibration constants of the synthetic CTRP3 generator, each with its source.

Source keys are those of ``/work/shared/data/ctrp3/CALIBRATION.md``: [R] rjna EDA of the full LDSA train.csv,
[J] jnpicao notebooks and plots, [I] inessampaioalmeida (train split, deduplicated), [F] fcboss 2018 searched rows,
[S] Stanford Open Policing. "T3", "T4", "T6" are tables of the client's report
(``/work/shared/seed/000_4dfd5728fc2f929a.txt``); [W] is trendct ``department_warnings.csv`` (SOURCES.md), one year
of stops per department. [D] is ``dry_run.json``, the 223 real searched stops of May 2018. "Choice" marks a value
no source pins down: it is a judgement made to produce the qualitative pattern the sources describe.

Figures this module quotes as measured ("gave", "~N at full size") come from the calibration report:

    python -m pipeline.synthetic --rows 2473643 --seed 0 --out /tmp/synthetic.csv
    python -m pipeline.synthetic.report /tmp/synthetic.csv

The logistic models have two kinds of coefficients: *shape* effects fixed here (age curve, statute, hour, reason,
department draws) and *level* effects fitted by raking (``rake_logit``) so that the published marginal rates hold.
"""
from __future__ import annotations

import numpy as np

FULL_ROWS = 2_473_643  # [R] rows of train.csv; every count below is per this many rows and scales with --rows

# ---- time -----------------------------------------------------------------------------------------------
FIRST_DAY, LAST_DAY = "2013-10-01", "2018-05-16"  # [R cell 57] span of InterventionDateTime
LAST_MINUTE_OF_LAST_DAY = 2 * 60 + 2  # [R] the file ends at 05/16/2018 02:02
MISSING_TIME_SHARE = 0.03  # choice: time-less stops print as 12:00:00 AM; 3% is ~40x the busiest minute ([J] >10x)
# Stops per hour of day, 0..23 (choice: the usual traffic-stop profile, busy mornings and late afternoons).
HOUR_WEIGHTS = np.array([3.0, 2.6, 2.2, 1.5, 1.0, 1.2, 2.2, 4.0, 5.6, 5.8, 5.6, 5.4,
                         5.0, 5.0, 5.4, 5.8, 5.6, 5.0, 4.6, 4.4, 4.0, 4.2, 4.4, 3.8])
NIGHT_HOURS = (22, 23, 0, 1, 2, 3, 4)  # choice: night stops are searched more and find more (OPP "veil of darkness")
HIT_NIGHT_LOGIT, SEARCH_NIGHT_LOGIT = 0.30, 0.45  # choice
HIT_TREND_PER_YEAR = 0.05  # choice: a slow upward drift in hit rate, shape only (levels: HIT_TARGETS["period"])
STATE_POLICE = "State Police"  # [J] 322,003 rows (13%); absent in 2018, when CSP troops take over
STATE_POLICE_ROWS = 322_003

# ---- codes and their shares -------------------------------------------------------------------------------
SEX = ("M", "F"), np.array([0.632, 0.368])  # [J, R] and T6
RACE = ("W", "B", "A", "I"), np.array([0.816, 0.156, 0.020, 0.008])  # [J, R] and T6
ETHNICITY = ("N", "H", "M")
# P(ethnicity | race), rows in RACE order (choice) chosen so the marginal is [J] N 84.9 / H 13.3 / M 1.8.
ETHNICITY_GIVEN_RACE = np.array([[0.849, 0.130, 0.021], [0.837, 0.160, 0.003],
                                 [0.930, 0.020, 0.050], [0.850, 0.150, 0.000]])
REASON = ("V", "E", "I"), np.array([0.8811, 0.0991, 0.0198])  # [J]
REASON_JUNK = {"no": 3}  # [J] junk reason codes per FULL_ROWS (NaN counts are in NAN_COUNTS)
# Statute reasons: [J] counts; hit rate among searched (shape, 19%..41%: [J plot]); search-rate multiplier (choice,
# from the over-representation of Administrative Offense, Window Tint and Defective Lights among searched rows in [D]).
STATUTES = (
    ("Speed Related", 681_119, 0.30, 0.45), ("Defective Lights", 227_836, 0.31, 1.6),
    ("Registration", 227_231, 0.27, 1.2), ("Cell Phone", 221_641, 0.26, 0.3),
    ("Moving Violation", 190_596, 0.38, 1.4), ("Traffic Control Signal", 178_880, 0.30, 0.6),
    ("Other", 175_443, 0.39, 1.3), ("Stop Sign", 166_174, 0.31, 0.6), ("STC Violation", 125_707, 0.37, 1.2),
    ("Seatbelt", 80_684, 0.41, 1.0), ("Display of Plates", 68_558, 0.28, 2.5), ("Other/Error", 44_224, 0.30, 1.0),
    ("Administrative Offense", 29_224, 0.25, 9.0), ("Window Tint", 28_170, 0.33, 8.0),
    ("Suspended License", 11_555, 0.19, 5.0), ("Unlicensed Operation", 9_499, 0.22, 5.0),
    ("Equipment Violation", 6_595, 0.29, 2.0),
)
STOP_SIGN_PADDED_SHARE = 0.05  # [I] a "Stop Sign " variant exists; its share is a choice
TOWING_STATUTES = ("Suspended License", "Unlicensed Operation", "Registration", "Administrative Offense")
TOWING_INVENTORY_LOGIT = 1.0  # choice: towed cars get inventory searches (SAC I), which rarely find anything

# ---- age: piecewise-linear inverse CDF through the published quantiles --------------------------------------
UNDER_16_ROWS = 1_177  # [J] rows under 16, drawn uniformly from ages 1..15
# (cumulative share, age): [J] quartiles 26/50 and median 36; T6 shares Youth 1.3%, Young Adult 47.9%, Adult 35.5%;
# upper tail (choice) to give mean ~38.7, sd ~15 and max 99 (flooring: 0.245 -> 26 keeps the lower quartile at 26).
AGE_KNOTS = np.array([(0.0, 16), (0.013, 18), (0.245, 26), (0.492, 36), (0.745, 50), (0.847, 56),
                      (0.95, 65), (0.99, 75), (0.9995, 87), (1.0, 100)], dtype=float)
# Hit rate among searched by age [J plot]: ~0.50 at 18-19, 0.40 at 22, 0.33 at 27, 0.26 at 35, 0.22 at 40-60.
# The 18-19 knots sit at 0.54 because the raked levels pull the young end in: with 0.50 the full-size file gave 0.47.
HIT_AGE_CURVE = np.array([(1, 0.30), (16, 0.47), (18, 0.54), (19.5, 0.54), (22, 0.40), (27, 0.33), (35, 0.26),
                          (40, 0.22), (60, 0.22), (99, 0.20)], dtype=float)

# ---- residency ---------------------------------------------------------------------------------------------
# [J, R] resident 86.1%, town resident 31.2%, 1.8% town-but-not-state resident. Joint cells (res, town):
RESIDENCY_CELLS = ((True, True, 0.294), (False, True, 0.018), (True, False, 0.567), (False, False, 0.121))
HIT_NONRESIDENT_LOGIT, HIT_TOWN_RESIDENT_LOGIT = 0.20, -0.10  # choice: out-of-state searches find a little more

# ---- search (VehicleSearchedIndicator) ----------------------------------------------------------------------
SEARCH_RATE = 0.0310  # [R] 76,743 / 2,473,643
SEARCH_REASON_LOGIT = {"V": 0.0, "E": 0.5, "I": 1.5}  # choice: investigations lead to searches most
# Search rate by group, raked exactly: race and ethnicity [R cells 7-16]; sex, age group, residency derived from
# the searched-row shares of T6 / CALIBRATION.md: rate = 3.10% x share among searched / share among all.
SEARCH_TARGETS = {
    "race": {"W": 0.0265, "B": 0.0582, "A": 0.0102, "I": 0.0111},
    "ethnicity": {"N": 0.0278, "H": 0.0534, "M": 0.0192},
    "sex": {"M": 0.0310 * 0.821 / 0.632, "F": 0.0310 * 0.179 / 0.368},
    "age_group": {"Youth": 0.0310 * 0.017 / 0.013, "Young Adult": 0.0310 * 0.733 / 0.479,
                  "Adult": 0.0310 * 0.212 / 0.355, "Senior": 0.0310 * 0.037 / 0.153},
    "resident": {True: 0.0310 * 0.913 / 0.861, False: 0.0310 * 0.087 / 0.139},
    "town_resident": {True: 0.0310 * 0.397 / 0.312, False: 0.0310 * 0.603 / 0.688},
}
# SAC given searched / unsearched: [J] crosstab C 276/27,063; I 318/15,710; N 2,381,540/3,290; O 14,766/30,670
# (T3 gives the same shares rounded). T4's test-set contraband by SAC over ALL rows (O 35.8% = 67.5% searched x 53%)
# then follows, because unsearched rows rarely carry contraband.
SAC_CODES = ("C", "I", "N", "O")
SAC_GIVEN_SEARCHED = np.array([27_063, 15_710, 3_290, 30_670]) / 76_733
SAC_GIVEN_UNSEARCHED = np.array([276, 318, 2_381_540, 14_766]) / 2_396_900

# ---- contraband (ContrabandIndicator) ------------------------------------------------------------------------
# Hit rate among searched, raked exactly: by SAC [J plot] (overall 33.25% [R, J] follows from the SAC mix); by race,
# ethnicity and sex [I]. These group disparities are what the fairness evaluation must be able to find.
HIT_TARGETS = {
    "sac": {"C": 0.255, "I": 0.12, "N": 0.14, "O": 0.53},  # C 0.255, not 0.25: with the SAC mix
    # above, 0.25 gives 33.0% overall; the bar chart cannot tell 25.5% from 25%, and 33.25% [R, J] is exact.
    "race": {"W": 0.346, "B": 0.295, "A": 0.289, "I": 0.306},
    "ethnicity": {"N": 0.348, "H": 0.274, "M": 0.271},
    "sex": {"M": 0.334, "F": 0.316},
    # [F] 2018 searched rows hit 35.7%; before 2018, whatever keeps 33.25% overall (2018 is ~8% of searches).
    "period": {"before 2018": 0.3304, "2018": 0.357},
}
HIT_REASON_LOGIT = {"V": 0.0, "E": -0.05, "I": 0.30}  # choice
UNSEARCHED_HIT_RATE = 0.0012  # [R] 2,823 contraband rows among 2,396,900 unsearched
UNSEARCHED_SHAPE_WEIGHT = 0.5  # choice: unsearched contraband follows the searched risk pattern, damped

# ---- departments ---------------------------------------------------------------------------------------------
# Municipal and special departments with [W] one-year stop counts (relative sizes; scaled x ~5 to the file).
DEPARTMENT_STOPS = dict(item.rsplit(":", 1) for item in (
    "Ansonia:4883,Avon:667,Berlin:6644,Bethel:3712,Bloomfield:5515,Branford:6891,Bridgeport:4717,Bristol:4653,"
    "Brookfield:3223,Canton:1751,CAPITOL POLICE:275,CCSU:1791,Cheshire:4749,Clinton:2332,Coventry:1343,"
    "Cromwell:2330,Danbury:6182,Darien:3681,Derby:3725,DMV:2317,East Hampton:725,East Hartford:7542,"
    "East Haven:1555,East Windsor:1035,Easton:427,ECSU:173,Enfield:7126,Fairfield:4480,Farmington:4525,"
    "Glastonbury:5902,Granby:1484,Greenwich:8041,Groton City:2805,Groton Long Point:105,Groton Town:6252,"
    "Guilford:2711,Hamden:5442,Hartford:8254,Ledyard:10,Madison:2733,Manchester:3407,Meriden:3209,"
    "MET DIST WATER AUTHORITY:9,Middlebury:266,Middletown:3700,Milford:4358,Monroe:4319,MTA Stamford:1,"
    "Naugatuck:5907,New Britain:5533,New Canaan:4229,New Haven:11159,New London:1524,New Milford:4049,"
    "Newington:6410,Newtown:9402,North Branford:1340,North Haven:2795,Norwalk:7900,Norwich:6919,"
    "Old Saybrook:2783,Orange:3129,Plainfield:1240,Plainville:4999,Plymouth:2610,Portland:160,Putnam:2308,"
    "Redding:2537,Ridgefield:7366,Rocky Hill:3697,SCSU:917,Seymour:3710,Shelton:618,Simsbury:3281,"
    "South Windsor:2615,Southington:5395,Stamford:760,Stonington:1894,Stratford:2956,Suffield:556,Thomaston:942,"
    "Torrington:8657,Trumbull:2974,UCONN:1767,Vernon:3762,Wallingford:9178,Waterbury:1742,Waterford:3289,"
    "Watertown:1784,WCSU:38,West Hartford:8221,West Haven:3867,Weston:410,Westport:7193,Wethersfield:5547,"
    "Willimantic:3942,Wilton:3893,Windsor:5565,Windsor Locks:2869,Winsted:717,Wolcott:797,Woodbridge:2465,"
    "Yale:1050,"
    # Not in [W] (choice of size, small so the 10th percentile is ~1,300 stops [J]): East Lyme and CSP Headquarters
    # appear in [D], Ellington as a [D] location; the tribal and MTA police are named in [J]. 122 departments [R].
    "East Lyme:2100,Ellington:900,MTA:300,Mohegan Tribal:250,Mohegan Tribal Police:150,Mashantucket Pequot:200"
).split(","))
DEPARTMENT_STOPS = {name: int(count) for name, count in DEPARTMENT_STOPS.items()}
# CSP troops A..L (there is no troop J) and headquarters, in [W]-scale units (choice): [J] ranks State Police,
# New Haven, then Troops C, F, A by size, so troops stay below New Haven.
TROOP_STOPS = {"CSP Troop C": 10_400, "CSP Troop F": 10_000, "CSP Troop A": 9_600, "CSP Troop H": 7_600,
               "CSP Troop G": 7_200, "CSP Troop E": 6_000, "CSP Troop D": 5_200, "CSP Troop K": 4_800,
               "CSP Troop I": 4_400, "CSP Troop L": 2_800, "CSP Troop B": 2_400, "CSP Headquarters": 600}
DEPT_SEARCH_SD, DEPT_HIT_SD = 0.50, 0.25  # choice: department search habits and base hit rates, logit scale
DEPT_RACE_SEARCH_SD, DEPT_RACE_HIT_SD = 0.30, 0.25  # choice: within-department race disparities
DEPT_SAC_SD = 0.40  # choice: departments differ in how they record searches (consent vs probable cause)
DEPT_STYLE_SHARES = (0.70, 0.20, 0.10)  # choice: location written UPPER, Title, or UPPER padded to 20 characters
OFFICERS_DRAWN = 8_600  # choice: unique ids, nearly all of which appear at full size: [R] counts 8,593
OFFICER_SEARCH_SD = 0.40  # choice: officers differ in how often they search (not in what they find)

# ---- the mess --------------------------------------------------------------------------------------------------
DUPLICATE_SHARE = 204_756 / FULL_ROWS  # [R] exact duplicate rows
NAN_COUNTS = {"StatuteReason": 507, "InterventionLocationName": 36, "SearchAuthorizationCode": 10,
              "InterventionReasonCode": 2, "ReportingOfficerIdentificationID": 2}  # [R]
RARE_JUNK_MIN_ROWS = 10_000  # choice: files this size get at least one of each rare junk value, so tests see them
AWAY_STOP_SHARE = 0.08  # choice: municipal stops made outside the home town
STREET_FRAGMENT_SHARE = 0.00105  # choice: location is a street fragment ("East Main St/Columbu", [J, I])
# Fragment pool size and Zipf exponent (choice): at full size ~1,300 distinct cleaned fragments, about half of them
# seen once, and ~2,500 raw location values in all [J, I]; each use is written Title, UPPER or UPPER-padded.
STREET_POOL_SIZE, STREET_ZIPF = 3_200, 0.5  # ~2,500 distinct after truncation to 20 characters
FRAGMENT_STYLE_SHARES = (0.50, 0.35, 0.15)
LOCATION_WIDTH = 20  # [J] padded values such as "WATERTOWN           " are 20 characters wide
STREETS = ("Main St,East Main St,West Main St,North Main St,South Main St,Columbus Ave,Boston Post Rd,Farmington Ave,"
           "Washington St,Park St,Church St,Elm St,Maple Ave,Broad St,State St,High St,Prospect St,Center St,"
           "Whitney Ave,Chapel St,Dixwell Ave,Albany Ave,Silas Deane Hwy,Berlin Tpke,Queen St,Federal Rd,"
           "Route 1,Route 2,Route 6,Route 9,Route 15,I-84,I-91,I-95,I-395,Wolcott St,Meriden Rd,Hartford Tpke,"
           "Dixwell St,New Britain Ave,Kings Hwy,Post Rd,Bridgeport Ave,Thomaston Ave,Buckingham St,Burnside Ave,"
           "Silver Ln,Tolland Tpke,Straits Tpke,Chase Ave").split(",")

# CT's 169 towns plus villages that appear as locations ([D]: BYRAM, OAKVILLE, STORRS).
TOWNS = tuple((
    "Andover,Ansonia,Ashford,Avon,Barkhamsted,Beacon Falls,Berlin,Bethany,Bethel,Bethlehem,Bloomfield,Bolton,"
    "Bozrah,Branford,Bridgeport,Bridgewater,Bristol,Brookfield,Brooklyn,Burlington,Canaan,Canterbury,Canton,"
    "Chaplin,Cheshire,Chester,Clinton,Colchester,Colebrook,Columbia,Cornwall,Coventry,Cromwell,Danbury,Darien,"
    "Deep River,Derby,Durham,East Granby,East Haddam,East Hampton,East Hartford,East Haven,East Lyme,East Windsor,"
    "Eastford,Easton,Ellington,Enfield,Essex,Fairfield,Farmington,Franklin,Glastonbury,Goshen,Granby,Greenwich,"
    "Griswold,Groton,Guilford,Haddam,Hamden,Hampton,Hartford,Hartland,Harwinton,Hebron,Kent,Killingly,"
    "Killingworth,Lebanon,Ledyard,Lisbon,Litchfield,Lyme,Madison,Manchester,Mansfield,Marlborough,Meriden,"
    "Middlebury,Middlefield,Middletown,Milford,Monroe,Montville,Morris,Naugatuck,New Britain,New Canaan,"
    "New Fairfield,New Hartford,New Haven,New London,New Milford,Newington,Newtown,Norfolk,North Branford,"
    "North Canaan,North Haven,North Stonington,Norwalk,Norwich,Old Lyme,Old Saybrook,Orange,Oxford,Plainfield,"
    "Plainville,Plymouth,Pomfret,Portland,Preston,Prospect,Putnam,Redding,Ridgefield,Rocky Hill,Roxbury,Salem,"
    "Salisbury,Scotland,Seymour,Sharon,Shelton,Sherman,Simsbury,Somers,South Windsor,Southbury,Southington,"
    "Sprague,Stafford,Stamford,Sterling,Stonington,Stratford,Suffield,Thomaston,Thompson,Tolland,Torrington,"
    "Trumbull,Union,Vernon,Voluntown,Wallingford,Warren,Washington,Waterbury,Waterford,Watertown,West Hartford,"
    "West Haven,Westbrook,Weston,Westport,Wethersfield,Willington,Wilton,Winchester,Windham,Windsor,"
    "Windsor Locks,Wolcott,Woodbridge,Woodbury,Woodstock,"
    "Byram,Oakville,Storrs,Willimantic,Winsted,Mystic,Groton Long Point,Danielson,Jewett City,Niantic,Pawcatuck,"
    "Cos Cob,Unionville,Terryville,Rockville,Southport,Uncasville,Gales Ferry,Yalesville,Kensington"
).split(","))
# Home towns of departments whose name is not a town (choice, from where these agencies patrol).
SPECIAL_HOMES = {
    "CAPITOL POLICE": ("Hartford",), "CCSU": ("New Britain",), "DMV": ("Wethersfield", "Hartford"),
    "ECSU": ("Willimantic",), "Groton City": ("Groton",), "Groton Town": ("Groton", "Mystic"),
    "MET DIST WATER AUTHORITY": ("Hartford", "West Hartford"), "MTA Stamford": ("Stamford",),
    "MTA": ("Stamford", "Norwalk", "Bridgeport", "New Haven"), "Mohegan Tribal": ("Uncasville", "Montville"),
    "Mohegan Tribal Police": ("Uncasville",), "Mashantucket Pequot": ("Ledyard",), "SCSU": ("New Haven",),
    "UCONN": ("Storrs", "Mansfield"), "WCSU": ("Danbury",), "Yale": ("New Haven",), "CSP Headquarters": ("Middletown",),
}


def logit(p):
    """Log-odds of a probability (array or scalar)."""
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def sigmoid(x):
    """Inverse of ``logit``."""
    return 1.0 / (1.0 + np.exp(-x))


def rake_logit(base, factors, weights, iterations=50, tolerance=1e-6):
    """Fit per-level logit offsets so weighted mean probabilities hit each factor's target rates.

    ``factors`` is a list of (codes array of ints, target rate per level). Returns one offset array per factor;
    ``sigmoid(base + sum(offset[codes]))`` then reproduces the targets (iterative proportional fitting on logits).
    """
    offsets = [np.zeros(len(targets)) for _, targets in factors]
    masses = [np.bincount(codes, weights=weights, minlength=len(targets)) for codes, targets in factors]
    total = np.array(base, dtype=float)
    for _ in range(iterations):
        largest = 0.0
        for k, (codes, targets) in enumerate(factors):
            hits = np.bincount(codes, weights=weights * sigmoid(total), minlength=len(targets))
            present = masses[k] > 0
            step = np.zeros(len(targets))
            step[present] = logit(np.asarray(targets)[present]) - logit(hits[present] / masses[k][present])
            offsets[k] += step
            total += step[codes]
            largest = max(largest, float(np.abs(step).max()))
        if largest < tolerance:
            break
    return offsets
