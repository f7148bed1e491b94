"""A loopback stand-in for the GitHub (and HACS catalog) calls of Home Assistant's Marketplace.

Home Assistant 2026.11's Marketplace (components/marketplace) talks to four hosts, all named in
its profiles.py and in aiogithubapi, over HTTPS with Home Assistant's own aiohttp session:

* github.com: the device flow that connects a GitHub account (POST /login/device/code, then
  POST /login/oauth/access_token until the user entered the code) and repository archives
  (GET /{owner}/{repo}/archive/refs/tags/{tag}.zip, or refs/heads/{branch}.zip);
* api.github.com: the REST API (GET /rate_limit, /repos/{r}, /repos/{r}/releases,
  /repos/{r}/git/trees/{ref}?recursive=true, /repos/{r}/contents/{path}?ref=,
  /repos/{r}/branches/{branch});
* raw.githubusercontent.com: single files (GET /{r}/{ref}/{path}: the README);
* data-v2.hacs.xyz: the catalog (GET /{category}/data.json, /removed/data.json,
  /critical/data.json).

The hosts are hard-coded (no option or variable points the Marketplace elsewhere), so nothing in
Home Assistant is changed; the machine around it is, for that one `hass` process only:

* names: `hass` runs in a mount namespace of its own (util-linux's `unshare`) whose /etc/hosts,
  bind-mounted over the real one, maps the four names to a loopback address where this server
  listens on port 443 (Home Assistant's resolvers, aiodns and getaddrinfo, read /etc/hosts);
* TLS: a certificate authority made for the run signs this server's certificate for the four
  names, and `hass` trusts that CA alone through REQUESTS_CA_BUNDLE, the variable Home Assistant
  reads for a custom CA bundle (homeassistant/util/ssl.py).

The stand-in serves this repository as a GitHub repository would: one release, tagged
v<manifest version>, whose tree and archive hold the files the Marketplace reads and installs
(hacs.json, README.md, LICENSE and custom_components/dsmr, as they are on disk). Every request is
recorded, and the account's token is checked on each API call.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import hashlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import io
import ipaddress
import json
from pathlib import Path
import secrets
import ssl
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit
import zipfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GITHUB = "github.com"
API = "api.github.com"
RAW = "raw.githubusercontent.com"
CATALOG = "data-v2.hacs.xyz"
HOSTS = (GITHUB, API, RAW, CATALOG)
CATALOG_CATEGORIES = ("integration", "plugin", "template", "theme")

# What a repository release of this project consists of, for the Marketplace's purposes.
SNAPSHOT_FILES = ("hacs.json", "README.md", "LICENSE")
SNAPSHOT_DIRS = ("custom_components",)


# --- TLS -----------------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_certificates(directory: Path, hostnames: tuple[str, ...] = HOSTS) -> tuple[Path, Path]:
    """A CA (ca.pem) and a server certificate for `hostnames` it signed (server.pem, key).

    Returns (ca.pem, server.pem); the server's key is server.key next to it. Both certificates
    carry what Python's strict verification (VERIFY_X509_STRICT) asks for.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("dsmr e2e test CA (loopback GitHub stand-in)")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(hostnames[0]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, server_file = directory / "ca.pem", directory / "server.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, server_file


# --- names -----------------------------------------------------------------------------------


def loopback_address() -> str:
    """A loopback address of its own (not 127.0.0.1), so that port 443 is free there."""
    return str(ipaddress.IPv4Address("127.64.0.0") + secrets.randbelow(65_000) + 2)


def write_hosts(path: Path, address: str, hostnames: tuple[str, ...] = HOSTS) -> Path:
    """An /etc/hosts that maps `hostnames` to `address` (and localhost to itself)."""
    path.write_text(
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
        f"{address} {' '.join(hostnames)}\n"
    )
    return path


