"""Entry point: gunicorn runs ``app:create_app()``; ``python app.py`` runs Flask's development server."""
from __future__ import annotations

import argparse
import logging
import sys

from pipeline.scoring.artifact import ArtifactError
from service import ConfigError, create_app

__all__ = ["create_app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the development server on the embedded defaults (SQLite and the committed model)."""
    parser = argparse.ArgumentParser(description="Run the CTRP3 search service with Flask's development server "
                                     "(production uses gunicorn, see Procfile). Settings come from the "
                                     "environment: DATABASE_URL, MODEL_DIR, MAX_CONTENT_LENGTH, API_KEYS, "
                                     "API_KEYS_REVOKED, SESSION_SECRET (with keys), TRUSTED_PROXY_HOPS, "
                                     "API_AUTH_DISABLED=local-development (no keys, "
                                     "local development only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # werkzeug's own request log quotes raw paths and query strings; the service logs one private line per request.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    try:
        app = create_app()
    except (ConfigError, ArtifactError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
