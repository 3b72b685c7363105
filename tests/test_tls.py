"""TLS (issue 12 item 2): the certificate made at run time, every stack serving wss:// and
https:// verified against it, the ``tls`` scenario dimension, and a short TLS cell end to
end through the runner and our Python clients.

One server per stack (a handful of seconds each at most) and one runner cell: the whole
file stays well under the 20 s budget on a quiet machine.
"""

from __future__ import annotations

import asyncio
import csv
import http.client
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ServerProcess, serving

from pushbench import scenario, tls
from pushbench.scenario import ScenarioError
from pushbench.wire import Connection, Role
from pushbench.wire.handshake import check_response, client_request, find_head_end, parse_response

pytestmark = pytest.mark.skipif(tls.openssl() is None, reason=tls.OPENSSL_MISSING)

STACKS = ("raw", "aiohttp", "starlette")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tls.TlsFiles:
    return tls.generate(tmp_path_factory.mktemp("tls"))


# --- the certificate ------------------------------------------------------------------------


def test_generate_makes_a_ca_and_a_leaf_for_loopback(files: tls.TlsFiles) -> None:
    assert files.exist()
    assert not (files.ca.parent / "ca.key").exists()  # the CA signs nothing more
    assert tls.generate(files.ca.parent) == files  # made once per directory
    leaf = ssl._ssl._test_decode_cert(str(files.cert))  # type: ignore[attr-defined]
    names = {value for _, value in leaf["subjectAltName"]}
    assert {"127.0.0.1", "localhost"} <= names


def _publish(server: ServerProcess, context: ssl.SSLContext, topic: str) -> None:
    req = urllib.request.Request(
        server.url(f"/publish?topic={topic}", "https"), data=b"hello-tls", method="POST"
    )
    with urllib.request.urlopen(req, timeout=5, context=context) as resp:
        assert resp.status == 200


async def _wss_one_message(server: ServerProcess, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        server.host, server.port, ssl=context, server_hostname=server.host
    )
    try:
        request, key = client_request(f"{server.host}:{server.port}", "/ws?topic=tls")
        writer.write(request)
        buf = b""
        while (end := find_head_end(buf)) < 0:
            buf += await reader.read(4096)
        check_response(parse_response(buf[:end]), key)  # the 101, over TLS
        await asyncio.to_thread(_publish, server, context, "tls")
        ws = Connection(Role.CLIENT)
        payloads = ws.receive_payloads(buf[end:])
        while not payloads:
            payloads = ws.receive_payloads(await reader.read(4096))
        return bytes(payloads[0])
    finally:
        writer.close()


