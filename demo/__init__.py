"""Demo data: a generated stream of stop requests and search outcomes sent through the service's own code.

``python -m demo`` (or ``make demo``) fills the configured database so that every section of the monitoring
report has something to show on a fresh clone. It lives outside ``service/`` and ``pipeline/`` because it joins
the two: the synthetic generator (which the service must never import) and the app (which the pipeline must not).
"""
