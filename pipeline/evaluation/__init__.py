"""Judging predictions: metrics with intervals, the 5-point fairness rule, population shift, plots.

Pure functions over arrays and frames, shared by training, the offline evaluation and the report. May import
``schema``, ``loading``, ``progress`` and ``scoring`` (the evaluation command loads an artifact); never ``training``.
"""
