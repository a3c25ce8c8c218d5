"""What every request of a running app shares: the models it answers with, and the database's schema gate."""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from pipeline.scoring.artifact import Artifact
from pipeline.scoring.follow import ServingModels
from service import health as health_checks

EXTENSION = "ctrp3"


@dataclass
class ServiceState:
    """The serving models (live and shadow, following the registry unless pinned) and the schema gate."""

    models: ServingModels
    gate: health_checks.SchemaGate

    @property
    def model(self) -> Artifact:
        """The live model now (a request reads ``models.current`` once instead, to keep live and shadow paired)."""
        return self.models.current[0]

    def health(self) -> dict[str, str]:
        """Problems by component; empty when healthy."""
        return {**health_checks.check(self.model, self.gate), **self.models.problems()}


def current_state() -> ServiceState:
    """The ServiceState of the app handling the current request."""
    return current_app.extensions[EXTENSION]
