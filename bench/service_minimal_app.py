"""The baseline for bench/speed.py: the smallest Flask JSON endpoint, served by gunicorn with the same settings."""
from flask import Flask, request


def create_app() -> Flask:
    """A Flask app that parses the same request body and answers a small JSON object, with no model and no DB."""
    app = Flask(__name__)

    @app.post("/should_search")
    def should_search():
        body = request.get_json()
        return {"observation_id": body["observation_id"], "should_search": False, "probability": 0.0}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app