def with_hosts_file(hosts: Path) -> list[str]:
    """A command prefix: run the command with `hosts` as its /etc/hosts, and nothing else changed.

    A new mount namespace (root only), made private so that the bind mount cannot propagate to
    the rest of the machine. Inside the project's chroot, / is not a mount point and cannot be
    made private; there every mount is private already (the scripts enter it with
    `unshare --propagation private`), which the command checks before it mounts anything.
    """
    script = (
        'mount --make-rprivate / 2>/dev/null || ! grep -q " shared:" /proc/self/mountinfo '
        '|| { echo "shared mounts: not changing /etc/hosts" >&2; exit 97; }; '
        'mount --bind "$0" /etc/hosts || exit 98; exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script, str(hosts)]


# --- the repository --------------------------------------------------------------------------


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


@dataclass
class RepositorySnapshot:
    """This project as a GitHub repository with one release (files read from disk)."""

    root: Path
    full_name: str
    version: str
    repo_id: int = 987_654_321
    default_branch: str = "main"
    files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Read the files a release of the repository holds, for the Marketplace's purposes."""
        for name in SNAPSHOT_FILES:
            self.files[name] = (self.root / name).read_bytes()
        for directory in SNAPSHOT_DIRS:
            for path in sorted((self.root / directory).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    self.files[path.relative_to(self.root).as_posix()] = path.read_bytes()

    @property
    def tag(self) -> str:
        """The release's tag."""
        return f"v{self.version}"

    @property
    def commit(self) -> str:
        """The release's commit (a hash of its files)."""
        digest = hashlib.sha1(usedforsecurity=False)
        for name, content in sorted(self.files.items()):
            digest.update(name.encode() + b"\0" + content)
        return digest.hexdigest()

    def tree(self) -> list[dict[str, Any]]:
        """The recursive git tree, in git's order (a directory before what it holds)."""
        nested: dict[str, Any] = {}
        for name in self.files:
            node = nested
            for part in name.split("/")[:-1]:
                node = node.setdefault(part + "/", {})
            node[name.rsplit("/", 1)[-1]] = name
        entries: list[dict[str, Any]] = []

        def walk(node: dict[str, Any], prefix: str) -> None:
            for key in sorted(node):
                value = node[key]
                if isinstance(value, dict):
                    path = prefix + key.rstrip("/")
                    sha = hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()
                    entries.append({"path": path, "mode": "040000", "type": "tree", "sha": sha})
                    walk(value, path + "/")
                else:
                    content = self.files[value]
                    entries.append(
                        {
                            "path": value,
                            "mode": "100644",
                            "type": "blob",
                            "sha": _git_blob_sha(content),
                            "size": len(content),
                        }
                    )

        walk(nested, "")
        return entries

    def archive(self) -> bytes:
        """The zip GitHub serves for the tag: everything below `<repo>-<version>/`."""
        prefix = f"{self.full_name.split('/')[1]}-{self.version}/"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(prefix, b"")
            for name, content in sorted(self.files.items()):
                archive.writestr(prefix + name, content)
        return buffer.getvalue()

    def repository(self) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}."""
        owner, name = self.full_name.split("/")
        return {
            "id": self.repo_id,
            "name": name,
            "full_name": self.full_name,
            "owner": {"login": owner, "id": 1, "type": "Organization"},
            "private": False,
            "html_url": f"https://github.com/{self.full_name}",
            "description": "DSMR / P1 smart meters for Home Assistant (replaces the built-in dsmr)",
            "fork": False,
            "created_at": "2026-10-01T00:00:00Z",
            "updated_at": "2026-11-29T00:00:00Z",
            "pushed_at": "2026-11-29T00:00:00Z",
            "stargazers_count": 0,
            "watchers_count": 0,
            "forks_count": 0,
            "open_issues_count": 0,
            "open_issues": 0,
            "has_issues": True,
            "archived": False,
            "disabled": False,
            "topics": ["home-assistant", "hacs", "dsmr", "p1", "smart-meter"],
            "visibility": "public",
            "default_branch": self.default_branch,
            "license": {"key": "mit", "name": "MIT License", "spdx_id": "MIT"},
        }

    def release(self) -> dict[str, Any]:
        """The one release."""
        return {
            "id": 1,
            "tag_name": self.tag,
            "name": self.tag,
            "draft": False,
            "prerelease": False,
            "created_at": "2026-11-29T00:00:00Z",
            "published_at": "2026-11-29T00:00:00Z",
            "assets": [],
            "body": "",
            "html_url": f"https://github.com/{self.full_name}/releases/tag/{self.tag}",
        }

    def refs(self) -> set[str]:
        """The names a file can be asked for by: the tag, the branch, the commit."""
        return {self.tag, self.default_branch, self.commit, self.commit[:7]}


# --- the server ------------------------------------------------------------------------------


@dataclass
class Request:
    """One request the stand-in answered."""

    method: str
    host: str
    path: str
    status: int
    token: str | None

    def __str__(self) -> str:
        """`GET https://api.github.com/repos/... -> 200`."""
        return f"{self.method} https://{self.host}{self.path} -> {self.status}"


class GitHubStandIn:
    """The four hosts on one HTTPS server, on `address`:443."""

    def __init__(self, repository: RepositorySnapshot, address: str, certs: Path) -> None:
        """Serve `repository`; `certs` holds server.pem and server.key (write_certificates)."""
        self.repository = repository
        self.address = address
        self.requests: list[Request] = []
        self.device_code = secrets.token_hex(20)
        self.user_code = f"{secrets.randbelow(10_000):04d}-{secrets.randbelow(10_000):04d}"
        self.token = f"gho_{secrets.token_hex(18)}"
        self.authorized = threading.Event()
        self._lock = threading.Lock()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certs / "server.pem", certs / "server.key")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen on `address`:443 (root: a port below 1024)."""
        server = ThreadingHTTPServer((self.address, 443), _handler(self))
        # Each answer closes its connection, so stop() can join every handler thread.
        server.daemon_threads = False
        server.block_on_close = True
        server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="github stand-in")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the handler threads; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def authorize(self, user_code: str) -> None:
        """The user enters the code at https://github.com/login/device and authorizes."""
        if user_code != self.user_code:
            raise AssertionError(f"the flow showed {user_code}, GitHub gave {self.user_code}")
        self.authorized.set()

    def record(self, request: Request) -> None:
        """Keep a request (from the server's threads)."""
        with self._lock:
            self.requests.append(request)

    def calls(self) -> list[str]:
        """The requests so far, as text."""
        with self._lock:
            return [str(r) for r in self.requests]

    # answers: (status, content type, body)

    def answer(self, method: str, host: str, url: str, token: str | None) -> tuple[int, str, bytes]:
        """The answer to one request; 404 for anything GitHub would not have either."""
        parts = urlsplit(url)
        path, query = parts.path, parse_qs(parts.query)
        if host == GITHUB:
            return self._github(method, path)
        if host == API and method == "GET":
            if token != self.token:
                return _json(401, {"message": "Bad credentials"})
            return self._api(path, query)
        if host == RAW and method == "GET":
            return self._raw(path)
        if host == CATALOG and method == "GET":
            return self._catalog(path)
        return _json(404, {"message": "Not Found"})

    def _github(self, method: str, path: str) -> tuple[int, str, bytes]:
        repo = self.repository
        if method == "POST" and path == "/login/device/code":
            return _json(
                200,
                {
                    "device_code": self.device_code,
                    "user_code": self.user_code,
                    "verification_uri": "https://github.com/login/device",
                    "expires_in": 900,
                    "interval": 1,
                },
            )
        if method == "POST" and path == "/login/oauth/access_token":
            if not self.authorized.is_set():
                return _json(200, {"error": "authorization_pending", "interval": 1})
            return _json(200, {"access_token": self.token, "token_type": "bearer", "scope": ""})
        archives = {
            f"/{repo.full_name}/archive/refs/tags/{repo.tag}.zip",
            f"/{repo.full_name}/archive/refs/heads/{repo.default_branch}.zip",
            f"/{repo.full_name}/archive/{repo.commit}.zip",
        }
        if method == "GET" and path in archives:
            return 200, "application/zip", repo.archive()
        return 404, "text/plain", b"Not Found"

    def _api(self, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        repo = self.repository
        base = f"/repos/{repo.full_name}"
        if path == "/rate_limit":
            core = {"limit": 5000, "remaining": 4990, "reset": 2_000_000_000, "used": 10}
            return _json(200, {"resources": {"core": core}, "rate": core})
        if path == base:
            return _json(200, repo.repository())
        if path == f"{base}/releases":
            return _json(200, [repo.release()])
        if path == f"{base}/releases/tags/{repo.tag}":
            return _json(200, repo.release())
        if path in {f"{base}/branches/{repo.default_branch}"}:
            return _json(200, {"name": repo.default_branch, "commit": {"sha": repo.commit}})
        if path.startswith(f"{base}/git/trees/") and path.removeprefix(f"{base}/git/trees/") in (
            repo.refs()
        ):
            return _json(200, {"sha": repo.commit, "tree": repo.tree(), "truncated": False})
        if path.startswith(f"{base}/contents/"):
            name = path.removeprefix(f"{base}/contents/")
            ref = query.get("ref", [repo.default_branch])[0]
            if name in repo.files and ref in repo.refs():
                content = repo.files[name]
                return _json(
                    200,
                    {
                        "type": "file",
                        "encoding": "base64",
                        "size": len(content),
                        "name": name.rsplit("/", 1)[-1],
                        "path": name,
                        "content": base64.b64encode(content).decode(),
                        "sha": _git_blob_sha(content),
                    },
                )
        return _json(404, {"message": "Not Found"})

    def _raw(self, path: str) -> tuple[int, str, bytes]:
        repo = self.repository
        prefix = f"/{repo.full_name}/"
        if path.startswith(prefix):
            ref, _, name = path.removeprefix(prefix).partition("/")
            if ref in repo.refs() and name in repo.files:
                return 200, "text/plain; charset=utf-8", repo.files[name]
        return 404, "text/plain", b"404: Not Found"

    def _catalog(self, path: str) -> tuple[int, str, bytes]:
        """The catalog lists no integration that replaces a built-in one, so not this one."""
        section = path.removeprefix("/").removesuffix("/data.json")
        if section in CATALOG_CATEGORIES:
            return _json(200, {})
        if section in {"removed", "critical"}:
            return _json(200, [])
        return _json(404, {"message": "Not Found"})


def _json(status: int, body: Any) -> tuple[int, str, bytes]:
    return status, "application/json; charset=utf-8", json.dumps(body).encode()


def _handler(standin: GitHubStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            host = (self.headers.get("Host") or "").split(":")[0]
            auth = self.headers.get("Authorization") or ""
            token = auth.split(" ", 1)[1] if " " in auth else None
            status, content_type, body = standin.answer(self.command, host, self.path, token)
            standin.record(Request(self.command, host, self.path, status, token))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are recorded, not printed."""

    return Handler
