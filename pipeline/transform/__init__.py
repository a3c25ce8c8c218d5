"""Fitted scikit-learn transformers that live inside a model artifact (a pickle names their module paths).

Imported by training and by scoring alike; may import only ``pipeline.schema``.
"""
