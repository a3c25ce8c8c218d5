"""Fitting a model: candidate pipelines, model selection, threshold choice, and the model card.

Used by ``python -m pipeline.train``; never imported by the service. May import every lower layer
(``schema``, ``loading``, ``transform``, ``scoring``, ``evaluation``), but not ``synthetic`` or ``report``.
"""
