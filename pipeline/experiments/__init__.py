"""Model variants measured side by side on the same rows: ``python -m pipeline.experiments --data FILE``."""
