"""``python -m service.keys``: create a key (printed once, with its API_KEYS entry) or check the configured keys."""
from __future__ import annotations

import argparse
import os
import secrets
import sys

from service.keys import MAX_ACTIVE_PER_ROLE, ROLES, KeyConfigError, Keyring, new_key

MIN_SESSION_SECRET = 32  # as service.config requires (not imported: the key tool must not load the model stack)


def main(argv: list[str] | None = None) -> int:
    """``create`` prints a new key and its API_KEYS entry; ``check`` validates API_KEYS from the environment."""
    parser = argparse.ArgumentParser(prog="python -m service.keys", description=(
        "Make and check the service's API keys. Clients send 'Authorization: Bearer <key>'; the service keeps only "
        "salted sha256 hashes in the environment variable API_KEYS (comma-separated key_id:role:salt:hash entries), "
        f"at most {MAX_ACTIVE_PER_ROLE} active keys per role. API_KEYS_REVOKED lists key ids refused even while "
        "listed."))
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="print a new key (shown once) and the API_KEYS entry to add")
    create.add_argument("--role", required=True, choices=ROLES,
                        help="officer: /should_search, /predict; analyst: /search_result, /update, /report; "
                             "admin: everything")
    create.add_argument("--id", dest="key_id", help="key id, 3-32 of a-z 0-9 - (default: <role>-<date>-<random>)")
    commands.add_parser("check", help="validate API_KEYS, API_KEYS_REVOKED and SESSION_SECRET from the environment; "
                                      "exit status 1 when the service would refuse to start with them")
    commands.add_parser("session-secret", help="print a new random SESSION_SECRET (set the same value on every "
                                               "dyno; changing it signs every analyst out)")
    args = parser.parse_args(argv)
    if args.command == "create":
        try:
            key, entry = new_key(args.role, args.key_id)
        except ValueError as error:
            parser.error(str(error))
        print(f"key (give it to the client; it is not stored anywhere and cannot be shown again):\n{key}\n\n"
              f"API_KEYS entry (append it to API_KEYS, comma-separated, and restart the service):\n{entry}")
        return 0
    if args.command == "session-secret":
        print(secrets.token_urlsafe(48))
        return 0
    return _check()


def _check() -> int:
    """List the configured keys; exit 1, saying why, when the service would refuse to start with them."""
    try:
        keyring = Keyring.parse(os.environ.get("API_KEYS"), os.environ.get("API_KEYS_REVOKED"))
    except KeyConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for key in sorted(keyring.keys.values(), key=lambda k: (k.role, k.key_id)):
        print(f"{key.key_id}\t{key.role}\t{'revoked' if key.key_id in keyring.revoked else 'active'}")
    problems = []
    if not keyring.active():
        problems.append("no active key in API_KEYS: the service refuses to start without keys (see `create`)")
    secret = os.environ.get("SESSION_SECRET") or ""
    if len(secret) < MIN_SESSION_SECRET:
        state = f"shorter than {MIN_SESSION_SECRET} characters" if secret else "unset"
        problems.append(f"SESSION_SECRET is {state}: the service refuses to start with keys on (see `session-secret`)")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
