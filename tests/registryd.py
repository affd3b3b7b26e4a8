"""A real registry for the tests: Debian's ``docker-registry`` (distribution) on 127.0.0.1.

Each instance has its own port, storage directory and configuration: plain HTTP, TLS with a
CA the tests make (``openssl``) or a self-signed certificate (``tls="self-signed"``), or
htpasswd basic auth (bcrypt hashes from libcrypt).
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

EXE = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def bcrypt_hash(password: str) -> str:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1: (ca.crt, server.crt, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "2",
            "-subj", "/CN=rootless test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (server.crt, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, crt = directory / "server.key", directory / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return crt, key


class Registry:
    def __init__(self, base: Path, tls: bool | str = False, users: dict[str, str] | None = None, token=None,
                 address: str = "127.0.0.1", access_log: bool = False):
        """``address``: where it listens (the cluster tests': the test bed's bridge, which its nodes
        reach); ``access_log``: every request a line of ``registry.log`` (to count pulls)."""
        if not os.path.exists(EXE):
            pytest.fail("docker-registry is not installed (apt-get install docker-registry; scripts/setup.sh does)")
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port(address)
        self.host = f"{address}:{self.port}"
        self.storage = base / "data"
        self.ca = None
        lines = ["version: 0.1", "log:", "  level: error", "  accesslog:",
                 f"    disabled: {'false' if access_log else 'true'}", "storage:",
                 "  filesystem:", f"    rootdirectory: {self.storage}", "  delete:", "    enabled: true",
                 # foreign (non-distributable) layers may name URLs on this machine only
                 "validation:", "  manifests:", "    urls:", "      allow:", "        - '^http://127\\.0\\.0\\.1:'",
                 "http:", f"  addr: {self.host}"]
        if tls == "self-signed":  # its own CA
            crt, key = make_self_signed(base / "tls")
            self.ca = crt
            lines += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
        elif tls:
            self.ca, crt, key = make_ca(base / "tls")
            lines += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
        if token is not None:
            lines += ["auth:", "  token:", f"    realm: {token.realm}", f"    service: {token.service}",
                      f"    issuer: {token.issuer}", f"    rootcertbundle: {token.cert}"]
        if users:
            htpasswd = base / "htpasswd"
            htpasswd.write_text("".join(f"{u}:{bcrypt_hash(p)}\n" for u, p in users.items()))
            lines += ["auth:", "  htpasswd:", "    realm: rootless-test", f"    path: {htpasswd}"]
        self.config = base / "config.yml"
        self.config.write_text("\n".join(lines) + "\n")
        self.scheme = "https" if tls else "http"
        self.log = open(base / "registry.log", "wb")
        self.proc = subprocess.Popen([EXE, "serve", str(self.config)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self._wait()

    def _wait(self) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                pytest.fail(f"docker-registry exited: {(self.base / 'registry.log').read_text()}")
            try:
                urllib.request.urlopen(f"{self.scheme}://{self.host}/v2/", timeout=2, context=ctx)
                return
            except urllib.error.HTTPError:
                return  # 401 with auth: it answers
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("docker-registry did not start")

    def blob_path(self, digest: str) -> Path:
        hexd = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def api(registry: Registry, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
    """One raw registry API call (plain HTTP registries): (status, headers, body)."""
    import urllib.error
    req = urllib.request.Request(f"http://{registry.host}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def upload_blob(registry: Registry, repo: str, data: bytes) -> str:
    """Put ``data`` into ``repo`` as a blob (monolithic upload); its digest."""
    import hashlib
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    status, headers, _ = api(registry, "POST", f"/v2/{repo}/blobs/uploads/")
    assert status == 202, status
    loc = headers["Location"].split(registry.host, 1)[-1]
    status, _, body = api(registry, "PUT", loc + ("&" if "?" in loc else "?") + f"digest={digest}", data,
                          {"Content-Type": "application/octet-stream"})
    assert status == 201, (status, body)
    return digest


def put_manifest(registry: Registry, repo: str, tag: str, doc: dict) -> None:
    import json
    status, _, body = api(registry, "PUT", f"/v2/{repo}/manifests/{tag}", json.dumps(doc).encode(),
                          {"Content-Type": doc["mediaType"]})
    assert status == 201, (status, body)


def _b64url(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A token service as the distribution token spec describes it: GET /token?service=&scope=
    answers a JWT (RS256, the signing certificate in ``x5c``) granting the scope's actions to a
    user with the right password, and only ``pull`` to anyone else."""

    def __init__(self, base: Path, users: dict[str, str], service: str = "rootless-test", issuer: str = "test-issuer"):
        import http.server
        import threading
        base.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = base / "token.key", base / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "2", "-subj", "/CN=token signer"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        import base64
        self.x5c = base64.b64encode(der).decode()
        self.users, self.service, self.issuer = users, service, issuer
        self.requests: list[tuple[str, str]] = []  # (user or "", scope)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer._answer(self)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _answer(self, h) -> None:
        import base64
        import json
        from urllib.parse import parse_qs, urlsplit
        q = parse_qs(urlsplit(h.path).query)
        user = ""
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.users.get(name) != password:
                h.send_response(401)
                h.end_headers()
                return
            user = name
        scope = q.get("scope", [""])[0]
        self.requests.append((user, scope))
        access = []
        if scope:
            kind, name, actions = scope.split(":")
            granted = actions.split(",") if user else [a for a in actions.split(",") if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user, "aud": q.get("service", [self.service])[0], "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(now) + str(len(self.requests)), "access": access}
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing_input.encode(),
                             check=True, capture_output=True).stdout
        body = json.dumps({"token": f"{signing_input}.{_b64url(sig)}", "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FaultyProxy:
    """An HTTP proxy in front of a real registry that answers some requests with an error first:
    ``faults`` maps a path substring to a list of statuses used up one request at a time (then
    requests pass through); ``always`` maps a path substring to a status given every time;
    ``stall`` maps a path substring to an event: the first half of such a GET's body is sent, the
    rest only once the event is set. ``cut`` maps a path substring to a count: that many answers
    to such a GET (200 or 206) break off after half their body (the connection is closed);
    ``ignore_range`` drops Range headers, as a server without range support. ``ranges``: the
    Range headers asked for, in order."""

    def __init__(self, registry: Registry, faults: dict[str, list[int]] | None = None,
                 always: dict[str, int] | None = None, redirect_blobs: bool = False,
                 stall: dict | None = None, cut: dict[str, int] | None = None, ignore_range: bool = False):
        import http.client
        import http.server
        import threading
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.always = dict(always or {})
        self.seen: list[tuple[str, str, int]] = []
        self.cut = dict(cut or {})
        self.ranges: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self):
                if redirect_blobs and self.command == "GET" and "/blobs/sha256:" in self.path:
                    outer.seen.append((self.command, self.path, 307))
                    self.send_response(307)  # as registries send blobs to a CDN
                    self.send_header("Location", f"http://{registry.host}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = outer._fault(self.path)
                if status:
                    outer.seen.append((self.command, self.path, status))
                    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}'
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(registry.host, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if "Range" in self.headers:
                    outer.ranges.append(self.headers["Range"])
                    if ignore_range:
                        headers = {k: v for k, v in headers.items() if k.lower() != "range"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                outer.seen.append((self.command, self.path, resp.status))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v.replace(registry.host, outer.host))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                gate = next((ev for key, ev in (stall or {}).items() if key in self.path), None)
                cut_key = next((key for key, n in outer.cut.items() if key in self.path and n), None)
                if self.command == "HEAD":
                    pass
                elif cut_key is not None and self.command == "GET" and resp.status in (200, 206):
                    outer.cut[cut_key] -= 1
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif gate is not None and self.command == "GET":
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    gate.wait(60)
                    self.wfile.write(data[len(data) // 2:])
                else:
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _relay
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _fault(self, path: str) -> int:
        for key, status in self.always.items():
            if key in path:
                return status
        for key, statuses in self.faults.items():
            if key in path and statuses:
                return statuses.pop(0)
        return 0

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
