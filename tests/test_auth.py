"""API keys and roles: the full role matrix on SQLite and Postgres, start-up refusals, and the key CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service import ConfigError, create_app
from service.auth import ADMIN_ONLY, PUBLIC, ROUTE_ROLES, roles_for
from service.keys import ROLES, KeyRejected, Keyring, new_key

ROOT = Path(__file__).resolve().parent.parent
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nowhere"
KNOWN_ID = "matrix-known"
# Who may call what (issue 5): officer decides, analyst records outcomes and reads the report, admin everything.
EXPECTED_ROLES = {
    "/health": set(), "/openapi.json": set(),
    "/should_search": {"officer", "admin"}, "/predict": {"officer", "admin"},
    "/search_result": {"analyst", "admin"}, "/update": {"analyst", "admin"},
    "/report": {"analyst", "admin"}, "/report.html": {"analyst", "admin"},
    "/decisions/<path:observation_id>": {"analyst", "admin"},
    # The pages: public (the report behind them needs a key or a session; sign-in/out check CSRF themselves).
    "/": set(), "/docs": set(), "/docs/assets/<name>": set(), "/sign-in": set(), "/sign-out": set(),
    "/metrics": {"monitor", "admin"},  # issue 14: a monitor key reads /metrics (and the public /health), nothing else
}
# The URL the matrix calls for a route with a parameter.
URLS = {"/decisions/<path:observation_id>": f"/decisions/{KNOWN_ID}"}
# The presented credentials of the matrix: None = no Authorization header; names are keys of ``api_keys``.
CREDENTIALS = (None, "wrong", "revoked", "officer", "officer-next", "analyst", "analyst-next", "monitor", "admin")
ROLE_OF = {"officer": "officer", "officer-next": "officer", "analyst": "analyst", "analyst-next": "analyst",
           "monitor": "monitor", "admin": "admin"}
REFUSAL = {None: (401, "missing_api_key"), "wrong": (401, "invalid_api_key"), "revoked": (401, "revoked_api_key")}


def _requests(observation) -> dict[str, tuple[str, dict | None]]:
    """One valid request per endpoint: (method, JSON body). Decisions get a fresh id at each call."""
    return {
        "/health": ("GET", None), "/openapi.json": ("GET", None),
        "/should_search": ("POST", {"observation": observation}), "/predict": ("POST", {"observation": observation}),
        "/search_result": ("POST", {"observation_id": KNOWN_ID, "contraband_found": False}),
        "/update": ("POST", {"id": KNOWN_ID, "true_class": 0}),
        "/report": ("GET", None), "/report.html": ("GET", None), "/metrics": ("GET", None),
        "/decisions/<path:observation_id>": ("GET", None),
    }


def _expected(path: str, credential: str | None) -> tuple[int, str | None]:
    allowed = EXPECTED_ROLES[path]
    if not allowed:
        return 200, None
    if credential in REFUSAL:
        return REFUSAL[credential]
    return (200, None) if ROLE_OF[credential] in allowed else (403, "forbidden_role")


def _header(api_keys, credential: str | None) -> dict[str, str]:
    if credential is None:
        return {}
    if credential == "wrong":  # a listed key id with someone else's secret
        key = api_keys["officer"].split(".")[0] + "." + api_keys["admin"].split(".")[1]
    else:
        key = api_keys[credential]
    return {"Authorization": f"Bearer {key}"}


def test_every_route_is_in_the_role_table(app):
    """Each route the app serves has an explicit entry (unlisted ones fall back to admin-only), as the issue says."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == set(ROUTE_ROLES), "a new endpoint needs its roles in service.auth.ROUTE_ROLES"
    by_path = {rule.rule: ROUTE_ROLES[rule.endpoint] for rule in app.url_map.iter_rules()}
    assert {path: set(roles) for path, roles in by_path.items()} == EXPECTED_ROLES
    assert roles_for("api.some_future_endpoint") == ADMIN_ONLY and roles_for("api.health") == PUBLIC


