"""``python -m pipeline.registry``: the model registry's command line (pipeline/scoring/registry_cli.py)."""
import sys

from pipeline.scoring.registry_cli import main

if __name__ == "__main__":
    sys.exit(main())
