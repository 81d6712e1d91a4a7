"""Benchmark: what one chat message costs the API's CPU, normal ones vs the worst (not a test).

Starts `tastelens api` on a free loopback port twice — with the chat's bounds as configured
(``ChatConfig.max_fuzzy_titles``, ``max_message_tokens``, ``max_seeds``) and with them lifted
(the behaviour before they existed) — and sends each message as the first of a new
conversation, ``--repeats`` times, reading the server process's CPU time (user + system,
/proc) around each request. Prints per message the median CPU and wall time, and the ratio of
each worst-case message to the median normal one.

- normal: first messages as people write them ("something like Heat", "I love 90s Disney
  musicals", …);
- probe: the 3,989-character message of 266 "like qzNNN and" phrases that found the problem;
- crafted: "like X" phrases whose X makes a fuzzy title look-up cost the most.

    TASTELENS_CACHE_DIR=/tmp/tl-bench python bench/chat_amplification.py --data PATH \\
        [--repeats 5] [--json out.json]

The Chroma item index for the configured embedder must exist in the cache dir (`tastelens
index build`); other settings reach the server through the environment, as in
bench/api_load.py (e.g. ``TASTELENS_RECOMMEND__RERANK__MODE=none``). The LLM is a loopback
port nobody listens on, so the chat reads with its rules (an LLM server would add its own CPU,
elsewhere). On a shared machine the figures move with the load; the ratios less so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

NORMALS = ("something like Heat", "something like Heat but funnier",
           "I love 90s Disney musicals", "a funny space adventure", "no horror please")
WORST = {
    "probe": " ".join(f"like qz{i:03d} and" for i in range(266))[:4000],
    "crafted": " ".join(["like a an the of and in to", "like aeiou nrstl the an of"] * 80)[:4000],
}
UNBOUNDED = {"TASTELENS_CHAT__MAX_FUZZY_TITLES": "1000000",
             "TASTELENS_CHAT__MAX_MESSAGE_TOKENS": "1000000",
             "TASTELENS_CHAT__MAX_SEEDS": "1000000"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_api(args: argparse.Namespace, extra_env: dict[str, str]) -> tuple:
    port = free_port()
    env = {**os.environ, "TASTELENS_API__HOST": "127.0.0.1", "TASTELENS_LLM__BACKEND": "openai",
           "TASTELENS_LLM__BASE_URL": f"http://127.0.0.1:{free_port()}/v1", **extra_env}
    log = open(args.log_dir / f"chat-amplification-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen([str(Path(sys.executable).with_name("tastelens")), "api",
                                "--port", str(port), "--data", str(args.data)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        if process.poll() is not None:
            raise SystemExit(f"tastelens api exited with {process.returncode}; see {log.name}")
        if time.monotonic() > deadline:
            raise SystemExit("tastelens api was not healthy within 600 s")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.5)


def measure(args: argparse.Namespace, label: str, extra_env: dict[str, str]) -> dict:
    process, base = start_api(args, extra_env)
    rows: dict[str, dict[str, list[float]]] = {}
    try:
        with httpx.Client(base_url=base, timeout=600) as http:
            http.post("/v1/chat", json={"message": NORMALS[0]})  # warm-up (the vocabulary)

            def one(name: str, message: str) -> None:
                before, started = cpu_s(process.pid), time.perf_counter()
                reply = http.post("/v1/chat", json={"message": message})
                wall, cpu = time.perf_counter() - started, cpu_s(process.pid) - before
                reply.raise_for_status()
                row = rows.setdefault(name, {"cpu_s": [], "wall_s": []})
                row["cpu_s"].append(cpu)
                row["wall_s"].append(wall)

            for _ in range(args.repeats):
                for message in NORMALS:
                    one("normal", message)
                for name, message in WORST.items():
                    one(name, message)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    result = {"label": label, "messages": {}}
    normal = statistics.median(rows["normal"]["cpu_s"])
    for name, row in rows.items():
        cpu = statistics.median(row["cpu_s"])
        result["messages"][name] = {
            "n": len(row["cpu_s"]), "cpu_ms": round(cpu * 1000, 1),
            "wall_ms": round(statistics.median(row["wall_s"]) * 1000, 1),
            "x_normal": round(cpu / normal, 2) if normal > 0 else None}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ml-latest-small"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    results = [measure(args, "bounded (defaults)", {}),
               measure(args, "unbounded (before)", UNBOUNDED)]
    for result in results:
        print(f"\n== {result['label']}")
        print(f"{'message':<10}{'n':>4}{'CPU ms':>10}{'wall ms':>10}{'x normal':>10}")
        for name, row in result["messages"].items():
            print(f"{name:<10}{row['n']:>4}{row['cpu_ms']:>10.1f}{row['wall_ms']:>10.1f}"
                  f"{row['x_normal']:>10.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
