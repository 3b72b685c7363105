"""An external target: ``pushbench run SCENARIO --target URL`` measures a server the user runs.

The runner then starts no server: every cell's clients connect to ``URL``, the ticker is
driven through the target's ``POST /control/ticker`` (chat cells publish from their
clients, as always), and the server-side columns the runner reads from ``/proc`` (server
CPU, RSS, socket memory) stay empty, with ``server_unmeasured`` saying why — the server
is not a process of this machine the runner knows, and an empty figure is not a zero.

Before the first cell, :func:`probe` asks the target for each part of the contract
(``docs/contract.md``) the scenario's cells need — ``/health``, ``/stats``,
``/control/ticker``, each transport's endpoint with ``since=`` (``/ws`` must answer 101,
``/sse`` an event stream, ``/poll`` a JSON batch) and ``POST /publish`` for chat cells
on HTTP transports — without publishing anything (``DELETE /control/ticker`` stops a
ticker that is not running; a refused publish is a 400). :meth:`TargetProbe.messages`
says, per missing part, which cells cannot run and why; :meth:`TargetProbe.unsupported`
gives each such cell its skip reason, and the others run.

A target serves whatever topics, hub, history, loop and heartbeats it was deployed with:
cells that need a server option the runner could only give a server it starts (faults
injected by the server, a Redis hub, uvloop, a heartbeat other than the scenario default)
are skipped with the reason. Every cell runs once whatever stack it names
(:func:`for_target`): the stack column reads :data:`TARGET_STACK`.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pushbench import registry
from pushbench.scenario import Cell

from .server import EXTERNAL_HEARTBEAT_S, history_size

__all__ = [
    "PROBE_TOPIC",
    "TARGET_STACK",
    "Part",
    "TargetError",
    "TargetProbe",
    "for_target",
    "probe",
    "server_unmeasured",
]

#: The ``stack`` column of a cell measured against ``--target``.
TARGET_STACK = "target"
#: The topic the probe's requests name (nothing is published on it).
PROBE_TOPIC = "pushbench-probe"
PROBE_TIMEOUT_S = 3.0
#: The path of each protocol's endpoint (the registry's), and what the probe asks there.
_POLL_QUERY = f"?topic={PROBE_TOPIC}&since=0&timeout=0"


class TargetError(ValueError):
    """A ``--target`` that is no ``http://host:port[/prefix]`` URL."""


@dataclass(frozen=True)
class Part:
    """One part of the contract as the target answered it: ``ok``, and what it answered."""

    name: str  # e.g. "GET /stats", "GET /ws (WebSocket upgrade, since=)"
    ok: bool
    answer: str  # "200", "404 Not Found", "connection refused", …
    needed_by: str  # which cells need it, in words


