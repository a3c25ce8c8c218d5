"""What every request of a running app shares: the model, loaded once, and the database's schema gate."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from pipeline.scoring.artifact import Artifact
from service import health as health_checks

EXTENSION = "ctrp3"


@dataclass
class ServiceState:
    """The loaded model and the schema gate of the app's database."""

    model: Artifact
    gate: health_checks.SchemaGate

    def health(self) -> dict[str, str]:
        """Problems by component; empty when healthy."""
        return health_checks.check(self.model, self.gate)


def current_state() -> ServiceState:
    """The ServiceState of the app handling the current request."""
    return current_app.extensions[EXTENSION]
