"""``python -m pipeline.evaluate``: the offline evaluation command (its code is ``pipeline.evaluation.cli``)."""
import sys

from pipeline.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
