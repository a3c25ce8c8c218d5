"""``python -m pipeline.train``: the training command (its code is ``pipeline.training.cli``)."""
import sys

from pipeline.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
