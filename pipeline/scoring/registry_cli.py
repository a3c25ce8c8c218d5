"""``python -m pipeline.registry``: list, show, promote, roll back, shadow, import and export model versions."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from migrations import COMMAND as MIGRATE_COMMAND
from migrations import pending_migrations
from models import DEFAULT_SQLITE_URL, database_from_url, resolve_database_url
from pipeline.scoring import registry
from pipeline.scoring.artifact import ArtifactError
from pipeline.scoring.signing import ENV_VAR, SignatureError, SigningConfigError, new_key_entry

PROG = "python -m pipeline.registry"
FOLLOW_NOTE = "every running service worker follows within a few seconds, without a restart"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=(
        "The model registry in the service's database. Exactly one version is live (it answers every request); at "
        "most one is in shadow (it scores every request beside the live one, and its answers are logged for the "
        "report). Artifacts are signed with the first key of $" + ENV_VAR + " and verified before loading."))
    parser.add_argument("--database-url", help="postgres://, postgresql:// or sqlite:///path (default: "
                        f"$DATABASE_URL, else the embedded SQLite file {DEFAULT_SQLITE_URL})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="every version, newest first, with its status")
    show = commands.add_parser("show", help="one version: status, card summary, comparison, history")
    show.add_argument("version")
    promote = commands.add_parser("promote", help="make VERSION live (refused unless its card shows it at least "
                                  f"as good as the live model on held-out outcomes); {FOLLOW_NOTE}")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote despite the comparison (needs --reason)")
    promote.add_argument("--reason", help="why: recorded in the history (required with --force)")
    rollback = commands.add_parser("rollback", help=f"make the previously live version live again; {FOLLOW_NOTE}")
    rollback.add_argument("--reason", help="why: recorded in the history")
    shadow = commands.add_parser("shadow", help="score every request with VERSION beside the live model (its "
                                 "answers are logged, never returned); --off stops shadowing")
    shadow.add_argument("version", nargs="?")
    shadow.add_argument("--off", action="store_true", help="stop shadow scoring")
    imp = commands.add_parser("import", help="register an artifact directory (model.joblib + model_card.json) as "
                              "a candidate, signed")
    imp.add_argument("directory", type=Path)
    export = commands.add_parser("export", help="write a version's model.joblib and model_card.json to DIR")
    export.add_argument("version")
    export.add_argument("directory", type=Path)
    key = commands.add_parser("new-key", help=f"print a new {ENV_VAR} entry (put it first to sign with it)")
    key.add_argument("--id", dest="key_id", help="key id, 3-32 of a-z 0-9 - (default: model-<random>)")
    commands.add_parser("resign", help=f"re-sign every version with the first key of {ENV_VAR} (key rotation: "
                        "add the new key first, resign, then remove the old key)")
    return parser


def _fmt_time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _list(db) -> int:
    rows = registry.versions(db)
    print(f"{'VERSION':44} {'STATUS':9} {'CREATED (UTC)':19}  {'LAST PROMOTED (UTC)':19}  BY")
    for row in rows:
        print(f"{row.version:44} {row.status:9} {_fmt_time(row.created_at):19}  {_fmt_time(row.promoted_at):19}  "
              f"{row.promoted_by or row.created_by or '-'}")
    return 0


def _metrics(entry: dict | None) -> str:
    if not entry:
        return "n/a"
    parts = []
    for name in ("auc", "precision", "recall"):
        value, interval = entry.get(name), entry.get(f"{name}_interval")
        text = "n/a" if value is None else f"{value:.3f}"
        if interval and None not in interval:
            text += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
        parts.append(f"{name} {text}")
    return ", ".join(parts)


def _show(db, version: str) -> int:
    row, card, changes = registry.version_detail(db, version)
    print(f"version:    {row.version}\nstatus:     {row.status}\nsha256:     {row.sha256}\n"
          f"signed by:  key {row.signature_key_id}\ncreated:    {_fmt_time(row.created_at)} by {row.created_by}\n"
          f"threshold:  {card.get('threshold')}\nscikit-learn: {card.get('packages', {}).get('scikit-learn')}")
    if row.promoted_at:
        print(f"promoted:   {_fmt_time(row.promoted_at)} by {row.promoted_by}"
              + (f" (reason: {row.promotion_reason})" if row.promotion_reason else ""))
    comparison = card.get("comparison")
    if isinstance(comparison, dict):
        print(f"comparison on {comparison.get('held_out')} held-out outcomes against "
              f"{comparison.get('live_version')}: verdict {comparison.get('verdict')}, at least as good: "
              f"{comparison.get('at_least_as_good')}\n  candidate: {_metrics(comparison.get('candidate'))}\n"
              f"  live:      {_metrics(comparison.get('live'))}")
    else:
        print("comparison: none in the card (promote needs --force --reason)")
    print("history:")
    for change in changes:
        print(f"  {_fmt_time(change.changed_at)}  {change.action:9} {change.from_status or '-':>9} -> "
              f"{change.to_status:9} by {change.changed_by}" + (" FORCED" if change.forced else "")
              + (f"  ({change.reason})" if change.reason else ""))
    return 0


def _run(args, db) -> int:
    if args.command == "list":
        return _list(db)
    if args.command == "show":
        return _show(db, args.version)
    if args.command == "promote":
        replaced = registry.promote(db, args.version, force=args.force, reason=args.reason)
        print(f"{args.version} is live (replacing {replaced}); {FOLLOW_NOTE}")
    elif args.command == "rollback":
        previous, now = registry.rollback(db, reason=args.reason)
        print(f"{now} is live again (rolled back from {previous}); {FOLLOW_NOTE}")
    elif args.command == "shadow":
        if args.off == (args.version is not None):
            raise registry.RegistryError("give either VERSION or --off")
        previous = registry.set_shadow(db, None if args.off else args.version)
        print(f"shadow: {args.version or 'none'} (was {previous or 'none'}); {FOLLOW_NOTE}")
    elif args.command == "import":
        print(registry.register_candidate(db, args.directory))
    elif args.command == "export":
        print(registry.export_version(db, args.version, args.directory))
    elif args.command == "resign":
        done, unverifiable = registry.resign(db)
        print(f"re-signed {len(done)} version(s): {', '.join(done) or 'none needed'}")
        for version, why in unverifiable.items():
            print(f"NOT re-signed {version}: {why}", file=sys.stderr)
        return 1 if unverifiable else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 done, 1 refused (comparison, signature, scikit-learn), 2 bad usage or configuration."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "new-key":
        try:
            entry = new_key_entry(args.key_id)
        except SigningConfigError as error:
            parser.error(str(error))
        print(f"{ENV_VAR} entry (keep it secret; put it first in {ENV_VAR} to sign with it):\n{entry}")
        return 0
    try:
        db = database_from_url(resolve_database_url(args.database_url))
        pending = pending_migrations(db)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the driver's error: unreachable database
        print(f"error: cannot read the database: {type(error).__name__}: {str(error).strip().splitlines()[0]}",
              file=sys.stderr)
        return 2
    if pending:
        print(f"error: the database schema is behind ({', '.join(pending)}); run `{MIGRATE_COMMAND}` first",
              file=sys.stderr)
        return 2
    try:
        return _run(args, db)
    except (registry.RegistryError, ArtifactError, SignatureError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except SigningConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())

