"""TLS end to end behind a proxy (h42, issue 12 item 2: ``tls_at = "end-to-end"``): the
scenario key (its default leaves every id as it was, it collapses where it means nothing,
a naive config is refused naming it), each good config's upstream as generated (TLS to
the server, verified against the run's CA for ``localhost``; no process), and one short
cell through each proxy: every message delivered over https:// / wss:// to the proxy and
TLS again from the proxy to a server that refuses plain HTTP, ``tls_at = end-to-end`` in
the row.

A proxy whose binary is missing skips the end-to-end test with a message naming
``make system-deps``, unless CI is set: then it fails (as ``tests/test_proxy_tls.py``).
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pushbench import procs, proxies, registry, scenario, tls
from pushbench.report.load import load_run, point_label
from pushbench.runner import server as runner_server

pytestmark = pytest.mark.skipif(tls.openssl() is None, reason=tls.OPENSSL_MISSING)

UPSTREAM = "127.0.0.1:9000"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tls.TlsFiles:
    return tls.generate(tmp_path_factory.mktemp("tls"))


def _plan(via: str, workdir: Path, files: tls.TlsFiles, *, e2e: bool = True) -> str:
    found = proxies.plan(
        via,
        "/usr/sbin/proxy",
        workdir,
        "127.0.0.1",
        8443,
        UPSTREAM,
        4,
        tls=(files.cert, files.key),
        upstream_ca=files.ca if e2e else None,
    )
    return found.config_path.read_text()


# --- each good config's upstream over TLS (no process) ----------------------------------------


def test_nginx_proxies_to_https_and_verifies_against_the_runs_ca(
    files: tls.TlsFiles, tmp_path: Path
) -> None:
    text = _plan("nginx", tmp_path, files)
    assert f"proxy_pass https://{UPSTREAM};" in text
    assert "proxy_ssl_verify on;" in text
    assert f"proxy_ssl_trusted_certificate {files.ca};" in text
    assert "proxy_ssl_name localhost;" in text and "proxy_ssl_server_name on;" in text
    assert "proxy_ssl_protocols TLSv1.2 TLSv1.3;" in text  # 1.22's default stops at 1.2
    assert "proxy_set_header Upgrade $http_upgrade;" in text  # the WebSocket upgrade still


def test_nginx_balances_tls_nodes_with_the_same_verification(
    files: tls.TlsFiles, tmp_path: Path
) -> None:
    found = proxies.plan(
        "nginx", "/usr/sbin/nginx", tmp_path, "127.0.0.1", 8443, UPSTREAM, 4,
        ["127.0.0.1:9001", "127.0.0.1:9002"], tls=(files.cert, files.key), upstream_ca=files.ca,
    )  # fmt: skip
    text = found.config_path.read_text()
    assert f"proxy_pass https://{proxies.NODES_UPSTREAM};" in text
    assert "server 127.0.0.1:9002 max_fails=1" in text and "proxy_ssl_verify on;" in text


def test_caddy_transport_trusts_the_runs_ca_for_localhost(
    files: tls.TlsFiles, tmp_path: Path
) -> None:
    caddy = json.loads(_plan("caddy", tmp_path, files))["apps"]
    handler = caddy["http"]["servers"]["push"]["routes"][0]["handle"][0]
    assert handler["upstreams"] == [{"dial": UPSTREAM}]
    transport = handler["transport"]
    assert transport["protocol"] == "http" and transport["keep_alive"] == {"enabled": True}
    assert transport["tls"] == {"root_ca_pem_files": [str(files.ca)], "server_name": "localhost"}
    assert "insecure_skip_verify" not in json.dumps(transport)


def test_haproxy_server_line_requires_verification(files: tls.TlsFiles, tmp_path: Path) -> None:
    text = _plan("haproxy", tmp_path, files)
    (line,) = [x.strip() for x in text.splitlines() if x.strip().startswith("server app1")]
    assert line.endswith(
        f" ssl verify required ca-file {files.ca} sni str(localhost) verifyhost localhost"
    )
    assert f"bind 127.0.0.1:8443 ssl crt {tmp_path / proxies.PEM_NAME}" in text


@pytest.mark.parametrize("via", [v for v in proxies.via_names() if v != proxies.DIRECT])
def test_tls_at_proxy_leaves_the_upstream_plain(
    via: str, files: tls.TlsFiles, tmp_path: Path
) -> None:
    text = _plan(via, tmp_path, files, e2e=False)
    settings = "\n".join(x for x in text.splitlines() if not x.lstrip().startswith("#"))
    assert "proxy_ssl" not in settings and "root_ca_pem_files" not in settings
    assert "ca-file" not in settings and "https://" not in settings
    assert not re.search(r"@[a-z_]+@", text)  # every placeholder filled


@pytest.mark.parametrize("via", ["nginx-naive", "caddy-naive", "haproxy-naive"])
def test_a_naive_config_cannot_go_end_to_end(via: str, files: tls.TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain HTTP only"):
        _plan(via, tmp_path, files)


def test_tls_at_and_server_tls() -> None:
    assert proxies.tls_at("nginx", True, "end-to-end") == "end-to-end"
    assert proxies.tls_at("nginx", True) == "proxy"
    assert proxies.tls_at("direct", True, "end-to-end") == "server"
    assert proxies.tls_at("caddy", False, "end-to-end") is None
    assert proxies.server_tls("haproxy", True, "end-to-end")
    assert proxies.server_tls("direct", True)
    assert not proxies.server_tls("haproxy", True, "proxy")


# --- the scenario key --------------------------------------------------------------------------

BASE = 'name = "t"\nstacks = "aiohttp"\ntransports = "ws"\nsubscribers = 2\n'


def _ids(extra: str) -> list[str]:
    return [c.cell_id for c in scenario.loads(BASE + extra, source="t.toml").cells()]


def test_the_default_leaves_every_id_alone_and_end_to_end_is_marked() -> None:
    assert _ids('tls = true\nvia = "nginx"\n') == ["aiohttp-ws-sub2-rate100-p100-via-nginx-tls"]
    (cell,) = scenario.loads(
        BASE + 'tls = true\nvia = "caddy"\ntls_at = "end-to-end"\n', source="t.toml"
    ).cells()
    assert cell.cell_id == "aiohttp-ws-sub2-rate100-p100-via-caddy-tls-e2e"
    assert cell.plaintext_id == "aiohttp-ws-sub2-rate100-p100-via-caddy"
    assert cell.tls_at == "end-to-end"


def test_tls_at_collapses_where_it_means_nothing() -> None:
    """Direct TLS ends at the server anyway and plaintext has no TLS: both values are one cell."""
    ids = _ids(
        'tls = [false, true]\nvia = ["direct", "haproxy"]\ntls_at = ["proxy", "end-to-end"]\n'
    )
    assert ids == [
        "aiohttp-ws-sub2-rate100-p100",
        "aiohttp-ws-sub2-rate100-p100-via-haproxy",
        "aiohttp-ws-sub2-rate100-p100-tls",
        "aiohttp-ws-sub2-rate100-p100-via-haproxy-tls",
        "aiohttp-ws-sub2-rate100-p100-via-haproxy-tls-e2e",
    ]


def test_a_naive_config_is_refused_at_parse_time_naming_the_field() -> None:
    with pytest.raises(scenario.ScenarioError, match="tls_at") as err:
        _ids('tls = true\nvia = "nginx-naive"\ntls_at = "end-to-end"\n')
    assert "naive config forwards plain HTTP only" in str(err.value)
    assert "via = 'nginx'" in str(err.value)
    with pytest.raises(scenario.ScenarioError, match="tls_at"):
        _ids('tls = true\nvia = "nginx"\ntls_at = "both"\n')


def test_an_external_stack_cannot_serve_end_to_end_tls() -> None:
    text = 'tls = true\nvia = "nginx"\ntls_at = "end-to-end"\n'
    (cell,) = scenario.loads(BASE + text, source="t.toml").cells()
    external = next((s for s in registry.stacks() if s.external), None)
    if external is None:
        pytest.skip("no external stack in the registry")
    why = runner_server.unsupported_by_stack(replace(cell, stack=external.name))
    assert "tls_at = 'end-to-end'" in why


# --- end to end --------------------------------------------------------------------------------

TINY = """
name = "tiny-proxy-tls-e2e"
stacks = "aiohttp"
tls = true
tls_at = "end-to-end"
subscribers = 2
rate = 50
payload_size = 32
duration_s = 0.5
warmup_s = 0.1
repeats = 1
client_processes = 1