def test_role_matrix(app, client_as, api_keys, observation, assert_error, log_counts):
    """Every credential x every endpoint gives exactly the expected status; refusals write nothing."""
    client = client_as(app, None)
    assert client_as(app).post("/should_search", json={"observation_id": KNOWN_ID,
                                                       "observation": observation}).status_code == 200
    rows_before = log_counts()["prediction"]
    requests, seen, accepted_decisions = _requests(observation), {}, 0
    for path, (method, body) in requests.items():
        for number, credential in enumerate(CREDENTIALS):
            if body is not None and "observation" in body:
                body = {**body, ("id" if path == "/predict" else "observation_id"): f"m-{path[1:]}-{number}"}
            response = client.open(URLS.get(path, path), method=method, json=body,
                                   headers=_header(api_keys, credential))
            status, code = _expected(path, credential)
            seen[path, credential] = response.status_code
            if status == 200:
                assert response.status_code == 200, (path, credential, response.get_data(as_text=True)[:300])
                accepted_decisions += path in ("/should_search", "/predict")
            else:
                assert_error(response, status, code)
            if status == 401:
                assert response.headers["WWW-Authenticate"] == "Bearer"
    print("\nrole matrix (status per credential):")
    print(f"{'endpoint':24}" + "".join(f"{str(c):>13}" for c in CREDENTIALS))
    for path in requests:
        print(f"{URLS.get(path, path)[:24]:24}" + "".join(f"{seen[path, c]:>13}" for c in CREDENTIALS))
    assert log_counts()["prediction"] == rows_before + accepted_decisions == rows_before + 2 * 3


def test_decision_lookup_roles_and_unknown_id(app, client_as, observation, assert_error):
    """GET /decisions/<id>: officer 403 (known or not, so an officer cannot probe ids), analyst and admin 200 on a
    logged id and 404 on an unknown one."""
    assert client_as(app).post("/should_search", json={"observation_id": "looked-up",
                                                       "observation": observation}).status_code == 200
    for name in ("officer", "officer-next"):
        for url in ("/decisions/looked-up", "/decisions/never-logged"):
            assert_error(client_as(app, name).get(url), 403, "forbidden_role")
    for name in ("analyst", "admin"):
        found = client_as(app, name).get("/decisions/looked-up")
        assert found.status_code == 200 and found.get_json()["observation_id"] == "looked-up"
        assert_error(client_as(app, name).get("/decisions/never-logged"), 404, "unknown_observation")


@pytest.mark.parametrize("authorization", [
    "Bearer",  # no key
    "Basic dXNlcjpwYXNz",  # another scheme
    "Bearer test-admin",  # key id without secret
    "Bearer not a key",
    "Bearer test-admin." + "A" * 42,  # secret one character short
    "Bearer TEST-ADMIN." + "A" * 43,  # key ids are lower case
    "Bearer other-deployment." + "A" * 43,  # well formed, unknown key id (another deployment's key)
])
def test_malformed_or_foreign_keys_are_401(app, client_as, assert_error, authorization):
    """Anything but 'Bearer <known id>.<its secret>' is 401 invalid_api_key, with WWW-Authenticate."""
    response = client_as(app, None).get("/report", headers={"Authorization": authorization})
    assert_error(response, 401, "invalid_api_key")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_another_deployments_key_is_401(app, client_as, assert_error):
    """A real key created for another deployment (right format, id unknown here) is refused."""
    foreign, _ = new_key("admin", "elsewhere-admin")
    assert_error(client_as(app, None).get("/report", headers={"Authorization": f"Bearer {foreign}"}), 401,
                 "invalid_api_key")


def test_scheme_is_case_insensitive(app, client_as, api_keys):
    """RFC 7235: the auth scheme name is case-insensitive."""
    response = client_as(app, None).get("/report", headers={"Authorization": f"bearer {api_keys['analyst']}"})
    assert response.status_code == 200


def test_refusals_open_no_database_connection_and_read_no_body(artifact, client_as, assert_error):
    """On an unreachable database, 401/403 still answer at once: the key is checked before the connection and
    before the body (an invalid body is not reported to a caller without a valid key)."""
    app = create_app({"DATABASE_URL": UNREACHABLE}, model=artifact)
    assert_error(client_as(app, None).post("/should_search", data=b"{not json", content_type="application/json"),
                 401, "missing_api_key")
    assert_error(client_as(app, "officer").get("/report"), 403, "forbidden_role")
    assert_error(client_as(app, "analyst").post("/predict", data=b"[[[[", content_type="application/json"),
                 403, "forbidden_role")
    assert_error(client_as(app, "officer").post("/predict", data=b"{", content_type="application/json"),
                 503)  # only an admitted caller goes on to the database, which is unreachable here