async def _sse_one_event(server: ServerProcess, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection(
        server.host, server.port, ssl=context, server_hostname=server.host
    )
    try:
        writer.write(
            b"GET /sse?topic=tlssse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += await reader.read(4096)
        assert buf.startswith(b"HTTP/1.1 200")
        await asyncio.to_thread(_publish, server, context, "tlssse")
        while b"hello-tls" not in buf:
            buf += await reader.read(4096)
        return buf
    finally:
        writer.close()


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_serves_wss_and_https_verified(
    stack: str, files: tls.TlsFiles, tmp_path: Path
) -> None:
    args = ("--tls-cert", str(files.cert), "--tls-key", str(files.key))
    context = tls.client_context(files.ca)
    with serving(tmp_path / "server.stderr", *args, stack=stack) as server:
        message = asyncio.run(asyncio.wait_for(_wss_one_message(server, context), 10))
        assert json.loads(message)["p"] == "hello-tls"
        assert b"data:" in asyncio.run(asyncio.wait_for(_sse_one_event(server, context), 10))
        # verified, not trusted blindly: a context without the run's CA refuses it
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(server.url("/health", "https"), timeout=5)
        # and plaintext is not served on that port
        with pytest.raises((OSError, http.client.HTTPException)):
            urllib.request.urlopen(server.url("/health"), timeout=5)


def test_the_light_publisher_posts_over_verified_tls(files: tls.TlsFiles, tmp_path: Path) -> None:
    """A chat cell's light HTTP publisher (``clients/publisher.py``) over https://: the
    publishes reach the hub with their scheduled times, on one verified connection whose
    bytes (the TLS handshake included: there is no other) are metered."""
    from pushbench.clients.common import ConnStats
    from pushbench.clients.publisher import LightPublisher
    from pushbench.schema.worker import WorkerSpec

    args = ("--tls-cert", str(files.cert), "--tls-key", str(files.key))
    context = tls.client_context(files.ca)

    async def publish(server: ServerProcess) -> ConnStats:
        spec = WorkerSpec.from_dict(
            {
                "transport": "sse",
                "base_url": server.url("", "https"),
                "ca_file": str(files.ca),
                "topic": "tlspub",
                "connections": 1,
                "capacity": 10,
                "publish": {"rate": 10.0, "payload_size": 5},
            }
        )
        stats = ConnStats(0)
        netloc = f"{server.host}:{server.port}"
        pub = LightPublisher(spec, stats, server.host, server.port, netloc, context, b"p-tls")
        try:
            for due in (1_000, 2_000, 3_000):
                await pub.publish(due)
            assert len(pub.connections) == 1
        finally:
            pub.close()
        return stats

    with serving(tmp_path / "server.stderr", *args, stack="aiohttp") as server:
        stats = asyncio.run(asyncio.wait_for(publish(server), 10))
        with urllib.request.urlopen(
            server.url("/poll?topic=tlspub&since=0&timeout=0", "https"), timeout=5, context=context
        ) as resp:
            answer = json.loads(resp.read())
    assert [(m["p"], m["sch"]) for m in answer["messages"]] == [
        ("p-tls", 1_000), ("p-tls", 2_000), ("p-tls", 3_000)
    ]  # fmt: skip
    assert stats.sockets_metered == 1 and stats.bytes_out > 3 * len(b"p-tls")


def test_serve_refuses_half_a_certificate(files: tls.TlsFiles, tmp_path: Path) -> None:
    log = tmp_path / "server.stderr"
    with (
        pytest.raises(RuntimeError, match="--tls-key: needed with the other"),
        serving(log, "--tls-cert", str(files.cert)),
    ):
        pass


# --- the scenario dimension -----------------------------------------------------------------

BASE = """
name = "t"
stacks = "aiohttp"
transports = ["ws"]
subscribers = 2
rate = 50
"""


def _load(tmp_path: Path, extra: str) -> scenario.Scenario:
    path = tmp_path / "t.toml"
    path.write_text(BASE + extra)
    return scenario.load(path)


def test_tls_is_a_dimension_that_leaves_plaintext_ids_alone(tmp_path: Path) -> None:
    plain, on = _load(tmp_path, "tls = [false, true]\n").cells()
    assert plain.cell_id == "aiohttp-ws-sub2-rate50-p100"  # as before the dimension existed
    assert (plain.tls, on.tls) == (False, True)
    assert on.cell_id == "aiohttp-ws-sub2-rate50-p100-tls"
    assert on.plaintext_id == plain.cell_id and plain.plaintext_id == ""
    assert on.param_columns()["tls"] is True
    assert _load(tmp_path, "").cells()[0].tls is False


def test_tls_takes_booleans_only(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="true or false"):
        _load(tmp_path, 'tls = "yes"\n')


def test_the_bundled_tls_scenario_pairs_every_cell(tmp_path: Path) -> None:
    cells = scenario.load("tls").cells()
    ids = {c.cell_id for c in cells}
    assert {c.transport for c in cells} == {"ws", "sse", "longpoll"}
    assert all(c.plaintext_id in ids for c in cells if c.tls)
    assert sum(c.tls for c in cells) == len(cells) // 2


# --- end to end ------------------------------------------------------------------------------

TINY_TLS = """
name = "tinytls"
stacks = "raw"
transports = ["ws"]
tls = true
subscribers = 3
rate = 50
payload_size = 32
heartbeat_s = 1
duration_s = 1
warmup_s = 0.3
repeats = 1
client_processes = 1
"""


def test_a_tls_cell_delivers_everything_and_times_its_handshake(tmp_path: Path) -> None:
    from pushbench import runner

    path = tmp_path / "tinytls.toml"
    path.write_text(TINY_TLS)
    options = runner.RunOptions(out=tmp_path / "results", progress=False)
    run_dir = runner.run_scenario(scenario.load(path), options).run_dir
    (row,) = csv.DictReader((run_dir / "cells.csv").open())
    assert row["status"] == "ok", row["reason"]
    assert row["tls"] == "True" and row["cell_id"].endswith("-tls")
    assert float(row["delivered_fraction"]) == 1.0
    assert float(row["tls_handshake_p50_us"]) > 0 and float(row["tcp_connect_p50_us"]) > 0
    assert float(row["connect_p50_us"]) > float(row["tls_handshake_p50_us"])
    assert (run_dir / "tls" / "ca.pem").is_file()
    spec = json.loads(next((run_dir / "work").glob("*/worker0.spec.json")).read_text())
    assert spec["base_url"].startswith("https://") and spec["ca_file"].endswith("ca.pem")


def test_generate_in_a_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out results` (the default) makes the run directory relative; openssl runs inside
    it, so the files must be named absolutely (every TLS cell of a default run failed)."""
    if tls.openssl() is None:
        pytest.skip("openssl is missing: run `make system-deps`")
    monkeypatch.chdir(tmp_path)
    files = tls.generate(Path("results/run/tls"))
    assert files.ca.is_absolute() and files.exist()
    assert files.cert.parent == tmp_path / "results/run/tls"
