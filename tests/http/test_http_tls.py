"""TLS through a pinned address: the certificate is verified for the name, and the server sees that name as SNI."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from http_servers import FakeDns, Server, _Handler

from toolkits.http import http_toolset

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA and a certificate for api.test only, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bridge test CA")
    run("req", *ec, "-keyout", "api.key", "-out", "api.csr", "-subj", "/CN=api.test")
    (d / "ext.cnf").write_text("subjectAltName=DNS:api.test\n")
    run("x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "api.pem",
        "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    return d


@pytest.fixture(scope="module")
def tls_server(certs: Path) -> Iterator[tuple[Server, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 presenting the api.test certificate and recording each SNI name."""
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "api.pem", certs / "api.key")
    context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc]

    class Https(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):  # type: ignore[no-untyped-def]
            sock, addr = super().get_request()
            return context.wrap_socket(sock, server_side=True), addr

        def handle_error(self, request: object, client_address: object) -> None:
            """Failed handshakes (the negative test) are expected."""

    httpd = Https(("127.0.0.1", 0), _Handler)
    httpd.record = Server("127.0.0.1", httpd.server_address[1])  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.record, seen  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def anyio_backend() -> str:
    """TLS over real sockets: asyncio is enough."""
    return "asyncio"


async def test_tls_verifies_the_name_while_connecting_to_the_pinned_ip(
    certs: Path, tls_server: tuple[Server, list[str | None]]
) -> None:
    """https://api.test pinned to 127.0.0.1 verifies the api.test certificate and sends SNI api.test."""
    server, seen = tls_server
    client_context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    dns = FakeDns({"api.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]})
    toolset = http_toolset(
        hosts=["api.test", "wrong.test"],
        ports=[server.port],
        allow_networks=["127.0.0.1/32"],
        resolver=dns,
        ssl_context=client_context,
    )
    ok = await toolset.call("http_get", {"url": f"https://api.test:{server.port}/hello"})
    assert not ok.is_error, ok.text
    assert f"for Host api.test:{server.port}" in ok.text
    assert seen[-1] == "api.test"
    wrong = await toolset.call("http_get", {"url": f"https://wrong.test:{server.port}/hello"})
    assert wrong.is_error
    assert "upstream_error" in wrong.text
    assert seen[-1] == "wrong.test"
