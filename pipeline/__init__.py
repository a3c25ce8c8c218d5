"""The model's library, framework-free: everything but the web app (training, scoring, evaluation, the report).

Layers, bottom up: ``schema`` (fields, codes, validation), ``loading`` and ``progress``; ``transform`` (the fitted
transformers inside a pickle); ``scoring`` (artifacts and the fast one-record paths); ``evaluation`` (metrics,
fairness, population shift, plots); ``training``, ``synthetic`` and ``report`` on top. Nothing here imports Flask
or ``service``; ``tests/test_architecture.py`` holds the direction of every import.
"""
