"""Serving a trained model: loading and checking an artifact, and the fast single-record scorers.

What the web service imports from the model side. May import ``schema``, ``transform`` and ``evaluation``-free
helpers only: never ``training``, ``synthetic`` or ``report``.
"""
