"""``python -m pipeline.synthetic``: write a generated training file and its truth sidecar."""
import sys

from pipeline.synthetic.generate import main

sys.exit(main())
