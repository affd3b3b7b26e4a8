"""A client of the registry HTTP API v2: connections, authentication, retries, errors.

One ``Client`` talks to one registry for one repository. A registry is *secure* (HTTPS only,
its certificate verified, CAs and client certificates from ``certs.d``) or *insecure*, as Docker
decides (``is_insecure``): insecure when declared so (``--tls-verify=false``, the configuration's
``insecure`` list by name or CIDR, a registry's own ``insecure = true``) and, undeclared, when
it is on the loopback (``localhost``, 127.0.0.0/8, ``::1``, or a name that resolves there); a
registry's own ``insecure = false`` makes even a loopback one secure. An insecure registry is
tried over HTTPS first, *without* verifying its certificate, then over plain HTTP when the TLS
handshake fails; once it has answered over TLS it is never asked in plain HTTP. A 401 answer's
``WWW-Authenticate`` challenge is followed: ``Basic`` with the stored (or given) credentials,
``Bearer`` by fetching a token from the realm for the repository's scope (anonymously when
there are no credentials). Connection errors, 429 and 5xx are retried with backoff.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import namedtuple

from rootless.base.errors import NotFound, RootlessError

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations are strings
if TYPE_CHECKING:
    import http.client
    import ssl
    from typing import BinaryIO

USER_AGENT = "rootless/0.1"
RETRIES = 4

Response = namedtuple("Response", "status headers body")


class RegistryError(RootlessError):
    """A registry refused or failed a request (the message names the reference); ``status``: the
    HTTP status when the registry answered one."""

    status = 0


class RegistryNotFound(RegistryError, NotFound):
    """The registry has no such repository, tag or manifest (404): Docker's 404 on the API, so a
    client can tell it (docker-py's NotFound)."""


# a 404's error code -> Docker's words (clients show them; docker-py's ImageNotFound knows some)
_NOT_FOUND_WORDS = {"MANIFEST_UNKNOWN": ("manifest for {ref} not found", "manifest unknown"),
                    "NAME_UNKNOWN": ("repository {repo} not found", "name unknown")}


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` -> ("bearer", {...})."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i = 0
    while i < len(rest):
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lstrip(",").strip()
        i = eq + 1
        if i < len(rest) and rest[i] == '"':
            end = rest.find('"', i + 1)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[i + 1:end]
            i = end + 1
        else:
            end = rest.find(",", i)
            end = len(rest) if end < 0 else end
            params[key.lower()] = rest[i:end].strip()
            i = end
        while i < len(rest) and rest[i] in ", ":
            i += 1
    return scheme.lower(), params


def _host(registry: str) -> str:
    """The host part of ``host[:port]`` (an IPv6 address without its brackets)."""
    if registry.startswith("["):
        return registry[1:registry.find("]")] if "]" in registry else registry[1:]
    if registry.count(":") == 1:
        return registry.partition(":")[0]
    return registry


def is_loopback(registry: str) -> bool:
    """Whether ``registry`` (host[:port]) names this machine's loopback: ``localhost``, an
    address of 127.0.0.0/8 or ``::1`` (no name is looked up)."""
    import ipaddress
    host = _host(registry)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Docker's default insecure-registry CIDRs (daemon.json adds to them, never removes them)
LOOPBACK_CIDRS = ("127.0.0.0/8", "::1/128")


def _addresses(host: str) -> list:
    """The IP addresses ``host`` is or resolves to (none when it does not resolve)."""
    import ipaddress
    import socket
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).partition("%")[0]))
        except ValueError:
            continue
    return out


def is_insecure(registry: str, listed: tuple[str, ...] | list[str] = (), setting: bool | None = None) -> bool:
    """Docker's decision (moby's ``isSecureIndex``) for ``registry`` (host[:port]): its own
    setting when there is one (a ``[registries."HOST"]`` table's ``insecure``, as Docker's
    per-index configuration), else insecure when ``listed`` names it, or when one of its addresses
    (a name is resolved) is in one of ``listed``'s CIDRs or on the loopback (127.0.0.0/8,
    ``::1``: Docker's defaults). Docker Hub is secure unless its own setting says otherwise."""
    import ipaddress
    if setting is not None:
        return setting
    if registry in listed:
        return True
    if registry in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        return False
    if is_loopback(registry):
        return True
    nets = []
    for text in (*LOOPBACK_CIDRS, *(x for x in listed if "/" in x)):
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return any(addr in net for addr in _addresses(_host(registry)) for net in nets
               if addr.version == net.version)


def service_config(listed: tuple[str, ...] | list[str] = (), registries: dict | None = None) -> dict:
    """``/info``'s ``RegistryConfig`` as Docker's daemon reports its registry settings: the
    listed CIDRs (once each) then its loopback defaults (``::1/128``, ``127.0.0.0/8``) in
    ``InsecureRegistryCIDRs``; one ``IndexConfigs`` entry per listed name (``Secure: false``),
    per registry table with its own ``insecure`` or ``mirrors``, and for Docker Hub (official,
    secure unless its table says otherwise, with its mirrors, also the top ``Mirrors``, as URLs).
    ``listed``/``registries``: the configuration's ``insecure`` list and registry tables."""
    import ipaddress
    registries = registries or {}
    cidrs: list[str] = []
    indexes: dict[str, dict] = {}
    for entry in (*listed, "::1/128", "127.0.0.0/8"):
        try:
            net = str(ipaddress.ip_network(entry, strict=False)) if "/" in entry else None
        except ValueError:
            continue
        if net is None:
            indexes[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
        elif net not in cidrs:
            cidrs.append(net)

    def url(mirror: str) -> str:  # Docker's form of a mirror; plain HTTP where it is insecure (no lookup)
        plain = mirror in listed or is_loopback(mirror) or any(
            addr in net for addr in _literal(_host(mirror)) for net in map(ipaddress.ip_network, cidrs)
            if addr.version == net.version)
        return f"{'http' if plain else 'https'}://{mirror}/"

    for host, table in sorted(registries.items()):
        if host == "docker.io" or not ({"insecure", "mirrors"} & set(table)):
            continue
        secure = not table.get("insecure", host in indexes)
        indexes[host] = {"Name": host, "Mirrors": [url(m) for m in table.get("mirrors", [])],
                         "Secure": secure, "Official": False}
    hub = registries.get("docker.io", {})
    mirrors = [url(m) for m in hub.get("mirrors", [])]
    indexes["docker.io"] = {"Name": "docker.io", "Mirrors": mirrors, "Secure": not hub.get("insecure", False),
                            "Official": True}
    return {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": cidrs, "IndexConfigs": indexes, "Mirrors": mirrors}


def _literal(host: str) -> list:
    """``host`` as an IP address (none when it is a name: nothing is looked up)."""
    import ipaddress
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return []


class Client:
    """``registry`` (host[:port]) and ``repository`` (path); ``creds``: (user, password) or None."""

    def __init__(self, registry: str, repository: str, creds: tuple[str, str] | None = None,
                 insecure: bool | None = None,
                 ca_dir: str | None = None, push: bool = False, ref_text: str = ""):
        self.registry = "registry-1.docker.io" if registry == "docker.io" else registry
        self.repository = repository
        self.creds = creds
        # None: Docker's default (insecure on the loopback); True/False: as the caller decided
        self.insecure = is_insecure(self.registry) if insecure is None else insecure
        self.ca_dir = ca_dir
        self.scope = f"repository:{repository}:{'pull,push' if push else 'pull'}"
        self.ref_text = ref_text or f"{registry}/{repository}"
        # an insecure registry: unverified HTTPS, then plain HTTP if it does not speak TLS
        self.schemes = ["https", "http"] if self.insecure else ["https"]
        self.auth_header: str | None = None
        self.local = threading.local()
        self.lock = threading.Lock()

    # ---- connections -------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        import ssl
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context()
        if self.ca_dir and os.path.isdir(self.ca_dir):
            for name in sorted(os.listdir(self.ca_dir)):
                if name.endswith(".crt"):
                    ctx.load_verify_locations(os.path.join(self.ca_dir, name))
            cert = [n for n in os.listdir(self.ca_dir) if n.endswith(".cert")]
            for c in cert:
                key = os.path.join(self.ca_dir, c[:-5] + ".key")
                if os.path.exists(key):
                    ctx.load_cert_chain(os.path.join(self.ca_dir, c), key)
        return ctx

    def _connection(self, scheme: str, host: str) -> http.client.HTTPConnection:
        import http.client
        conns = getattr(self.local, "conns", None)
        if conns is None:
            conns = self.local.conns = {}
        key = (scheme, host)
        conn = conns.get(key)
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, timeout=60, context=self._ssl_context())
            else:
                conn = http.client.HTTPConnection(host, timeout=60)
            conns[key] = conn
        return conn

    def _drop(self, scheme: str, host: str) -> None:
        conn = getattr(self.local, "conns", {}).pop((scheme, host), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in getattr(self.local, "conns", {}).values():
            conn.close()
        self.local.conns = {}

    # ---- requests ----------------------------------------------------------------------------
    def request(self, method: str, path: str, headers: dict | None = None,
                body: bytes | BinaryIO | None = None, ok: tuple[int, ...] = (200,), stream: bool = False,
                what: str = "") -> Response:
        """One API call, authenticated and retried; a Response (``body`` is the open
        HTTPResponse with ``stream``, else bytes)."""
        last: Exception | None = None
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(min(0.2 * 2 ** attempt, 3.0))
            try:
                resp = self._send(method, path, headers or {}, body, stream)
            except _Retry as e:
                last = e.error
                continue
            if resp.status == 401 and self._authenticate(resp.headers.get("WWW-Authenticate", "")):
                try:
                    resp = self._send(method, path, headers or {}, body, stream)
                except _Retry as e:
                    last = e.error
                    continue
            if resp.status in ok:
                return resp
            if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and \
                    resp.headers.get("Location"):
                try:  # blobs are often served from elsewhere (a CDN): no credentials go there
                    return self._follow(method, resp.headers["Location"], stream, headers or {})
                except OSError as e:
                    last = e
                    continue
            if resp.status == 429 or resp.status >= 500:
                last = self._error(resp, what)
                retry_after = resp.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    time.sleep(min(int(retry_after), 10))
                continue
            raise self._error(resp, what)
        if isinstance(last, RootlessError):
            raise last
        raise RegistryError(f"{self.ref_text}: cannot reach {self.registry}: {last}",
                            "check the registry's address and that it runs; for a plain-HTTP registry "
                            "use --tls-verify=false or list it under [registries] insecure")

    def _send(self, method: str, path: str, headers: dict, body: bytes | BinaryIO | None,
              stream: bool) -> Response:
        import http.client
        import socket
        import ssl
        h = {"User-Agent": USER_AGENT, **headers}
        if self.auth_header and "Authorization" not in h:
            h["Authorization"] = self.auth_header
        errors: list[Exception] = []
        for scheme in list(self.schemes):
            conn = self._connection(scheme, self.registry)
            try:
                if body is not None and not isinstance(body, bytes):  # a file: from its start on a retry
                    body.seek(0)
                conn.request(method, path, body=body, headers=h)
                resp = conn.getresponse()
            except ssl.SSLError as e:
                self._drop(scheme, self.registry)
                if scheme == "https" and len(self.schemes) > 1 and \
                        (self.insecure or not isinstance(e, ssl.SSLCertVerificationError)):
                    self.schemes = ["http"]  # an insecure registry speaking plain HTTP: stay with it
                    errors.append(e)
                    continue
                raise RegistryError(f"{self.ref_text}: TLS with {self.registry} failed: {e.reason or e}",
                                    "trust its CA (put ca.crt in the certs.d directory of the registry) or "
                                    "use --tls-verify=false") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop(scheme, self.registry)
                if scheme == "https" and len(self.schemes) > 1 and isinstance(e, (ConnectionResetError,
                                                                                 http.client.BadStatusLine,
                                                                                 socket.timeout)):
                    self.schemes = ["http"]
                    errors.append(e)
                    continue
                raise _Retry(e) from None
            if scheme == "https" and len(self.schemes) > 1:
                self.schemes = ["https"]  # it speaks TLS: never plain HTTP from now on (as Docker)
            if not stream:
                data = resp.read()
                return Response(resp.status, resp.headers, data)
            if resp.status >= 300:  # an error's body says why: keep it, there is no stream to give
                return Response(resp.status, resp.headers, resp.read())
            return Response(resp.status, resp.headers, resp)
        raise _Retry(errors[-1] if errors else OSError("no scheme left"))

    def _follow(self, method: str, location: str, stream: bool, headers: dict) -> Response:
        """The redirect's target, with the request's own headers (a Range) and no credentials."""
        import urllib.request
        from urllib.parse import urljoin
        scheme = self.schemes[0]
        url = urljoin(f"{scheme}://{self.registry}/", location)
        req = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT, **headers})
        ctx = self._ssl_context() if url.startswith("https:") and urljoin(url, "/") == f"https://{self.registry}/" \
            else None
        resp = urllib.request.urlopen(req, timeout=60, context=ctx)
        if stream:
            return Response(resp.status, resp.headers, resp)
        with resp:
            return Response(resp.status, resp.headers, resp.read())

    def _authenticate(self, challenge: str) -> bool:
        """Follow a 401's challenge; True when there is something new to try."""
        import base64
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic":
            if not self.creds:
                return False
            header = "Basic " + base64.b64encode(f"{self.creds[0]}:{self.creds[1]}".encode()).decode()
            if header == self.auth_header:
                return False
            self.auth_header = header
            return True
        if scheme == "bearer" and params.get("realm"):
            token = self._token(params)
            header = f"Bearer {token}"
            if header == self.auth_header:
                return False
            self.auth_header = header
            return True
        return False

    def _token(self, params: dict) -> str:
        import base64
        import urllib.error
        import urllib.parse
        import urllib.request
        query = {"scope": params.get("scope") or self.scope}
        if params.get("service"):
            query["service"] = params["service"]
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        if self.creds:
            req.add_header("Authorization", "Basic " + base64.b64encode(
                f"{self.creds[0]}:{self.creds[1]}".encode()).decode())
        ctx = self._ssl_context() if url.startswith("https:") else None
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise RegistryError(f"{self.ref_text}: the token service refused the credentials ({e.code})",
                                    f"log in again: rootless login {self.registry}") from None
            raise RegistryError(f"{self.ref_text}: the token service answered {e.code}") from None
        except (OSError, ValueError) as e:
            raise RegistryError(f"{self.ref_text}: cannot get a token from {params['realm']}: {e}") from None
        token = doc.get("token") or doc.get("access_token")
        if not token:
            raise RegistryError(f"{self.ref_text}: the token service gave no token")
        return token

    def _error(self, resp: Response, what: str) -> RegistryError:
        detail = ""
        try:
            body = resp.body if isinstance(resp.body, (bytes, bytearray)) else b""
            errs = json.loads(body).get("errors") or []
            if errs:
                detail = ": " + "; ".join(str(e.get("message") or e.get("code")) for e in errs)
        except (ValueError, AttributeError):
            pass
        err = self._docker_not_found(body, resp.status) if resp.status in (401, 403, 404) else None
        if err is None:
            err = self._status_error(resp.status, f"{self.ref_text}" + (f" ({what})" if what else ""), detail)
        err.status = resp.status
        return err

    def _docker_not_found(self, body: bytes | bytearray, status: int) -> RegistryError | None:
        """A 404 whose error code Docker words itself (``manifest for busybox:9 not found: manifest
        unknown: manifest unknown``), or a pull's DENIED (Docker Hub's answer for a repository that
        does not exist), else None."""
        from layers import reference
        try:
            first = (json.loads(body).get("errors") or [])[0]
            code, message = str(first.get("code") or ""), str(first.get("message") or "")
            ref = reference.parse(self.ref_text)
        except (ValueError, AttributeError, IndexError, TypeError, RootlessError):
            return None
        if code == "DENIED" and status in (401, 403) and self.scope.endswith(":pull"):
            return RegistryNotFound(f"pull access denied for {ref.familiar_repository}, repository does not exist "
                                    f"or may require 'docker login': denied: {message}",
                                    f"check the name, or log in first: rootless login {self.registry}")
        if code not in _NOT_FOUND_WORDS or status != 404:
            return None
        what, cause = _NOT_FOUND_WORDS[code]
        return RegistryNotFound(f"{what.format(ref=ref.familiar, repo=ref.familiar_repository)}: {cause}: {message}",
                                "check the name and tag (short names are looked for in registries.search, "
                                "default docker.io)")

    def _status_error(self, status: int, subject: str, detail: str) -> RegistryError:
        if status == 401:
            return RegistryError(f"{subject}: authentication required by {self.registry}{detail}",
                                 f"log in first: rootless login {self.registry}")
        if status == 403:
            return RegistryError(f"{subject}: access denied by {self.registry}{detail}",
                                 "check that this account may read (or write) the repository")
        if status == 404:
            return RegistryNotFound(f"{subject}: not found in {self.registry}{detail}",
                                 "check the name and tag (short names are looked for in registries.search, "
                                 "default docker.io)")
        if status == 429:
            return RegistryError(f"{subject}: {self.registry} is limiting requests (429 Too Many Requests)",
                                 "wait a while, or log in for a higher limit")
        return RegistryError(f"{subject}: {self.registry} answered {status}{detail}")


class _Retry(Exception):
    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error
