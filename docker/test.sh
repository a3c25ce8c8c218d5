#!/usr/bin/env bash
# make docker-test: build the image and run it as production would, against the test Postgres, checking each step.
#
#   1. a Docker engine: the running one, else dockerd is started here (installing Debian's docker.io if missing) with
#      --storage-driver=vfs --iptables=false --bridge=none, and stopped again at the end;
#   2. the base: BASE_IMAGE if set, else python:3.11-slim if a registry answers, else one built from Debian's
#      packages by docker/local-base.sh (debootstrap; cached under /var/cache/ctrp3-docker);
#   3. the build, timed, with the host's extra CA certificates (EXTRA_CA_DIR, default /usr/local/share/ca-certificates)
#      passed as the EXTRA_CA_CERTS build argument when there are any; the image size;
#   4. the release command (python -m migrations) and the service (--network host) on a fresh database of the
#      server at TEST_POSTGRES_URL; /health 200; the non-root user; the HEALTHCHECK turning healthy (the Dockerfile's
#      own 30 s interval); an officer's /should_search answered, an analyst's /report.html drawn with its charts,
#      the decision counted in /metrics (monitor key); SIGTERM exiting 0 in under 10 s.
# Any failure, including no engine, exits non-zero with the reason: nothing is skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE=${IMAGE:-ctrp3-search:test}
CONTAINER=ctrp3-docker-test-$$
TEST_POSTGRES_URL=${TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/test}
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/ctrp3-dockerd.log}
BUILD_LOG=${BUILD_LOG:-/tmp/ctrp3-docker-build.log}
# Debian's client when installed; any docker client on PATH otherwise.
if [[ -z "${DOCKER:-}" ]]; then DOCKER=$([[ -x /usr/bin/docker ]] && echo /usr/bin/docker || echo docker); fi
export DOCKER
DOCKERD_PID=""
DATABASE=""

say() { echo "docker-test: $*"; }
fail() { echo "docker-test: FAILED: $*" >&2; exit 1; }

cleanup() {
    local status=$?
    if [[ -n "${CONTAINER_STARTED:-}" ]]; then
        [[ $status -ne 0 ]] && { echo "--- container log (last 40 lines) ---" >&2; "$DOCKER" logs --tail 40 "$CONTAINER" >&2 2>&1 || true; }
        "$DOCKER" rm -f "$CONTAINER" >/dev/null 2>&1 || true
    fi
    if [[ -n "$DATABASE" ]]; then psql "$TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $DATABASE" >/dev/null 2>&1 || true; fi
    if [[ -n "$DOCKERD_PID" ]]; then  # only the engine this script started
        kill "$DOCKERD_PID" 2>/dev/null && for _ in $(seq 50); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    fi
    exit $status
}
trap cleanup EXIT

engine() {
    if "$DOCKER" info >/dev/null 2>&1; then say "engine: the running one ($("$DOCKER" version -f '{{.Server.Version}}'))"; return; fi
    [[ $(id -u) -eq 0 ]] || fail "no Docker engine answers and starting one needs root"
    if ! command -v dockerd >/dev/null; then
        say "installing Debian's docker.io ..."
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >/dev/null \
            || fail "could not install docker.io with apt-get"
        DOCKER=/usr/bin/docker
    fi
    say "starting dockerd (vfs, no iptables, no bridge; log $DOCKERD_LOG) ..."
    dockerd --storage-driver=vfs --iptables=false --bridge=none >"$DOCKERD_LOG" 2>&1 &
    DOCKERD_PID=$!
    for _ in $(seq 60); do
        "$DOCKER" info >/dev/null 2>&1 && { say "engine: dockerd $("$DOCKER" version -f '{{.Server.Version}}') started here"; return; }
        kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$DOCKERD_LOG" >&2; fail "dockerd exited"; }
        sleep 0.5
    done
    tail -20 "$DOCKERD_LOG" >&2
    fail "dockerd did not answer within 30 s"
}

base_image() {
    if [[ -n "${BASE_IMAGE:-}" ]]; then say "base: $BASE_IMAGE (BASE_IMAGE)"; return; fi
    if timeout 60 "$DOCKER" pull -q python:3.11-slim >/dev/null 2>&1; then
        BASE_IMAGE=python:3.11-slim; say "base: python:3.11-slim (pulled)"; return
    fi
    say "base: no registry reachable; building one from Debian's packages (docker/local-base.sh) ..."
    BASE_IMAGE=$(docker/local-base.sh) || fail "docker/local-base.sh could not build a base image"
    say "base: $BASE_IMAGE ($(( $("$DOCKER" image inspect -f '{{.Size}}' "$BASE_IMAGE") / 1000000 )) MB)"
}

