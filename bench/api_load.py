"""Benchmark: the HTTP API under load with its LLM up, down and hung (not a test).

For each LLM state it starts `tastelens api` on a free loopback port (with an API key), runs
``--clients`` concurrent clients for ``--seconds`` (each loops over recommend 60 %, chat 20 %,
profile 10 %, health 10 %), polls /health on its own connection every 50 ms meanwhile, then
stops the server and prints, per route: requests, errors (status codes and exceptions), p50 /
p95 / p99 latency; the re-rank fallback reasons seen; and the server's RSS before and after.

LLM states:

- ``up``: the OpenAI-compatible server at ``--llm-url`` (e.g. `tastelens serve --port 8190`:
  ``--llm-url http://127.0.0.1:8190/v1``), backend 'vllm';
- ``down``: a loopback port nobody listens on (connections refused);
- ``hung``: a loopback socket, opened here, that accepts connections and never answers.

    TASTELENS_CACHE_DIR=/tmp/tl-bench python bench/api_load.py --data PATH \\
        [--states down,hung,up --llm-url http://127.0.0.1:8190/v1] [--clients 32]
        [--seconds 30] [--deadline 30] [--json out.json] [--results bench/results/api-load.md]

It only ever talks to loopback: the API, the LLM URL and the hung socket must be on
127.0.0.1 / ::1 / localhost (anything else is refused). The Chroma item index must exist in
the cache dir (`tastelens index build`), and so must what the configured pipeline serves with
(the learned ranker: `tastelens rank train`); other settings reach the server through the
environment, e.g. ``TASTELENS_RECOMMEND__RERANK__MODE=score
TASTELENS_RECOMMEND__COLLABORATIVE__ENABLED=false`` for the LLM re-ranker alone, as measured
in bench/results/api-load.md. On a shared machine the latencies are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

from tastelens.benchresults import add_results_option, markdown_table, write_results

KEY = "bench-key-0123456789abcdef"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
ROUTES = (("recommend", 0.6), ("chat", 0.2), ("profile", 0.1), ("health", 0.1))
CHAT_LINES = ("something like Heat but funnier", "no horror", "more recent ones",
              "show me more", "why the second one?")


def loopback_only(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"refusing {url}: this benchmark only talks to loopback hosts")
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HungServer:
    """Accepts connections on loopback and never reads or answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_api(args: argparse.Namespace, llm_env: dict[str, str], port: int,
              ) -> subprocess.Popen[str]:
    env = {**os.environ, **llm_env, "TASTELENS_API__HOST": "127.0.0.1",
           "TASTELENS_API__API_KEY": KEY,
           "TASTELENS_LLM__INTERACTIVE_DEADLINE_S": str(args.deadline)}
    tastelens = str(Path(sys.executable).with_name("tastelens"))
    log = open(args.log_dir / f"api-{port}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([tastelens, "api", "--port", str(port), "--data", str(args.data)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def wait_healthy(base: str, process: subprocess.Popen[str], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"tastelens api exited with {process.returncode}; see its log")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"tastelens api was not healthy within {timeout_s:g} s")


async def load(base: str, users: list[str], clients: int, seconds: float, seed: int,
               ) -> tuple[dict[str, list[float]], dict[str, Counter], Counter]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    headers = {"Authorization": f"Bearer {KEY}"}

    async def timed(http: httpx.AsyncClient, route: str, method: str, path: str,
                    **kw: object) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            reply = await http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            errors[route][type(exc).__name__] += 1
            return None
        latencies[route].append(time.perf_counter() - started)
        if reply.status_code >= 400:
            errors[route][str(reply.status_code)] += 1
        return reply

    async def client(i: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + i)
        session: str | None = None
        while time.monotonic() < end:
            route = rng.choices([r for r, _ in ROUTES], [w for _, w in ROUTES])[0]
            user = rng.choice(users)
            if route == "recommend":
                reply = await timed(http, route, "POST", "/v1/recommend",
                                    json={"user": user, "k": 10})
                if reply is not None and reply.status_code == 200:
                    report = reply.json()["report"]
                    reasons[report["rerank_fallback_reason"] or "none"] += 1
            elif route == "chat":
                body = {"message": rng.choice(CHAT_LINES)}
                body.update({"session_id": session} if session else {"user": user})
                reply = await timed(http, route, "POST", "/v1/chat", json=body)
                session = reply.json()["session_id"] if reply is not None and \
                    reply.status_code == 200 else None
            elif route == "profile":
                await timed(http, route, "GET", f"/v1/users/{user}/profile")
            else:
                await timed(http, route, "GET", "/health")

    async def poll_health(http: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            await timed(http, "health (poll)", "GET", "/health")
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120,
                                 limits=limits) as http, \
            httpx.AsyncClient(base_url=base, timeout=120) as poller:
        await asyncio.gather(poll_health(poller), *(client(i, http) for i in range(clients)))
    return latencies, errors, reasons


def summary(latencies: dict[str, list[float]], errors: dict[str, Counter]) -> dict:
    out = {}
    for route in sorted(set(latencies) | set(errors)):
        values = np.asarray(latencies.get(route, []), dtype=float) * 1000
        q = (dict(zip(("p50_ms", "p95_ms", "p99_ms"),
                      (round(float(x), 1) for x in np.percentile(values, [50, 95, 99]))))
             if values.size else {})
        out[route] = {"answered": int(values.size), "errors": dict(errors.get(route, {})), **q}
    return out


def run_state(args: argparse.Namespace, state: str, users: list[str]) -> dict:
    hung = HungServer() if state == "hung" else None
    if state == "up":
        llm_env = {"TASTELENS_LLM__BACKEND": "vllm",
                   "TASTELENS_LLM__BASE_URL": loopback_only(args.llm_url)}
    else:
        url = hung.url if hung else f"http://127.0.0.1:{free_port()}/v1"
        llm_env = {"TASTELENS_LLM__BACKEND": "openai", "TASTELENS_LLM__BASE_URL": url}
    port = free_port()
    base = loopback_only(f"http://127.0.0.1:{port}")
    process = start_api(args, llm_env, port)
    try:
        wait_healthy(base, process)
        before = rss_mib(process.pid)
        latencies, errors, reasons = asyncio.run(
            load(base, users, args.clients, args.seconds, args.seed))
        after = rss_mib(process.pid)
        health = httpx.get(f"{base}/health", timeout=10).json()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        if hung:
            hung.close()
    return {"state": state, "clients": args.clients, "seconds": args.seconds,
            "deadline_s": args.deadline, "rss_mib_before": round(before, 1),
            "rss_mib_after": round(after, 1), "routes": summary(latencies, errors),
            "rerank_fallback_reasons": dict(reasons),
            "breaker_after": (health.get("llm") or {}).get("breaker", {}).get("state")}


def print_result(result: dict) -> None:
    print(f"\n== LLM {result['state']}: {result['clients']} clients, {result['seconds']:g} s, "
          f"deadline {result['deadline_s']:g} s; server RSS {result['rss_mib_before']:.0f} -> "
          f"{result['rss_mib_after']:.0f} MiB; breaker after: {result['breaker_after']}")
    print(f"{'route':<15}{'answered':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}  errors")
    for route, row in result["routes"].items():
        print(f"{route:<15}{row['answered']:>9}{row.get('p50_ms', float('nan')):>10.1f}"
              f"{row.get('p95_ms', float('nan')):>10.1f}{row.get('p99_ms', float('nan')):>10.1f}"
              f"  {row['errors'] or 0}")
    print(f"re-rank fallback reasons: {result['rerank_fallback_reasons']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-latest-small"))
    parser.add_argument("--states", default="down,hung",
                        help="Comma-separated: up, down, hung (up needs --llm-url).")
    parser.add_argument("--llm-url", help="A running OpenAI-compatible server on loopback.")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--deadline", type=float, default=30.0,
                        help="llm.interactive_deadline_s of the server.")
    parser.add_argument("--users", type=int, default=100, help="Distinct users asked for.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    add_results_option(parser, "bench/results/api-load.md")
    args = parser.parse_args()
    states = [s.strip() for s in args.states.split(",") if s.strip()]
    if not set(states) <= {"up", "down", "hung"}:
        parser.error("--states takes up, down and hung")
    if "up" in states and not args.llm_url:
        parser.error("--states up needs --llm-url (a running `tastelens serve`)")
    ratings = args.data / "ratings.csv"
    ids = sorted({line.split(",", 1)[0] for line in ratings.read_text().splitlines()[1:]},
                 key=int) if ratings.is_file() else [str(i) for i in range(1, 31)]
    users = random.Random(args.seed).sample(ids, min(args.users, len(ids)))
    results = []
    for state in states:
        results.append(run_state(args, state, users))
        print_result(results[-1])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.results:
        rows = [{"LLM": r["state"], "route": route, "answered": row["answered"],
                 **{f"p{q} ms": round(row[f"p{q}_ms"], 1) for q in (50, 95, 99)
                    if f"p{q}_ms" in row},
                 "errors": str(row["errors"] or 0), "RSS MiB before → after":
                     f"{r['rss_mib_before']:.0f} → {r['rss_mib_after']:.0f}"}
                for r in results for route, row in r["routes"].items()]
        fallbacks = "; ".join(f"{r['state']}: {r['rerank_fallback_reasons']}" for r in results)
        write_results(args.results, "api_load", title="The HTTP API under load",
                      table=markdown_table(rows),
                      notes=f"{args.clients} clients for {args.seconds:g} s per LLM state, "
                            f"interactive deadline {args.deadline:g} s; re-rank fallback "
                            f"reasons: {fallbacks}.")


if __name__ == "__main__":
    main()
