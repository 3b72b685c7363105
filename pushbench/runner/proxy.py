"""A cell's reverse proxy (``via``, h27 / issue 12 item 1): started, pinned, read, stopped.

For a cell with ``via`` other than ``direct`` the runner writes the proxy's config from
its template (:func:`pushbench.proxies.plan`) into ``work/<cell>-r<k>/proxy/`` of the run
directory, starts the proxy in the cell's :class:`~pushbench.procs.ProcessGroup` on a free
loopback port, pinned to the **server CPUs** (it is part of the server side, like the Redis
broker), ready once its port accepts a connection, and points the clients at it; the
runner's own requests (``/control/ticker``, ``/stats``) and the memory probe go to the
server directly. For a ``tls = true`` cell the proxy terminates TLS with the run's
certificate (issue 12 item 2: the clients use https:// and wss:// to the proxy, verified
against the run's CA, and the proxy forwards plain HTTP to a server started without TLS:
``tls_at`` = ``proxy``; or, with ``tls_at = "end-to-end"`` (h42), it connects over TLS to
a server that serves the same certificate, verifying it against the run's CA). Its CPU
is sampled at the window's edges like the server's (``proxy_cpu_us_per_msg``), and the group
stops it by pid on every exit path.

What a naive config breaks is recorded as what it is, from the wire: each light WebSocket
client keeps the status line (and Server header) its upgrade got (:func:`upgrade_status`:
the row's ``upgrade_status``), and a cell whose connections never came up behind a proxy
that did not answer 101 fails with "WebSocket refused by …" and that status line
(:func:`refusal`), not a crash. SSE arriving in lumps shows in the latency columns; idle
connections cut by a short timeout show as ``reconnects`` and ``errors``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pushbench import proxies, registry
from pushbench.procs import Pinning, ProcessGroup, Started, run_tool
from pushbench.scenario import Cell
from pushbench.tls import TlsFiles

from .options import READY_TIMEOUT_S, CellFailed
from .server import HOST, free_port

__all__ = ["PINNING_NOTE", "metadata", "reason", "refusal", "start_proxy", "upgrade_status"]

#: Where the proxy runs, for metadata.json.
PINNING_NOTE = (
    "the proxy (via) runs on the server CPUs beside the server (one nginx process with "
    "master_process off, HAProxy with nbthread 1, Caddy's Go runtime); its CPU is "
    "proxy_cpu_us_per_msg, not in server_cpu_us_per_msg"
)


def start_proxy(
    group: ProcessGroup,
    cell: Cell,
    pinning: Pinning,
    server_url: str,
    workdir: Path,
    node_urls: Sequence[str] = (),
    port: int | None = None,  # issue 12 item 5: a restart listens where it did
    tls: TlsFiles | None = None,  # issue 12 item 2: TLS terminated at the proxy
) -> tuple[Started, str]:
    """Start the cell's proxy in front of ``server_url`` (``http://host:port``) →
    (its process, the base URL the clients use). ``node_urls`` (scale-out, issue 12 item
    4): every node's URL, node 0's first, balanced by nginx's upstream block; ``port``:
    the port to listen on (a free one when None); ``tls``: the run's certificate, for a
    listener with TLS (the URL is then https://; the upstream stays plain HTTP, unless the
    cell's ``tls_at`` is ``end-to-end``, h42: then ``server_url`` is https:// too)."""
    found = proxies.proxy_of(cell.via)
    if found is None:
        raise ValueError("direct: no proxy to start")
    exe = proxies.binary(found[0])
    if exe is None:
        raise CellFailed(proxies.missing(cell.via))
    upstream = _host_port(server_url)
    port = free_port() if port is None else port
    nodes = [_host_port(u) for u in node_urls]
    cert = None if tls is None else (tls.cert, tls.key)
    http2 = registry.transport(cell.transport).http2  # h43: an -h2 cell's h2 listener
    # h42: TLS end to end: the proxy verifies the server (https://) against the run's CA
    end_to_end = proxies.tls_at(cell.via, cell.tls, cell.tls_at) == proxies.TLS_END_TO_END
    ca = tls.ca if tls is not None and end_to_end else None
    plan = proxies.plan(
        cell.via, exe, workdir, HOST, port, upstream, cell.subscribers, nodes, tls=cert,
        http2=http2, upstream_ca=ca,
    )  # fmt: skip
    started = group.start(
        "proxy",
        plan.argv,
        cpus=pinning.server,
        ready_prefix=f"{plan.proxy} listening on {HOST}:{port}",
        timeout_s=READY_TIMEOUT_S,
        env={
            "HOME": str(workdir),
            "XDG_CONFIG_HOME": str(workdir / "data"),
            "XDG_DATA_HOME": str(workdir / "data"),
            "PATH": "/usr/sbin:/usr/bin:/bin",
        },
        ready_port=(HOST, port),
    )
    return started, plan.base_url


def _host_port(url: str) -> str:
    """``http(s)://host:port/`` → ``host:port`` (the proxy's upstream)."""
    return url.removeprefix("https://").removeprefix("http://").rstrip("/")


def upgrade_status(per_connection: Sequence[Mapping[str, Any]]) -> str | None:
    """The status line the connections' upgrades got, the most frequent one, with the
    Server header when there is one (``HTTP/1.1 101 Switching Protocols; server=nginx``);
    None when no connection recorded one (not a light WebSocket client)."""
    answers = Counter(
        (str(c["status_line"]), c.get("server_header"))
        for c in per_connection
        if c.get("status_line")
    )
    if not answers:
        return None
    (line, server), _ = answers.most_common(1)[0]
    return f"{line}; server={server}" if server else line


def refusal(cell: Cell, status: str | None) -> str:
    """The reason a WebSocket cell behind a proxy failed because its upgrade did not pass
    ("" when that is not what happened: direct, not WebSocket, or a 101 came back)."""
    if cell.via == proxies.DIRECT or cell.protocol != "ws" or status is None:
        return ""
    parts = status.split(" ", 2)
    if len(parts) > 1 and parts[1] == "101":
        return ""
    return f"WebSocket refused by {cell.via}: the upgrade got {status!r}, not 101"


def reason(cell: Cell, status: str | None) -> str:
    """What a failed repeat's reason starts with behind a proxy: the refusal of a WebSocket
    upgrade (:func:`refusal`), else ``through <via>`` ("" when direct), so a failure a
    naive config caused reads as one (an SSE stream the proxy withholds: its connections
    never up)."""
    refused = refusal(cell, status)
    if refused or cell.via == proxies.DIRECT:
        return refused
    return f"through {cell.via}"


def metadata(cells: Sequence[Cell]) -> dict[str, Any]:
    """metadata.json's ``proxies``: where they run, and each used proxy's Debian package
    version (``dpkg-query``; None when not installed)."""
    used = {proxies.proxy_of(c.via) for c in cells} - {None}
    versions: dict[str, str | None] = {}
    for found in sorted(used, key=lambda f: f[0].name if f else ""):
        assert found is not None
        p = found[0]
        versions[p.name] = run_tool(["dpkg-query", "-W", "-f=${Version}", p.package])
    return {
        "pinning": PINNING_NOTE,
        "naive_idle_s": proxies.NAIVE_IDLE_S,
        "versions": versions,
    }