[[cells]]  # the WebSocket upgrade through nginx over TLS both ways
transports = "ws"
via = "nginx"

[[cells]]
transports = "sse"
via = "caddy"

[[cells]]
transports = "ws"
via = "haproxy"
"""
VIAS = ("nginx", "caddy", "haproxy")


def _need(names: tuple[str, ...]) -> None:
    missing = [proxies.missing(n) for n in names if proxies.missing(n)]
    if missing:
        why = "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)


def _answer_to_plain_http(port: int) -> bytes:
    """What the server sends back to a plaintext request on its port (first bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        try:
            return sock.recv(64)
        except (ConnectionResetError, TimeoutError):
            return b""


def _tls_handshake(port: int, ca: Path) -> str | None:
    """The TLS version a verified handshake with the server agreed on (for localhost)."""
    context = tls.client_context(ca)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        return sock.version()


@pytest.mark.timeout(120)
def test_one_cell_through_each_proxy_tls_to_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pushbench import runner

    _need(VIAS)
    started: list[procs.Started] = []
    real_start = procs.ProcessGroup.start

    def spy(self: procs.ProcessGroup, name: str, argv: Any, **kw: Any) -> procs.Started:
        entry = real_start(self, name, argv, **kw)
        started.append(entry)
        return entry

    probes: list[tuple[bytes, str | None]] = []

    def probe(server: procs.Started) -> None:
        """The server, before the proxy starts: plain HTTP gets no HTTP answer, TLS does."""
        url = server.ready_line.split("listening on ", 1)[1].split()[0]
        assert url.startswith("https://"), server.ready_line
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        ca = tmp_path / "results"
        (ca_file,) = ca.glob("*/tls/ca.pem")
        probes.append((_answer_to_plain_http(port), _tls_handshake(port, ca_file)))

    monkeypatch.setattr(procs.ProcessGroup, "start", spy)
    path = tmp_path / "tiny-proxy-tls-e2e.toml"
    path.write_text(TINY)
    result = runner.run_scenario(
        scenario.load(path),
        runner.RunOptions(out=tmp_path / "results", progress=False, on_server_started=probe),
    )
    df = pd.read_csv(result.run_dir / "cells.csv")
    assert sorted(df["via"]) == sorted(VIAS)
    assert (df["status"] == "ok").all(), list(df["reason"])
    assert (df["delivered_fraction"] == 1).all() and (df["msgs_lost"] == 0).all()
    assert (df["tls_at"] == "end-to-end").all() and df["tls"].all()
    assert df["cell_id"].str.endswith("-tls-e2e").all()
    assert (df["tls_handshake_p50_us"] > 0).all()  # client ↔ proxy
    ws = df[df["transport"] == "ws"].set_index("via")
    assert ws["upgrade_status"].str.startswith("HTTP/1.1 101 Switching Protocols").all()
    assert "server=nginx/" in str(ws.loc["nginx", "upgrade_status"])

    # The server served TLS only: every proxy reached it over TLS, verified (the configs
    # require it), so the 100 % above came through TLS from the proxy to the server.
    assert len(probes) == len(VIAS)
    for plain, version in probes:
        assert not plain.startswith(b"HTTP/"), plain
        assert version in ("TLSv1.2", "TLSv1.3")
    servers = [s for s in started if s.name == "server"]
    assert len(servers) == len(VIAS)
    for s in servers:
        assert "--tls-cert" in [str(a) for a in s.proc.args]
    specs = [json.loads(p.read_text()) for p in result.run_dir.glob("work/*/worker0.spec.json")]
    assert all(s["base_url"].startswith("https://") and s["ca_file"] for s in specs)
    assert all(s.proc.poll() is not None for s in started)  # everything stopped

    run = load_run(result.run_dir)  # the report: end to end is its own point, labelled
    assert {p["tls_at"] for p in run.points()} == {"end-to-end"}
    assert "TLS end to end" in point_label(run.points()[0])