def test_unrouted_urls_need_a_key(app, client_as, assert_error):
    """404 and 405 are answered only to a valid key of any role, so an anonymous caller cannot map the API."""
    assert_error(client_as(app, None).get("/admin"), 401, "missing_api_key")
    assert_error(client_as(app, "officer").get("/admin"), 404)
    assert_error(client_as(app, "officer").get("/should_search"), 405)
    assert_error(client_as(app, None).get("/should_search"), 401, "missing_api_key")


def test_a_wrong_method_on_a_public_path_is_405_without_a_key(app, client_as, assert_error):
    """/health and /openapi.json are public, so a wrong method on them is answered as such (schemathesis ST204)."""
    for path in ("/health", "/openapi.json"):
        response = client_as(app, None).delete(path)
        assert_error(response, 405)
        assert "GET" in response.headers["Allow"]


def _settings(**entries) -> dict:
    return {"DATABASE_URL": UNREACHABLE, **entries}


@pytest.mark.parametrize(("keys", "message"), [
    ("nonsense", "entry 1 has 1 ':'-separated parts"),
    ("{ok},x:officer:00:11", "entry 2: the key id must be"),
    ("{ok},abc:boss:" + "0" * 32 + ":" + "1" * 64, "entry 2 (abc): unknown role"),
    ("{ok},abc:officer:xyz:" + "1" * 64, "entry 2 (abc): the salt must be"),
    ("{ok},abc:officer:" + "0" * 32 + ":" + "F" * 64, "entry 2 (abc): the hash must be"),
    ("{ok},{ok}", "entry 2: key id 'ok-admin' is listed twice"),
])
def test_malformed_api_keys_are_refused_naming_the_entry(artifact, keys, message):
    """Start-up fails naming the entry and its problem, never echoing a hash."""
    _, entry = new_key("admin", "ok-admin")
    with pytest.raises(ConfigError) as error:
        create_app(_settings(API_KEYS=keys.replace("{ok}", entry)), model=artifact)
    assert message in str(error.value)
    assert entry.rsplit(":", 1)[1] not in str(error.value) and "1" * 64 not in str(error.value)


def test_at_most_two_active_keys_per_role(artifact):
    """A third active officer key is refused; revoking one of the three makes the set valid again (rotation)."""
    entries = [new_key("officer", f"officer-{n}")[1] for n in range(3)]
    with pytest.raises(ConfigError, match="role officer has 3 active keys"):
        create_app(_settings(API_KEYS=",".join(entries)), model=artifact)
    create_app(_settings(API_KEYS=",".join(entries), API_KEYS_REVOKED="officer-0"), model=artifact)


@pytest.mark.parametrize(("settings", "message"), [
    ({}, "python -m service.keys create"),
    ({"API_KEYS": " , "}, "no active API keys"),
    ({"API_AUTH_DISABLED": "1"}, "only accepted value is 'local-development'"),
    ({"API_AUTH_DISABLED": "local-development", "API_KEYS": "{ok}"}, "both API_KEYS and API_AUTH_DISABLED"),
    ({"API_KEYS": "{ok}", "API_KEYS_REVOKED": "ok-admin"}, "no active API keys"),
    ({"API_KEYS": "{ok}", "API_KEYS_REVOKED": "Bad Id"}, "API_KEYS_REVOKED holds 1 malformed"),
])
def test_unsafe_auth_settings_refuse_to_start(artifact, monkeypatch, settings, message):
    """No keys without the explicit development setting; no ambiguous or malformed auth settings."""
    for name in ("API_KEYS", "API_KEYS_REVOKED"):
        monkeypatch.delenv(name)
    entry = new_key("admin", "ok-admin")[1]
    settings = {name: value.replace("{ok}", entry) for name, value in settings.items()}
    with pytest.raises(ConfigError, match=message):
        create_app(_settings(**settings), model=artifact)


