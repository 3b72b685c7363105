"""TLS material for ``tls = true`` cells: a throwaway CA and a server certificate, made at
run time with the ``openssl`` command-line tool (no network), and the SSL contexts the
servers and clients build from them.

:func:`generate` writes into one directory (a run's ``tls/``): a self-signed CA
(``ca.pem``, its key ``ca.key``) and a leaf certificate for ``127.0.0.1``, ``::1`` and
``localhost`` signed by it (``cert.pem``, its key ``key.pem``; the CA's key is deleted
once it signed), both ECDSA P-256 with
SHA-256 (Caddy's and most ACME clients' default key today), valid for two days. The
server sends the leaf alone (no intermediate: a production chain's extra certificate,
~1 KB, is not in the handshake bytes measured here). The same :class:`TlsFiles` can be
handed to anything else that terminates TLS (a proxy in front: its config names
``cert`` and ``key``), and every client verifies against ``ca`` — verification is never
turned off.

The contexts are the library defaults of :mod:`ssl` (TLS 1.2 and 1.3, TLS 1.3 preferred,
the server's two session tickets): what a deployment gets without tuning. Only the
cipher the handshake agreed on is recorded per run, not chosen.
"""

from __future__ import annotations

import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from pushbench.procs import run_tool

__all__ = [
    "KEY_ALGORITHM",
    "OPENSSL_MISSING",
    "SERVER_NAMES",
    "TlsError",
    "TlsFiles",
    "client_context",
    "generate",
    "openssl",
    "server_context",
]

#: What the certificates' keys are (recorded with the run).
KEY_ALGORITHM = "ECDSA P-256, SHA-256"
#: The names the leaf certificate is valid for (subjectAltName).
SERVER_NAMES: tuple[str, ...] = ("IP:127.0.0.1", "IP:::1", "DNS:localhost")
OPENSSL_MISSING = (
    "tls = true needs the openssl command-line tool, which is not installed: run "
    "`make system-deps` (Debian package openssl)"
)
_DAYS = "2"
_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-sha256")
_LEAF_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\n"
    "subjectKeyIdentifier=hash\n"
    "authorityKeyIdentifier=keyid\n"
    f"subjectAltName={','.join(SERVER_NAMES)}\n"
)


class TlsError(RuntimeError):
    """The certificates could not be made (openssl missing or failing)."""


@dataclass(frozen=True)
class TlsFiles:
    """One CA and the server certificate it signed, as PEM files."""

    ca: Path  # the CA certificate: what clients verify against
    cert: Path  # the server's certificate (the leaf)
    key: Path  # the server's private key

    @classmethod
    def in_dir(cls, directory: Path) -> TlsFiles:
        """Where :func:`generate` puts the files in ``directory``."""
        return cls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")

    def exist(self) -> bool:
        return self.ca.is_file() and self.cert.is_file() and self.key.is_file()


def openssl() -> str | None:
    """The ``openssl`` executable, else None."""
    return shutil.which("openssl") or shutil.which("openssl", path="/usr/bin:/bin")


def generate(directory: Path) -> TlsFiles:
    """A fresh CA and leaf in ``directory`` (created), or the ones already there → the
    files; TlsError when openssl is missing or fails. ``directory`` is made absolute: openssl
    runs in it, so a relative one (the default ``--out results``) named its files twice."""
    directory = directory.resolve()
    files = TlsFiles.in_dir(directory)
    if files.exist():
        return files
    binary = openssl()
    if binary is None:
        raise TlsError(OPENSSL_MISSING)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, csr, ext = directory / "ca.key", directory / "leaf.csr", directory / "leaf.ext"
    ext.write_text(_LEAF_EXTENSIONS)
    steps = (
        [binary, "req", "-x509", *_KEY, "-days", _DAYS, "-keyout", str(ca_key),
         "-out", str(files.ca), "-subj", "/CN=pushbench throwaway CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [binary, "req", "-new", *_KEY, "-keyout", str(files.key), "-out", str(csr),
         "-subj", "/CN=localhost"],
        [binary, "x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey", str(ca_key),
         "-set_serial", "1", "-days", _DAYS, "-sha256", "-extfile", str(ext),
         "-out", str(files.cert)],
    )  # fmt: skip
    for argv in steps:
        if run_tool(argv, cwd=directory, timeout=30.0) is None:
            raise TlsError(f"openssl failed: {' '.join(argv[1:3])} … (in {directory})")
    files.key.chmod(0o600)
    for leftover in (ca_key, csr, ext):  # the CA signs nothing more: its key goes
        leftover.unlink()
    return files


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server side: ``ssl``'s defaults with this certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def client_context(ca: Path) -> ssl.SSLContext:
    """The client side: verifies the server's certificate and name against ``ca`` only."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
