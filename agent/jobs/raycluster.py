"""Joining a Ray cluster for a batch job (`profile build --engine ray`, `recommend --all`).

``address`` is a running cluster's ``HOST:PORT`` (what ``ray start --head`` prints; the
GCS port, 6379 by default) or ``auto`` (the cluster this machine belongs to); ``None``
starts a Ray instance inside the job with ``num_cpus`` CPUs, stopped at the end. An address
nobody answers at fails in seconds with :class:`RayClusterError` instead of Ray's minute of
retries. Ray's progress bars and worker logs are kept off the terminal: the job shows its
own progress.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from tastelens.errors import TastelensError


class RayClusterError(TastelensError):
    """No Ray cluster at the given address, or Ray is not installed."""


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (optionally ``ray://``-less) → (host, port), or RayClusterError."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayClusterError(
            f"--address {address!r}: expected HOST:PORT of a Ray head node (the address "
            "`ray start --head` prints, e.g. 10.0.0.5:6379) or 'auto'")
    return host, int(port)


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Raise :class:`RayClusterError` unless something accepts connections at ``address``."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as exc:
        raise RayClusterError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start "
            "one with `ray start --head --port PORT` or omit --address to run Ray locally")\
            from None


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Connect to (or start) Ray for the duration of the block."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise RayClusterError(f"--engine ray needs Ray Data: pip install 'ray[data]' ({exc})") \
            from None
    if address and address != "auto":
        check_reachable(address)
    # Ray reads these when it starts; quieter output, and no usage report leaves the machine.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus,
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=True)
    except ConnectionError as exc:
        raise RayClusterError(f"--address {address}: cannot join the Ray cluster: {exc}") \
            from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()
