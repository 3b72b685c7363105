"""Reverse proxies in front of a cell's server: the ``via`` dimension, declared as data.

A cell's ``via`` is ``direct`` (clients talk to the server) or a proxy and its config:
``nginx``, ``caddy``, ``haproxy`` (configured for push: the WebSocket Upgrade and
Connection forwarded, streamed responses passed on at once, idle timeouts of hours) and
``nginx-naive``, ``caddy-naive``, ``haproxy-naive`` (each proxy's defaults for a plain
reverse proxy, plus an idle timeout of :data:`NAIVE_IDLE_S` — the seed's warning about
older or default-configured proxies, made measurable):

- nginx-naive: HTTP/1.0 to the upstream without Upgrade/Connection (a WebSocket upgrade
  cannot pass: the server answers the plain GET with an error), responses buffered
  (``proxy_buffering`` on; ``proxy_ignore_headers X-Accel-Buffering`` because every stack
  sends ``X-Accel-Buffering: no``, which a proxy that does not know the header ignores),
  ``proxy_read_timeout`` :data:`NAIVE_IDLE_S`.
- caddy-naive: Caddy's ``reverse_proxy`` defaults (it forwards an upgrade and flushes an
  event stream by itself) with a ``read_timeout`` of :data:`NAIVE_IDLE_S` to the upstream.
- haproxy-naive: ``mode http`` (HAProxy forwards an upgrade by itself) with client and
  server timeouts of :data:`NAIVE_IDLE_S` and no ``timeout tunnel``.

TLS terminated at the proxy (``tls = true`` behind a proxy, issue 12 item 2): every
template has the placeholders of a TLS listener, empty for a plaintext cell and filled
from each proxy's :attr:`Proxy.tls` fragments (data, not copies of the templates) with the
run's certificate: nginx ``listen … ssl`` and ``ssl_certificate``/``ssl_certificate_key``,
Caddy ``tls_connection_policies`` on the server and the ``tls`` app loading the files,
HAProxy ``bind … ssl crt`` on one PEM (certificate then key, written beside the config).
The upstream to the server stays plain HTTP unless the cell says ``tls_at = "end-to-end"``.

TLS end to end behind a proxy (``tls_at = "end-to-end"``, h42, issue 12 item 2): the server
serves TLS with the run's certificate too and the good configs connect to it over TLS,
verifying it against the run's CA under the name :data:`UPSTREAM_SERVER_NAME` — from each
proxy's :attr:`Proxy.upstream_tls` fragment in the ``upstream_tls`` placeholder (and
nginx's ``upstream_scheme``): nginx ``proxy_pass https://`` with ``proxy_ssl_verify on``,
``proxy_ssl_trusted_certificate`` and ``proxy_ssl_name``; Caddy's ``http`` transport with
``tls`` (``root_ca_pem_files``, ``server_name``: the JSON of the Caddyfile's
``tls_trusted_ca_certs`` and ``tls_server_name``); HAProxy ``server … ssl verify required
ca-file … sni … verifyhost …``. The naive configs have no such placeholder: they only
ever forward plain HTTP (:func:`plan` refuses, and the scenario refuses at parse time).

HTTP/2 to the client (issue 18 item 3, h43): a cell of an ``-h2`` transport behind a proxy
asks :func:`plan` for ``http2``; a proxy that can terminate it has an :attr:`Proxy.http2`
fragment for its listen line (nginx ``listen … http2``: h2c with prior knowledge on
plaintext — that port then speaks no HTTP/1.1 — and h2 or HTTP/1.1 by ALPN with ``ssl``),
filled into the ``@h2_listen@`` placeholder. The upstream stays HTTP/1.1, so any stack
serves an ``-h2`` cell behind it. Caddy and HAProxy have no fragment here (refused).

Each config is a template file in ``pushbench/proxy_templates/`` (``@name@`` placeholders,
so nginx's ``$variables`` and Caddy's JSON braces need no escaping) filled by
:func:`render` into the run directory. Every file the proxy writes (pid, temp files,
Caddy's storage) is under that directory, the proxy runs in the foreground (nginx
``daemon off`` and ``master_process off``: one process whose CPU is the proxy's; HAProxy
``-db`` with one thread; ``caddy run`` with the admin endpoint off) and logs to stderr,
which :mod:`pushbench.procs` keeps in the cell's log. The runner starts, pins, samples
and stops it (:mod:`pushbench.runner.proxy`); this module only says what to start.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "CONFIGS",
    "DIRECT",
    "LONG_TIMEOUT_S",
    "NAIVE_IDLE_S",
    "NODES_UPSTREAM",
    "PEM_NAME",
    "PROXIES",
    "TLS_AT",
    "TLS_AT_DEFAULT",
    "TLS_END_TO_END",
    "TLS_PLACEHOLDERS",
    "UPSTREAM_SERVER_NAME",
    "UPSTREAM_TLS_PLACEHOLDERS",
    "Proxy",
    "ProxyPlan",
    "binary",
    "h2_capable",
    "missing",
    "plan",
    "proxy_of",
    "render",
    "server_tls",
    "template",
    "tls_at",
    "tls_values",
    "upstream_block",
    "upstream_tls_values",
    "via_names",
]

DIRECT = "direct"
#: The naive configs' idle timeout, seconds: below the scenarios' default heartbeat (15 s),
#: so an idle WebSocket or SSE stream through a naive proxy is cut.
NAIVE_IDLE_S = 10
#: The good configs' read/idle timeouts, seconds: longer than any cell.
LONG_TIMEOUT_S = 3600
#: The configs of each proxy, in ``via`` order: ``good`` is ``via = "<proxy>"``.
CONFIGS: tuple[str, ...] = ("good", "naive")
_PLACEHOLDER = re.compile(r"@([a-z][a-z0-9_]*)@")  # h43: digits (h2_listen)
#: The TLS listener's placeholders every template has (issue 12 item 2): ``tls_listen`` on
#: the listen/bind line, ``tls_config`` where the proxy's certificate settings go (""
#: for a proxy that needs none, and for every plaintext cell).
TLS_PLACEHOLDERS: tuple[str, ...] = ("tls_listen", "tls_config")
# --- h42 (issue 12 item 2): TLS end to end behind a proxy ------------------------------------
#: The scenario's ``tls_at`` values: where a TLS cell behind a proxy ends its TLS. ``proxy``
#: (the default: the proxy forwards plain HTTP) or ``end-to-end`` (the server serves TLS too
#: and the proxy connects to it over TLS, verifying it against the run's CA).
TLS_END_TO_END = "end-to-end"
TLS_AT_DEFAULT = "proxy"
TLS_AT: tuple[str, ...] = (TLS_AT_DEFAULT, TLS_END_TO_END)
#: The placeholders of a good config's upstream: ``upstream_scheme`` (nginx's proxy_pass:
#: http or https) and ``upstream_tls`` (the proxy's verification settings, "" for plain).
UPSTREAM_TLS_PLACEHOLDERS: tuple[str, ...] = ("upstream_scheme", "upstream_tls")
#: The name a proxy sends (SNI) and verifies the server's certificate for: a DNS name of
#: :data:`pushbench.tls.SERVER_NAMES` (SNI carries no IP address, RFC 6066, and nginx's
#: proxy_ssl_name check matches host names only).
UPSTREAM_SERVER_NAME = "localhost"
# --- end h42 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proxy:
    """One reverse proxy: its executable, the Debian package that has it, how it is started
    (``argv`` with ``{binary}``, ``{config}`` and ``{dir}``), its config file's suffix,
    and how its version is read (``dpkg-query`` on ``package``)."""

    name: str
    executable: str
    package: str
    argv: tuple[str, ...]
    suffix: str
    dirs: tuple[str, ...] = ()  # made in the work directory before a start
    #: issue 12 item 2: the TLS listener's fragments, one per :data:`TLS_PLACEHOLDERS`
    #: ("" where the proxy needs none), with ``{cert}``, ``{key}`` and ``{pem}`` (the
    #: certificate and key in one file) filled by :func:`plan`.
    tls: tuple[str, str] = ("", "")
    #: h42: the ``upstream_tls`` fragment connecting to the server over TLS, verified
    #: against ``{ca}`` for ``{name}`` (:data:`UPSTREAM_SERVER_NAME`); good configs only.
    upstream_tls: str = ""
    #: issue 18 item 3 (h43): the listen line's HTTP/2 fragment ("": not offered here)
    http2: str = ""

    def command(self, exe: str, config: Path, workdir: Path) -> list[str]:
        """The argv that runs the proxy in the foreground on ``config``."""
        values = {"binary": exe, "config": str(config), "dir": f"{workdir}/"}
        return [a.format(**values) for a in self.argv]


#: The proxies a cell may put in front (Debian packages: ``make system-deps``).
PROXIES: tuple[Proxy, ...] = (
    # -p: prefix (relative paths), -e: the error log before the config is read (else
    # /var/log/nginx/error.log), -c: the config.
    Proxy(
        "nginx",
        "nginx",
        "nginx",
        ("{binary}", "-p", "{dir}", "-e", "stderr", "-c", "{config}"),
        ".conf",
        ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"),  # the config's temp paths
        # TLS 1.3 too: nginx 1.22's default ssl_protocols stop at TLS 1.2 (1.23.4 added it),
        # and the servers' ssl defaults and the other proxies prefer TLS 1.3
        (
            " ssl",
            "ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;",
        ),
        # h42: verify the server (off by default in nginx), TLS 1.3 allowed (1.22's
        # proxy_ssl_protocols default stops at TLS 1.2), the name sent and checked
        "proxy_ssl_verify on;\n            proxy_ssl_trusted_certificate {ca};\n"
        "            proxy_ssl_verify_depth 2;\n            proxy_ssl_name {name};\n"
        "            proxy_ssl_server_name on;\n"
        "            proxy_ssl_protocols TLSv1.2 TLSv1.3;\n"
        "            proxy_ssl_session_reuse on;",
        http2=" http2",  # h43: nginx 1.22's per-listen switch (1.25 has `http2 on`)
    ),
    Proxy(
        "caddy",
        "caddy",
        "caddy",
        ("{binary}", "run", "--config", "{config}"),
        ".json",
        ("data",),
        # a TLS server (policies present) and the tls app loading the run's files
        (
            '"tls_connection_policies": [{{}}],',
            '"tls": {{"certificates": {{"load_files": '
            '[{{"certificate": "{cert}", "key": "{key}"}}]}}}},',
        ),
        # h42: the http transport's tls (the Caddyfile's tls_trusted_ca_certs and
        # tls_server_name); its presence alone makes the upstream TLS
        ', "tls": {{"root_ca_pem_files": ["{ca}"], "server_name": "{name}"}}',
    ),
    Proxy(
        "haproxy",
        "haproxy",
        "haproxy",
        ("{binary}", "-db", "-f", "{config}"),
        ".cfg",
        tls=(" ssl crt {pem}", ""),
        # h42: verify required against the CA, SNI sent and the certificate's name checked
        upstream_tls=" ssl verify required ca-file {ca} sni str({name}) verifyhost {name}",
    ),
)

#: HAProxy's certificate file: the leaf then its key (written into the proxy's work dir).
PEM_NAME = "tls.pem"


def tls_values(proxy: Proxy, workdir: Path, cert: Path | None, key: Path | None) -> dict[str, str]:
    """The TLS placeholders' values for ``proxy`` (issue 12 item 2): its fragments with the
    certificate's paths, or "" each for a plaintext listener (``cert`` None). Writes the
    one-file PEM (:data:`PEM_NAME`, mode 0600) a fragment naming ``{pem}`` needs."""
    if cert is None or key is None:
        return dict.fromkeys(TLS_PLACEHOLDERS, "")
    pem = workdir / PEM_NAME
    if any("{pem}" in f for f in proxy.tls):
        pem.write_bytes(cert.read_bytes().rstrip(b"\n") + b"\n" + key.read_bytes())
        pem.chmod(0o600)
    paths = {"cert": str(cert), "key": str(key), "pem": str(pem)}
    return {name: f.format(**paths) for name, f in zip(TLS_PLACEHOLDERS, proxy.tls, strict=True)}


def upstream_tls_values(proxy: Proxy, ca: Path | None) -> dict[str, str]:
    """The upstream placeholders' values for ``proxy`` (h42, issue 12 item 2): plain HTTP
    (``ca`` None), or TLS to the server verified against ``ca``."""
    if ca is None:
        return {"upstream_scheme": "http", "upstream_tls": ""}
    fragment = proxy.upstream_tls.format(ca=str(ca), name=UPSTREAM_SERVER_NAME)
    return {"upstream_scheme": "https", "upstream_tls": fragment}


def via_names() -> tuple[str, ...]:
    """Every value of ``via``: ``direct``, then each proxy good and naive."""
    names = [DIRECT]
    for p in PROXIES:
        names += [p.name, f"{p.name}-naive"]
    return tuple(names)


def proxy_of(via: str) -> tuple[Proxy, str] | None:
    """``via`` → (the proxy, ``good`` or ``naive``); None for ``direct``. A ValueError for
    a name that is not a ``via``."""
    if via == DIRECT:
        return None
    name, _, config = via.partition("-")
    for p in PROXIES:
        if p.name == name and config in ("", "naive"):
            return p, config or "good"
    raise ValueError(f"unknown via {via!r}: one of {', '.join(via_names())}")


def tls_at(via: str, tls: bool, at: str = TLS_AT_DEFAULT) -> str | None:
    """Where a cell's TLS terminates (issue 12 item 2; cells.csv ``tls_at``): ``server``
    (direct: end to end), ``proxy`` (behind one: the server is started without TLS and
    the proxy forwards plain HTTP), ``end-to-end`` (behind one with ``at`` = end-to-end,
    h42: the proxy terminates the clients' TLS and opens its own to the server, which
    serves TLS too), None for a plaintext cell."""
    if not tls:
        return None
    if via == DIRECT:
        return "server"
    return TLS_END_TO_END if at == TLS_END_TO_END else "proxy"


def server_tls(via: str, tls: bool, at: str = TLS_AT_DEFAULT) -> bool:
    """Whether the server itself serves TLS (h42): direct TLS cells and end-to-end ones."""
    return tls_at(via, tls, at) in ("server", TLS_END_TO_END)


def h2_capable(via: str) -> bool:
    """Whether ``via`` can speak HTTP/2 to the clients (issue 18 item 3, h43): direct
    (the stack's own HTTP/2 decides) or a proxy with an :attr:`Proxy.http2` fragment."""
    found = proxy_of(via)
    return found is None or bool(found[0].http2)


def binary(proxy: Proxy) -> str | None:
    """The proxy's executable on PATH (or Debian's ``/usr/sbin``), else None."""
    return shutil.which(proxy.executable) or shutil.which(
        proxy.executable, path="/usr/sbin:/usr/bin"
    )


def missing(via: str) -> str:
    """Why a cell with ``via`` cannot run here ("" when it can): its proxy not installed."""
    found = proxy_of(via)
    if found is None or binary(found[0]) is not None:
        return ""
    p = found[0]
    return (
        f"via = {via!r} needs {p.executable} (Debian package {p.package}): run `make system-deps`"
    )


def template(proxy: Proxy, config: str) -> str:
    """The text of a config template (``pushbench/proxy_templates/<proxy>-<config>``)."""
    name = f"{proxy.name}-{config}{proxy.suffix}"
    return resources.files("pushbench").joinpath("proxy_templates", name).read_text("utf-8")


def render(text: str, values: dict[str, str]) -> str:
    """``text`` with every ``@name@`` replaced by ``values[name]``; a placeholder without a
    value, or a value no placeholder uses, is a ValueError (a template and its caller
    never drift apart silently)."""
    used = set(_PLACEHOLDER.findall(text))
    unknown = sorted(used - values.keys())
    if unknown:
        raise ValueError(f"template placeholders without a value: {', '.join(unknown)}")
    unused = sorted(values.keys() - used)
    if unused:
        raise ValueError(f"values no placeholder uses: {', '.join(unused)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


@dataclass(frozen=True)
class ProxyPlan:
    """What to start for one cell's proxy: its argv, the config written, the address it
    listens on (``host``:``port``) and the server it forwards to (``upstream``)."""

    via: str
    proxy: str
    config: str
    argv: tuple[str, ...]
    config_path: Path
    host: str
    port: int
    upstream: str
    tls: bool = False  # issue 12 item 2: the listener terminates TLS (clients: https://)
    http2: bool = False  # issue 18 item 3 (h43): the listener speaks HTTP/2 to the clients

    @property
    def base_url(self) -> str:
        """The URL the clients use: ``https://`` when the proxy terminates TLS."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


#: The name of the upstream block of several nodes (scale-out, issue 12 item 4).
NODES_UPSTREAM = "pushbench_nodes"


#: h41 (a fault on one node of N): a node that refused one connection is left out for
#: this long, then tried again (nginx's default is 10 s, longer than a restart takes).
NODE_FAIL_TIMEOUT_S = 1


def upstream_block(nodes: Sequence[str]) -> str:
    """nginx's ``upstream`` block balancing ``nodes`` (``host:port`` each) round robin
    (scale-out, issue 12 item 4); "" for fewer than two nodes (proxy_pass names the one).

    A dead node (h41: a server-kill of one node): nginx's default ``proxy_next_upstream
    error timeout`` passes a request whose connect to it failed on to the next node, so
    a reconnect (a WebSocket upgrade, an SSE or long-poll GET) reaches a live one;
    ``max_fails=1`` leaves the node out after that one failure and ``fail_timeout`` tries
    it again :data:`NODE_FAIL_TIMEOUT_S` later, so the restarted node gets clients back."""
    if len(nodes) < 2:
        return ""
    lines = [f"    upstream {NODES_UPSTREAM} {{"]
    fails = f"max_fails=1 fail_timeout={NODE_FAIL_TIMEOUT_S}s"
    lines += [f"        server {node} {fails};" for node in nodes]
    lines += ["    }", "    proxy_next_upstream error timeout;  # the default, stated: h41"]
    return "\n".join(lines)


def plan(
    via: str,
    exe: str,
    workdir: Path,
    host: str,
    port: int,
    upstream: str,
    connections: int,
    nodes: Sequence[str] = (),
    tls: tuple[Path, Path] | None = None,
    http2: bool = False,
    upstream_ca: Path | None = None,
) -> ProxyPlan:
    """Write the config of ``via`` into ``workdir`` (created, with the temp directories
    nginx wants) for a proxy listening on ``host:port`` in front of ``upstream``
    (``host:port``), sized for ``connections`` client connections → what to start.
    ``nodes`` (scale-out): two or more servers to balance instead of ``upstream`` — nginx
    only (a ValueError for a config without an upstream block). ``tls`` (issue 12 item 2):
    the run's (certificate, key): the proxy listens with TLS and forwards plain HTTP, unless
    ``upstream_ca`` (h42, TLS end to end) is given: then it connects to the server(s) over
    TLS too, verifying them against that CA (a ValueError for a config that cannot).
    ``http2`` (issue 18 item 3): the listener speaks HTTP/2 (a ValueError for a proxy
    without an :attr:`Proxy.http2` fragment or a config without ``@h2_listen@``)."""
    found = proxy_of(via)
    if found is None:
        raise ValueError("direct: no proxy to plan")
    proxy, config = found
    if len(nodes) > 1:
        upstream = NODES_UPSTREAM
    # Absolute: nginx reads -c relative to its -p prefix, so a relative run directory
    # (`--out results`, the default) named the config twice over.
    workdir = workdir.resolve()
    if tls is not None:
        tls = (tls[0].resolve(), tls[1].resolve())
    if upstream_ca is not None:
        upstream_ca = upstream_ca.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in proxy.dirs:
        (workdir / sub).mkdir(exist_ok=True)
    max_conns = 2 * connections + 256  # each client connection and its upstream one
    values = {
        "dir": str(workdir),
        "host": host,
        "port": str(port),
        "upstream": upstream,
        "max_conns": str(max_conns),
        "max_fds": str(2 * max_conns + 64),
        "long_timeout_s": str(LONG_TIMEOUT_S),
        "idle_s": str(NAIVE_IDLE_S),
        "upstream_block": upstream_block(nodes),
        **tls_values(proxy, workdir, *(tls or (None, None))),  # issue 12 item 2
        "h2_listen": proxy.http2 if http2 else "",  # issue 18 item 3 (h43)
        **upstream_tls_values(proxy, upstream_ca),  # h42: TLS end to end
    }
    text = template(proxy, config)
    used = set(_PLACEHOLDER.findall(text))
    if tls is not None and not set(TLS_PLACEHOLDERS) & used:
        raise ValueError(f"via = {via!r}: its config has no TLS listener")
    if http2 and not (proxy.http2 and "h2_listen" in used):  # h43
        raise ValueError(f"via = {via!r} cannot speak HTTP/2 to the clients (nginx only)")
    if upstream_ca is not None and "upstream_tls" not in used:  # h42
        raise ValueError(
            f"via = {via!r}: its config forwards plain HTTP only (tls_at = "
            f"{TLS_END_TO_END!r} needs a good config: {proxy.name})"
        )
    if len(nodes) > 1 and "upstream_block" not in used:
        raise ValueError(f"via = {via!r} cannot balance several servers (nginx only)")
    path = workdir / f"{proxy.name}{proxy.suffix}"
    path.write_text(render(text, {k: v for k, v in values.items() if k in used}), "utf-8")
    argv = tuple(proxy.command(exe, path, workdir))
    return ProxyPlan(
        via, proxy.name, config, argv, path, host, port, upstream, tls is not None, http2
    )
