"""HTTP/2 through nginx in front, and h2 over TLS with our own client (issue 18 item 3, h43).

nginx terminates HTTP/2 from the clients — h2c with prior knowledge on a plaintext
``listen … http2``, h2 by ALPN with ``ssl http2`` — and proxies HTTP/1.1 to any stack, so
``sse-h2`` and ``longpoll-h2`` run against aiohttp (which speaks no HTTP/2 at all). The
config tests need no process; the end-to-end test runs three tiny cells: h2c through
nginx, h2 over TLS through nginx, h2 over TLS straight to Hypercorn — every message
delivered, the TLS
handshake timed, the spec's CA used. Skips without nginx or openssl (fails under CI).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from pushbench import proxies, runner, scenario, tls
from pushbench.scenario import ScenarioError

CERT = (Path("/c/cert.pem"), Path("/c/key.pem"))


def _config(via: str, workdir: Path, cert: tuple[Path, Path] | None, http2: bool) -> str:
    found = proxies.plan(
        via, "/usr/sbin/nginx", workdir, "127.0.0.1", 8443, "127.0.0.1:9000", 4, (), cert, http2
    )
    assert found.http2 is http2
    return found.config_path.read_text()


@pytest.mark.parametrize("config", ["", "-naive"])
def test_nginx_listens_with_http2_only_for_h2_cells(config: str, tmp_path: Path) -> None:
    assert "listen 127.0.0.1:8443 http2;" in _config(f"nginx{config}", tmp_path, None, True)
    assert "listen 127.0.0.1:8443 ssl http2;" in _config(f"nginx{config}", tmp_path, CERT, True)
    plain = _config(f"nginx{config}", tmp_path, None, False)
    assert "listen 127.0.0.1:8443;" in plain and " http2;" not in plain
    assert "proxy_pass http://127.0.0.1:9000;" in plain  # the upstream stays HTTP/1.x


@pytest.mark.parametrize("via", ["caddy", "haproxy-naive"])
def test_other_proxies_refuse_http2(via: str, tmp_path: Path) -> None:
    assert not proxies.h2_capable(via) and proxies.h2_capable("nginx")
    with pytest.raises(ValueError, match="cannot speak HTTP/2"):
        proxies.plan(via, "/bin/p", tmp_path, "127.0.0.1", 1, "127.0.0.1:2", 4, http2=True)


def test_h2_cells_behind_nginx_on_any_stack() -> None:
    text = 'stacks = ["aiohttp", "raw"]\ntransports = ["sse-h2", "longpoll-h2"]\nvia = "nginx"'
    assert len(scenario.loads(text).cells()) == 4  # neither stack speaks HTTP/2 itself
    with pytest.raises(ScenarioError, match="speaks HTTP/2"):
        scenario.loads('stacks = "aiohttp"\ntransports = "sse-h2"').cells()  # direct
    with pytest.raises(ScenarioError, match="proxy that speaks HTTP/2"):
        scenario.loads('stacks = "aiohttp"\ntransports = "sse-h2"\nvia = "caddy"').cells()
    h2c_publish = 'stacks = "aiohttp"\ntransports = "sse-h2"\nvia = "nginx"\npublishers = 1'
    with pytest.raises(ScenarioError, match="h2c cell behind a proxy"):
        scenario.loads(h2c_publish + "\nrate = 10").cells()
    assert scenario.loads(h2c_publish + "\nrate = 10\ntls = true").cells()


TINY = """
name = "tiny-h2"
subscribers = 3
rate = 50
payload_size = 32
duration_s = 0.5
warmup_s = 0.1
repeats = 1
client_processes = 1

[[cells]]  # h2c from the client to nginx, HTTP/1.1 to aiohttp
stacks = "aiohttp"
transports = "sse-h2"
via = "nginx"

[[cells]]  # h2 over TLS (ALPN) to nginx, HTTP/1.1 to aiohttp
stacks = "aiohttp"
transports = "longpoll-h2"
via = "nginx"
tls = true

[[cells]]  # h2 over TLS straight to Hypercorn
stacks = "starlette-hypercorn"
transports = "sse-h2"
tls = true
"""


@pytest.mark.timeout(120)
def test_h2_cells_through_nginx_and_over_tls(tmp_path: Path) -> None:
    why = proxies.missing("nginx") or ("" if tls.openssl() else tls.OPENSSL_MISSING)
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why}; CI is set, so this is a failure, not a skip", pytrace=False)
        pytest.skip(why)
    path = tmp_path / "tiny-h2.toml"
    path.write_text(TINY)
    result = runner.run_scenario(
        scenario.load(path), runner.RunOptions(out=tmp_path / "results", progress=False)
    )
    df = pd.read_csv(result.run_dir / "cells.csv").set_index("transport", append=True)
    assert len(df) == 3
    assert (df["status"] == "ok").all(), list(df["reason"])
    assert (df["delivered_fraction"] == 1).all() and (df["msgs_lost"] == 0).all()
    assert list(df["via"]) == ["nginx", "nginx", "direct"]
    assert list(df["tls_at"].fillna("")) == ["", "proxy", "server"]
    tls_rows = df[df["tls"]]
    assert (tls_rows["tls_handshake_p50_us"] > 0).all(), list(tls_rows["tls_handshake_p50_us"])
    assert df["proxy_cpu_us_per_msg"].notna().tolist() == [True, True, False]
    specs = {
        p.parent.name: json.loads(p.read_text())
        for p in (result.run_dir / "work").glob("*/worker0.spec.json")
    }
    assert len(specs) == 3
    for spec in specs.values():
        assert spec["transport"].endswith("-h2")
        assert spec["base_url"].startswith("https://") == bool(spec["ca_file"])