build() {
    # --network host: dockerd runs with --bridge=none, so a build step has no other way out (pip).
    local args=(--network host --build-arg "BASE_IMAGE=$BASE_IMAGE") certs
    certs=$(cat "$EXTRA_CA_DIR"/*.crt 2>/dev/null || true)
    if [[ -n "$certs" ]]; then
        args+=(--build-arg "EXTRA_CA_CERTS=$certs")
        say "build: passing $(grep -c 'BEGIN CERTIFICATE' <<<"$certs") extra CA certificate(s) from $EXTRA_CA_DIR"
    fi
    local started=$SECONDS
    # BuildKit: with the vfs storage driver the classic builder copies the whole file system at every step.
    DOCKER_BUILDKIT=1 "$DOCKER" build --progress plain "${args[@]}" -t "$IMAGE" . >"$BUILD_LOG" 2>&1 \
        || { tail -30 "$BUILD_LOG" >&2; fail "docker build failed (log: $BUILD_LOG)"; }
    BUILD_SECONDS=$((SECONDS - started))
    SIZE_MB=$(( $("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") / 1000000 ))
    say "build: $IMAGE in ${BUILD_SECONDS} s; image size ${SIZE_MB} MB (from $BASE_IMAGE)"
}

run_in_image() { "$DOCKER" run --rm --network host "$@"; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.5 s
    local deadline=$((SECONDS + $1)) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "$what: not within the time allowed"
        sleep 0.5
    done
}

# A port the container's gunicorn can listen on with --network host: below the kernel's ephemeral range (which any
# outgoing connection, of the test suite or Postgres clients, may take at any moment), and free when checked.
free_listen_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in random.sample(range(20000, min(low, 32768)), 200):
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit(1)
PY
}

health_status() { [[ $("$DOCKER" inspect -f '{{.State.Health.Status}}' "$CONTAINER") == "$1" ]]; }

checks() {
    DATABASE=ctrp3_docker_test_$$
    psql "$TEST_POSTGRES_URL" -qc "CREATE DATABASE $DATABASE" >/dev/null || fail "cannot create a database at $TEST_POSTGRES_URL"
    local url=${TEST_POSTGRES_URL%/*}/$DATABASE port
    port=$(free_listen_port) || fail "no free TCP port below the ephemeral range for the container"

    run_in_image -e DATABASE_URL="$url" "$IMAGE" python -m migrations >/dev/null || fail "release command failed"
    say "ok: release command (python -m migrations) applied the migrations"

    local role entries="" created
    declare -A key
    # The image's own key tool, in one container (each one costs a full copy of the image on vfs).
    created=$("$DOCKER" run --rm "$IMAGE" sh -c 'for role in officer analyst monitor; do
        python -m service.keys create --role "$role" --id "docker-$role"; done; python -m service.keys session-secret')
    local secret
    secret=$(tail -1 <<<"$created")
    ((${#secret} >= 32)) || fail "python -m service.keys session-secret printed no secret: $secret"
    for role in officer analyst monitor; do
        key[$role]=$(grep -o "^docker-$role\.[A-Za-z0-9_-]*\$" <<<"$created")
        entries+=${entries:+,}$(grep -o "^docker-$role:$role:[0-9a-f:]*\$" <<<"$created")
    done

    "$DOCKER" run -d --name "$CONTAINER" --network host -e PORT="$port" -e DATABASE_URL="$url" \
        -e API_KEYS="$entries" -e SESSION_SECRET="$secret" "$IMAGE" >/dev/null
    CONTAINER_STARTED=1
    wait_for 60 "/health 200" curl -fsS "http://127.0.0.1:$port/health"
    say "ok: /health 200: $(curl -fsS "http://127.0.0.1:$port/health")"

    local uid user
    uid=$("$DOCKER" exec "$CONTAINER" id -u)
    user=$("$DOCKER" inspect -f '{{.Config.User}}' "$CONTAINER")
    [[ $uid == 10001 && $user == app ]] || fail "runs as uid $uid (user '$user'), not app (10001)"
    say "ok: runs as user $user (uid $uid)"

    local answer
    answer=$(curl -fsS -H "Authorization: Bearer ${key[officer]}" -H 'Content-Type: application/json' \
        --data "{\"observation_id\": \"docker-test-1\", \"observation\": $(cat tests/fixtures/observation.json)}" \
        "http://127.0.0.1:$port/should_search") || fail "the officer's /should_search was not answered 200"
    grep -q '"should_search"' <<<"$answer" || fail "unexpected /should_search answer: $answer"
    say "ok: officer /should_search answered: $answer"

    local page charts
    page=$(curl -fsS -H "Authorization: Bearer ${key[analyst]}" "http://127.0.0.1:$port/report.html") \
        || fail "the analyst's /report.html was not answered 200"
    charts=$(grep -o 'data:image/png;base64' <<<"$page" | wc -l)
    ((charts > 0)) || fail "/report.html has no chart (matplotlib in the image cannot draw)"
    say "ok: analyst /report.html answered with $charts PNG chart(s)"

    local decisions
    decisions=$(curl -fsS -H "Authorization: Bearer ${key[monitor]}" "http://127.0.0.1:$port/metrics" \
        | grep '^ctrp3_decisions_total{' || true)
    [[ -n $decisions ]] || fail "/metrics (monitor key) does not count the decision"
    say "ok: monitor /metrics: $decisions"

    local started=$SECONDS
    wait_for 120 "HEALTHCHECK healthy" health_status healthy
    say "ok: HEALTHCHECK healthy ($((SECONDS - started)) s more after the checks above)"

    local stop_started exit_code elapsed
    stop_started=$(date +%s.%N)
    "$DOCKER" kill --signal TERM "$CONTAINER" >/dev/null
    exit_code=$(timeout 30 "$DOCKER" wait "$CONTAINER") || fail "still running 30 s after SIGTERM"
    elapsed=$(awk -v a="$stop_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    [[ $exit_code == 0 ]] || fail "exit code $exit_code after SIGTERM"
    awk -v e="$elapsed" 'BEGIN { exit !(e < 10) }' || fail "SIGTERM took ${elapsed} s (limit 10 s)"
    say "ok: SIGTERM: exited 0 in ${elapsed} s"
}

engine
base_image
build
checks
say "passed: image $IMAGE, ${SIZE_MB} MB, built in ${BUILD_SECONDS} s from $BASE_IMAGE"