@dataclass
class TargetProbe:
    """What :func:`probe` found at ``url``: every part it asked for, keyed by a short id
    (``health``, ``stats``, ``ticker``, ``publish``, and each protocol's name)."""

    url: str
    parts: dict[str, Part] = field(default_factory=dict)
    history: int | None = None  # messages per topic its /stats reports keeping, if any

    def missing(self, key: str) -> Part | None:
        part = self.parts.get(key)
        return part if part is not None and not part.ok else None

    def unsupported(self, cell: Cell) -> str:
        """Why ``cell`` cannot run against the target ("" when it can)."""
        needs = [f"{part.name} ({part.answer})" for part in self._lacking(cell)]
        if needs:
            return f"target {self.url} lacks {'; '.join(needs)}"
        if self.history is not None and self.history < history_size(cell):
            return (
                f"target {self.url} keeps {self.history:,} messages of history (its /stats); "
                f"the cell's pollers need {history_size(cell):,}"
            )
        return _server_options(cell)

    def _lacking(self, cell: Cell) -> list[Part]:
        keys = [registry.transport(cell.transport).protocol]
        if cell.rate and not cell.publishers:
            keys += ["ticker", "stats"]
        if cell.publishers and keys[0] != "ws":  # a WebSocket publishes on its own socket
            keys.append("publish")
        return [part for key in keys if (part := self.missing(key)) is not None]

    def messages(self) -> list[str]:
        """One line per part: what it is, what the target answered, what that costs."""
        lines = []
        for part in self.parts.values():
            if part.ok:
                lines.append(f"  ok       {part.name}: {part.answer}")
            else:
                lines.append(f"  MISSING  {part.name}: {part.answer} — {part.needed_by}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "parts": {k: dataclasses.asdict(p) for k, p in self.parts.items()}}


def check_url(url: str) -> str:
    """``url`` without a trailing slash, or TargetError: ``http://host:port[/prefix]``."""
    split = urlsplit(url)
    if split.scheme != "http" or not split.hostname or split.query or split.fragment:
        raise TargetError(
            f"--target must be http://HOST[:PORT][/PREFIX] (got {url!r}); the clients speak "
            "plain HTTP and ws:// to it"
        )
    return url.rstrip("/")


def server_unmeasured(url: str) -> str:
    """The ``server_unmeasured`` column of a row measured against ``url``."""
    return (
        f"external target {url}: the runner did not start the server, so its CPU, RSS and "
        "socket memory were not read (empty, not zero)"
    )


def for_target(cells: Iterable[Cell]) -> list[Cell]:
    """Each distinct cell once, its stack :data:`TARGET_STACK` (a scenario's stacks all
    mean the one target), in the scenario's order."""
    out: dict[str, Cell] = {}
    for cell in cells:
        moved = dataclasses.replace(cell, stack=TARGET_STACK)
        out.setdefault(moved.cell_id, moved)
    return list(out.values())


def _server_options(cell: Cell) -> str:
    """Why ``cell`` needs a server option the runner can only give a server it starts."""
    needs = []
    if cell.checks.server_active:
        needs.append("self-check server faults")
    if cell.hub != "memory":
        needs.append(f"hub = {cell.hub!r}")
    if cell.loop != "asyncio":
        needs.append(f"loop = {cell.loop!r}")
    if cell.heartbeat_s not in (None, EXTERNAL_HEARTBEAT_S):
        needs.append(f"heartbeat_s = {cell.heartbeat_s} (the target's is its own)")
    if not needs:
        return ""
    return f"an external target runs as deployed; the cell needs {', '.join(needs)}"


def probe(url: str, cells: Sequence[Cell]) -> TargetProbe:
    """Ask ``url`` for each part of the contract ``cells`` need (see the module doc)."""
    base = check_url(url)
    found = TargetProbe(base)
    protocols = dict.fromkeys(registry.transport(c.transport).protocol for c in cells)
    ticker = any(c.rate and not c.publishers for c in cells)
    publish = any(c.publishers and registry.transport(c.transport).protocol != "ws" for c in cells)
    add = found.parts.__setitem__
    status = _http(base, "GET", "/health")
    add("health", Part("GET /health", status == "200", status, "readiness only: every cell runs"))
    stats = _http(base, "GET", "/stats", want_json=True)
    add("stats", Part("GET /stats", stats == "200", stats, "ticker cells (the ticker's record)"))
    if ticker:
        answer = _http(base, "DELETE", "/control/ticker")
        ok = answer.split()[0] in {"200", "204", "405"}  # 405: the path exists (POST only)
        add("ticker", Part("POST /control/ticker", ok, answer, "ticker cells cannot run"))
    if publish:
        answer = _http(base, "POST", "/publish?topic=")  # an empty topic: refused, not published
        ok = answer.split()[0] in {"200", "400"}
        add("publish", Part("POST /publish", ok, answer, "chat cells on HTTP transports"))
    if stats == "200":
        found.history = _history(base)
    for protocol in protocols:
        name, answer, ok = _probe_protocol(base, protocol)
        add(protocol, Part(name, ok, answer, f"{protocol} cells cannot run"))
    return found


def _history(base: str) -> int | None:
    """The history per topic the target's /stats reports (``history``), else None."""
    try:
        with urllib.request.urlopen(base + "/stats", timeout=PROBE_TIMEOUT_S) as resp:
            value = json.loads(resp.read()).get("history")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _probe_protocol(base: str, protocol: str) -> tuple[str, str, bool]:
    """(part name, answer, ok) for one protocol's endpoint."""
    path = next(t.path for t in registry.transports() if t.protocol == protocol)
    if protocol == "ws":
        answer = _ws_upgrade(base, f"{path}?topic={PROBE_TOPIC}&since=0")
        return f"GET {path} (WebSocket upgrade, since=)", answer, answer.startswith("101")
    if protocol == "sse":
        answer, ctype = _stream_head(base, f"{path}?topic={PROBE_TOPIC}&since=0")
        ok = answer.startswith("200") and ctype.startswith("text/event-stream")
        return f"GET {path} (text/event-stream, since=)", f"{answer} {ctype}".strip(), ok
    answer = _http(base, "GET", f"{path}{_POLL_QUERY}", want_json=True, keys=("messages", "last"))
    return f"GET {path}?since=&timeout= (JSON batch)", answer, answer == "200"


def _http(
    base: str,
    method: str,
    target: str,
    *,
    want_json: bool = False,
    keys: tuple[str, ...] = (),
) -> str:
    """The status of one request as text ("200", "404 Not Found", or the error)."""
    req = urllib.request.Request(
        base + target, method=method, data=b"" if method == "POST" else None
    )
    try:
        with urllib.request.urlopen(req, timeout=PROBE_TIMEOUT_S) as resp:
            body = resp.read()
            if want_json:
                try:
                    obj = json.loads(body)
                except ValueError:
                    return "200 but not JSON"
                if not isinstance(obj, dict) or any(k not in obj for k in keys):
                    return f"200 but not a JSON object with {', '.join(keys) or 'fields'}"
            return str(resp.status)
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        return _unreachable(exc)


def _unreachable(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return f"unreachable ({reason})"


def _connect(base: str) -> tuple[socket.socket, str, str]:
    split = urlsplit(base)
    host, port = split.hostname or "", split.port or 80
    sock = socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S)
    return sock, f"{host}:{port}" if split.port else host, split.path


def _head(sock: socket.socket) -> str:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1")


def _ws_upgrade(base: str, target: str) -> str:
    """The status line's code and reason a WebSocket handshake at ``target`` gets."""
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        sock, host, prefix = _connect(base)
    except OSError as exc:
        return _unreachable(exc)
    with contextlib.closing(sock):
        request = (
            f"GET {prefix}{target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        try:
            sock.sendall(request.encode())
            head = _head(sock)
        except OSError as exc:
            return _unreachable(exc)
    status = head.split("\r\n", 1)[0].split(" ", 1)
    return status[1] if len(status) == 2 else f"no HTTP answer ({head[:60]!r})"


def _stream_head(base: str, target: str) -> tuple[str, str]:
    """(status, content type) of a streaming GET, read from its head only."""
    try:
        sock, host, prefix = _connect(base)
    except OSError as exc:
        return _unreachable(exc), ""
    with contextlib.closing(sock):
        request = (
            f"GET {prefix}{target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        try:
            sock.sendall(request.encode())
            head = _head(sock)
        except OSError as exc:
            return _unreachable(exc), ""
    lines = head.split("\r\n")
    status = lines[0].split(" ", 1)
    ctype = next(
        (
            v.strip()
            for k, _, v in (h.partition(":") for h in lines[1:])
            if k.lower() == "content-type"
        ),
        "",
    )
    return (status[1] if len(status) == 2 else "no HTTP answer"), ctype
