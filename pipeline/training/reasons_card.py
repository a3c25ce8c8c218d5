"""Add the average training record (the reference of every reason) to an existing artifact's model card.

    python -m pipeline.training.reasons_card --data train.csv --artifact artifacts/default

Training writes the card's ``reasons`` itself; this is for a model trained before it did. It reloads the training
file, repeats the training's time split, checks that it finds the card's training rows (same file sha256, same
count), and writes each feature's average contribution over them into the card. The pipeline file is untouched.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import joblib

from pipeline.loading import load_training_data
from pipeline.progress import Progress
from pipeline.scoring.artifact import CARD_FILE, PIPELINE_FILE, file_sha256, read_card
from pipeline.scoring.contributions import training_reference
from pipeline.training.selection import time_split


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options of ``python -m pipeline.training.reasons_card``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.training.reasons_card", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the CTRP3 CSV the model was trained on")
    parser.add_argument("--artifact", type=Path, required=True, help="artifact directory (model.joblib + card)")
    parser.add_argument("--validation", type=float, default=0.1, help="validation share used in training (0.1)")
    parser.add_argument("--test", type=float, default=0.1, help="test share used in training (0.1)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser.parse_args(argv)


def add_reference(args: argparse.Namespace) -> dict:
    """Compute the reference on the card's training rows and write it into the card; returns it."""
    say = Progress(args.quiet)
    card = read_card(args.artifact)
    expected = card["training_data"]
    if file_sha256(args.data) != expected["sha256"]:
        raise SystemExit(f"{args.data} is not the file this model was trained on (sha256 {expected['sha256']})")
    say(f"loading {args.data}")
    frame = load_training_data(args.data, progress=say).frame
    rows = time_split(frame["InterventionDateTime"], args.validation, args.test).train
    if len(rows) != expected["rows"]["train"]:
        raise SystemExit(f"the split gives {len(rows)} training rows but the card has {expected['rows']['train']}; "
                         "pass the --validation and --test shares used in training")
    pipeline = joblib.load(args.artifact / PIPELINE_FILE)
    card["reasons"] = training_reference(pipeline, frame.iloc[rows].reset_index(drop=True))
    (args.artifact / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    say(f"reference log-odds {card['reasons']['log_odds']:.4f} over {len(rows):,} training rows; wrote "
        f"{args.artifact / CARD_FILE}")
    return card["reasons"]


def main(argv=None) -> int:
    """Entry point of ``python -m pipeline.training.reasons_card``."""
    add_reference(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
