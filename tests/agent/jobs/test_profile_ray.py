"""The profile job on Ray Data, on a local two-node Ray cluster over loopback (scripted fake
LLM in the workers): same results and summary as the single-process job, skips and
recomputes the same users, and a worker killed mid-job loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tastelens.agent.jobs.profile_job import run_profile_job
from tastelens.agent.jobs.raycluster import RayClusterError, parse_address, ray_session
from tastelens.config.pipeline import ProfilerConfig
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.llm.fake import FakeBackend
from tastelens.llm.vllm_server import free_port
from tastelens.profile_store import ProfileStore

from . import test_profile_job
from .test_profile_job import grounded_reply

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration  # starts a Ray cluster (seconds)

CONFIG = ProfilerConfig(concurrency=4, batch_size=4)


class FakeFactory:
    """Builds each worker's backend: the grounded fake, which (when ``kill_marker`` is set)
    SIGKILLs its own worker process at its ``kill_after``-th request, once per test."""

    def __init__(self, kill_marker: Path | None = None, kill_after: int = 0) -> None:
        self.kill_marker, self.kill_after = kill_marker, kill_after

    def __call__(self) -> FakeBackend:
        count = [0]

        def reply(request):  # noqa: ANN001, ANN202
            count[0] += 1
            if (self.kill_marker is not None and count[0] == self.kill_after
                    and not self.kill_marker.exists()):
                self.kill_marker.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.02)
            return grounded_reply(request)

        return FakeBackend(responder=reply)


@pytest.fixture(scope="module")
def connected(ray_cluster):  # noqa: ANN001, ANN201
    # The workers cannot import the test modules: ship their code by value.
    conftest = sys.modules[test_profile_job.grounded_profile_reply.__module__]
    for module in (sys.modules[__name__], test_profile_job, conftest):
        ray.cloudpickle.register_pickle_by_value(module)
    with ray_session(ray_cluster.address):
        yield ray_cluster


def spec(factory: FakeFactory):  # noqa: ANN201
    from tastelens.agent.jobs.ray_profile import ProfilerSpec

    return ProfilerSpec(Settings(), CONFIG, backend_factory=factory)


def versions(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT user, COUNT(*) FROM profiles GROUP BY user"))


def comparable(summary) -> dict:  # noqa: ANN001
    return summary.model_dump(exclude={"seconds"})


@pytest.mark.slow  # minutes: `make test-all` runs it, CI's `make test` does not
def test_ray_job_equals_the_single_process_job(connected, tiny_dataset, tmp_path):  # noqa: ANN001
    from tastelens.agent.jobs.ray_profile import run_profile_job_ray

    users = tiny_dataset.user_ids[:12]
    with ProfileStore(tmp_path / "local.sqlite") as store:
        # The same Profiler the workers build (renderer_for_settings: the model's tokenizer).
        local = run_profile_job(tiny_dataset, spec(FakeFactory()).profiler(FakeFactory()()),
                                store, users)
        local_rows = {u: store.get(u).profile_json for u in users}
    seen = []
    with ProfileStore(tmp_path / "ray.sqlite") as store:
        remote = run_profile_job_ray(tiny_dataset, spec(FakeFactory()), store, users,
                                     workers=2, batch_size=3, write_batch=5,
                                     on_profile=lambda p, d: seen.append(p.user))
        assert comparable(remote) == comparable(local)
        assert remote.attempted == 12 and remote.profiled_llm == 12
        assert sorted(seen) == sorted(users)
        for u in users:  # the same profile, but for its creation time
            a = store.get(u).profile_json.split('"created_at"')[0]
            assert a == local_rows[u].split('"created_at"')[0]

        again = run_profile_job_ray(tiny_dataset, spec(FakeFactory()), store, users)
        assert (again.attempted, again.skipped_current) == (0, 12)

        extra = pd.DataFrame([{"user": users[3], "item": "40", "rating": 5.0,
                               "timestamp": 9_999_999_999}])
        changed = Dataset(name=tiny_dataset.name, items=tiny_dataset.items,
                          interactions=pd.concat([tiny_dataset.interactions, extra],
                                                 ignore_index=True))
        third = run_profile_job_ray(changed, spec(FakeFactory()), store, users)
        assert (third.attempted, third.skipped_current) == (1, 11)
    counts = versions(tmp_path / "ray.sqlite")
    assert counts.pop(users[3]) == 2 and set(counts.values()) == {1}


@pytest.mark.slow  # minutes: `make test-all` runs it, CI's `make test` does not
def test_a_killed_worker_loses_and_duplicates_nothing(connected, tiny_dataset, tmp_path):  # noqa: ANN001
    from tastelens.agent.jobs.ray_profile import run_profile_job_ray

    users = tiny_dataset.user_ids[:16]
    marker = tmp_path / "killed"
    with ProfileStore(tmp_path / "p.sqlite") as store:
        summary = run_profile_job_ray(
            tiny_dataset, spec(FakeFactory(marker, kill_after=6)), store, users,
            workers=2, batch_size=4, write_batch=4)
    assert marker.exists()  # a worker really died mid-batch (its 6th request)
    assert summary.attempted == 16 and summary.profiled_llm == 16
    assert versions(tmp_path / "p.sqlite") == dict.fromkeys(users, 1)


def test_unknown_addresses_fail_fast_with_the_address():
    with pytest.raises(RayClusterError, match="HOST:PORT"):
        parse_address("nonsense")
    port = free_port()
    started = time.monotonic()
    with pytest.raises(RayClusterError, match=f"127.0.0.1:{port}: no Ray cluster answers"):
        with ray_session(f"127.0.0.1:{port}"):
            pass
    assert time.monotonic() - started < 10


@pytest.mark.slow  # minutes: `make test-all` runs it, CI's `make test` does not
def test_ray_job_with_the_real_vllm_server(connected, vllm_server, llm_settings, tiny_dataset,  # noqa: ANN001
                                           tmp_path):
    """Workers call the real server through the 'replicas' backend (twice the same server
    under two names, so both replicas get requests): guided JSON, validation, the store."""
    from tastelens.agent.jobs.ray_profile import ProfilerSpec, run_profile_job_ray
    from tastelens.llm.replicas import ReplicaBackend

    urls = [vllm_server.base_url, vllm_server.base_url.replace("127.0.0.1", "localhost")]
    llm = llm_settings.llm.model_copy(update={"backend": "replicas", "replicas": urls})
    settings = llm_settings.model_copy(update={"llm": llm})
    with ReplicaBackend.from_settings(settings) as probe:
        assert probe.check() == [vllm_server.served_name]
    users = tiny_dataset.user_ids[:2]  # short replies: seconds of CPU decoding, not minutes
    spec = ProfilerSpec(settings, ProfilerConfig(concurrency=2, max_tokens=96))
    with ProfileStore(tmp_path / "p.sqlite") as store:
        summary = run_profile_job_ray(tiny_dataset, spec, store, users, workers=2,
                                      batch_size=1, write_batch=2)
        assert summary.attempted == 2 == summary.profiled_llm + summary.fallbacks
        assert summary.request_errors == 0
        assert summary.prompt_tokens > 0 and summary.completion_tokens > 0
        stored = store.get(users[0])
        assert stored.key.model == vllm_server.served_name
    assert versions(tmp_path / "p.sqlite") == dict.fromkeys(users, 1)


DRIVER = '''
import sys, time
from pathlib import Path

import ray

from tastelens.agent.jobs.ray_profile import ProfilerSpec, run_profile_job_ray
from tastelens.data import load_dataset
from tastelens.llm.fake import FakeBackend
from tastelens.config.pipeline import ProfilerConfig
from tastelens.profile_store import ProfileStore
from tastelens.agent.jobs.raycluster import ray_session
from tastelens.config.settings import Settings

address, data, store_path, tests = sys.argv[1:5]
sys.path.insert(0, tests)
import conftest  # noqa: E402
ray.cloudpickle.register_pickle_by_value(conftest)

def slow_reply(request):
    time.sleep(0.1)
    return conftest.grounded_profile_reply(request)

class Factory:
    def __call__(self):
        return FakeBackend(responder=slow_reply)

dataset = load_dataset(Path(data))
with ray_session(address), ProfileStore(Path(store_path)) as store:
    run_profile_job_ray(dataset, ProfilerSpec(Settings(), ProfilerConfig(concurrency=1,
                        batch_size=2), backend_factory=Factory()), store,
                        dataset.user_ids[:12], workers=1, batch_size=2, write_batch=2)
'''


@pytest.mark.slow  # minutes: `make test-all` runs it, CI's `make test` does not
def test_a_killed_driver_loses_no_stored_profile_and_the_rerun_skips_them(  # noqa: ANN001
        connected, tiny_dataset, tmp_path):
    import subprocess

    from tastelens.agent.jobs.ray_profile import run_profile_job_ray
    from tastelens.data import load_dataset

    from ...conftest import write_movielens

    folder = write_movielens(tiny_dataset, tmp_path / "ml")
    (tmp_path / "driver.py").write_text(DRIVER)
    path = tmp_path / "p.sqlite"
    tests = Path(__file__).resolve().parents[2]
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), connected.address,
                               str(folder), str(path), str(tests)], stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "driver.log", "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 120
    stored: dict[str, int] = {}
    while time.monotonic() < deadline and len(stored) < 2:
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.5)
        stored = versions(path) if path.exists() else {}
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    stored = versions(path)
    assert 2 <= len(stored) < 12 and set(stored.values()) == {1}  # killed mid-job
    dataset = load_dataset(folder)
    users = dataset.user_ids[:12]
    with ProfileStore(path) as store:
        rerun = run_profile_job_ray(dataset, spec(FakeFactory()), store, users, workers=2,
                                    batch_size=6)
    assert rerun.skipped_current == len(stored) and rerun.attempted == 12 - len(stored)
    assert versions(path) == dict.fromkeys(users, 1)
