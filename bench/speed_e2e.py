"""End-to-end rounds over HTTP: several gunicorn servers up at once, driven in turn, so drift hits all alike.

Every server runs the project's gunicorn.conf.py (plus the same overrides for a pair being compared); each round
drives one server for a fixed time while the others sit idle, and the order rotates from round to round.
"""
from __future__ import annotations

import contextlib
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.servers import ApiKey, GunicornSettings, gunicorn, log, workers_cpu_s
from bench.service_load import LoadResult, run_python, run_wrk


@dataclass(frozen=True)
class Server:
    """One app under one gunicorn setting; ``key`` names it in results (e.g. 'service', 'minimal/sync w2')."""

    key: str
    app_spec: str
    settings: GunicornSettings
    database_url: str | None = None  # its own database, else the one all servers share


@dataclass(frozen=True)
class Load:
    """How every round is driven: client, seconds, connections, extra request headers."""

    client: str
    seconds: float
    headers: dict

    def drive(self, port: int, connections: int, observations: list[str], prefix: str,
              work_dir: Path) -> LoadResult:
        """One timed run against the server on port."""
        if self.client == "wrk":
            return run_wrk(port, observations, self.seconds, connections, prefix, work_dir, self.headers)
        return run_python(port, observations, self.seconds, connections, prefix, self.headers)


@contextlib.contextmanager
def serving(servers: list[Server], database_url: str, log_path: Path, api_key: ApiKey | None):
    """Start every server (each on its own port); yields {key: port}; stops them all on exit."""
    with contextlib.ExitStack() as stack:
        ports = {}
        for server in servers:
            log(f"starting {server.key} ({server.settings.label()}) ...")
            ports[server.key] = stack.enter_context(
                gunicorn(server.app_spec, server.database_url or database_url, server.settings, log_path, api_key))
        yield ports


def result_dict(result: LoadResult) -> dict:
    """A LoadResult for the JSON file: everything but the answered ids, plus req/s."""
    fields = {k: v for k, v in asdict(result).items() if k != "ok_ids"}
    return {**fields, "rps": result.rps}


class Rounds:
    """Drives servers in rotating order and keeps every result; ok_ids collects the ids answered 200."""

    def __init__(self, ports: dict[str, int], load: Load, observations: list[str], work_dir: Path):
        self.ports, self.load, self.observations, self.work_dir = ports, load, observations, work_dir
        self.ok_ids: dict[str, list[str]] = {key: [] for key in ports}
        self.runs = 0

    def _one(self, key: str, connections: int, seconds: float | None = None) -> LoadResult:
        self.runs += 1
        load = self.load if seconds is None else Load(self.load.client, seconds, self.load.headers)
        cpu_before = workers_cpu_s(self.ports[key])
        result = load.drive(self.ports[key], connections, self.observations, f"r{self.runs}",
                            self.work_dir)
        cpu = workers_cpu_s(self.ports[key]) - cpu_before
        result = replace(result, worker_cpu_us=cpu / result.responses * 1e6 if result.responses else None)
        self.ok_ids[key] += result.ok_ids
        return result

    def warm_up(self, connections: int, seconds: float = 2) -> None:
        """A short unrecorded run per server: first requests pay for lazy imports and first connections."""
        for key in self.ports:
            self._one(key, connections, seconds)

    def measure(self, keys: list[str], connections: int, rounds: int, group: int = 1) -> dict[str, list[LoadResult]]:
        """`rounds` runs of each key at `connections`.

        Keys go in groups of `group` (a setting's service and minimal app) that stay adjacent; the groups' order
        shifts by an equal share each round, and within a group the order alternates, so no key always runs first,
        last, or right after the same neighbour.
        """
        groups = [keys[i:i + group] for i in range(0, len(keys), group)]
        step = max(1, len(groups) // rounds)
        results = {key: [] for key in keys}
        for r in range(rounds):
            shift = (r * step) % len(groups)
            for members in groups[shift:] + groups[:shift]:
                for key in (members if r % 2 == 0 else members[::-1]):
                    result = self._one(key, connections)
                    log(f"  round {r + 1}/{rounds} {key:<28} c={connections}: {result.rps:8.1f} req/s, "
                        f"p50 {result.p50_ms:6.2f} ms, p99 {result.p99_ms:7.2f} ms, "
                        f"non-200 {result.other_statuses}, errors {result.socket_errors}, "
                        f"worker CPU {result.worker_cpu_us or 0:6.0f} µs/req")
                    results[key].append(result)
        return results


def median_round(results: list[LoadResult]) -> dict:
    """The round with the median req/s (its own p50 and p99), plus every round for the record."""
    ordered = sorted(results, key=lambda r: r.rps)
    middle = ordered[(len(ordered) - 1) // 2]
    cpu = [r.worker_cpu_us for r in results if r.worker_cpu_us is not None]
    return {**result_dict(middle), "rps_rounds": [r.rps for r in results],
            "worker_cpu_us_median": statistics.median(cpu) if cpu else None,
            "rps_spread": (max(r.rps for r in results) - min(r.rps for r in results)) / statistics.median(
                [r.rps for r in results]) if middle.rps else None,
            "rounds": [result_dict(r) for r in results]}