def test_development_mode_only_when_explicit_and_never_on_a_dyno(artifact, monkeypatch, client_as, assert_error):
    """API_AUTH_DISABLED=local-development serves without keys; with DYNO set it refuses to start."""
    for name in ("API_KEYS", "API_KEYS_REVOKED"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("API_AUTH_DISABLED", "local-development")
    app = create_app({"DATABASE_URL": UNREACHABLE}, model=artifact)
    assert_error(client_as(app, None).post("/should_search", json={}), 503)  # past the key check, to the database
    monkeypatch.setenv("DYNO", "web.1")
    with pytest.raises(ConfigError, match="Heroku dyno"):
        create_app({"DATABASE_URL": UNREACHABLE}, model=artifact)


def test_keyring_compares_the_whole_secret():
    """A key is accepted only with its own secret; a one-character change is refused."""
    key, entry = new_key("analyst", "one-analyst")
    keyring = Keyring.parse(entry)
    assert keyring.authenticate(f"Bearer {key}").key_id == "one-analyst"
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(KeyRejected) as rejected:
        keyring.authenticate(f"Bearer {tampered}")
    assert rejected.value.code == "invalid_api_key"


@pytest.mark.slow
def test_key_cli_creates_a_key_the_service_accepts(artifact, monkeypatch, client_as, assert_error, tmp_path):
    """`python -m service.keys create` prints a key and its entry; an app configured with the entry accepts it."""
    assert subprocess.run([sys.executable, "-m", "service.keys", "--help"], cwd=ROOT, capture_output=True,
                          timeout=60).returncode == 0
    result = subprocess.run([sys.executable, "-m", "service.keys", "create", "--role", "analyst", "--id", "cli-test"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert result.stderr == ""  # no warning (e.g. runpy's double import) and no noise around the key
    lines = result.stdout.splitlines()
    key = lines[lines.index(next(line for line in lines if line.startswith("key "))) + 1]
    entry = lines[lines.index(next(line for line in lines if line.startswith("API_KEYS entry"))) + 1]
    assert key.startswith("cli-test.") and entry.startswith("cli-test:analyst:") and key.split(".")[1] not in entry
    monkeypatch.setenv("API_KEYS", entry)
    monkeypatch.delenv("API_KEYS_REVOKED")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}, model=artifact)
    headers = {"Authorization": f"Bearer {key}"}
    assert client_as(app, None).get("/report", headers=headers).status_code == 503  # authenticated; unmigrated DB
    assert_error(client_as(app, None).post("/predict", json={}, headers=headers), 403, "forbidden_role")
    secret = subprocess.run([sys.executable, "-m", "service.keys", "session-secret"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True).stdout.strip()
    assert len(secret) >= 32
    checked = subprocess.run([sys.executable, "-m", "service.keys", "check"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60,
                             env={"API_KEYS": entry, "SESSION_SECRET": secret, "PATH": "/usr/bin:/bin"})
    assert checked.returncode == 0 and checked.stdout.split() == ["cli-test", "analyst", "active"]


@pytest.mark.parametrize("env, problem", [
    ({}, "no active key"),
    ({"API_KEYS": "{entry}"}, "SESSION_SECRET is unset"),
    ({"API_KEYS": "{entry}", "SESSION_SECRET": "short"}, "shorter than 32"),
    ({"API_KEYS": "{entry}", "API_KEYS_REVOKED": "cli-check", "SESSION_SECRET": "s" * 40}, "no active key"),
])
def test_key_check_exits_1_when_the_service_would_refuse_to_start(env, problem):
    """`service.keys check` says why the service would not start, and its exit status says so too."""
    _, entry = new_key("analyst", "cli-check")
    env = {name: value.replace("{entry}", entry) for name, value in env.items()}
    checked = subprocess.run([sys.executable, "-m", "service.keys", "check"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env={**env, "PATH": "/usr/bin:/bin"})
    assert checked.returncode == 1 and problem in checked.stderr


def test_roles_are_the_interface_roles():
    """The three roles of the agreed interface, and monitor (issue 14), nothing else."""
    assert ROLES == ("officer", "analyst", "admin", "monitor")
