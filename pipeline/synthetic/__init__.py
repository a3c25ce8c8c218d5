"""The generator of CTRP3-shaped training data with a known truth (``python -m pipeline.synthetic``).

``calibration`` holds the published figures, ``world`` a random world raked onto them, ``model`` how stops,
searches and outcomes are drawn, ``generate`` writes the file. May import ``schema`` and ``loading`` only.
"""
