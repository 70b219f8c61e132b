"""Fetching URLs typed by users safely (issue 6, item 3): each refusal happens before any
connection. The resolver is stubbed and any real connect to a non-loopback address fails the
test, so these tests never send a packet outside 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from connectors.http import FetchError, UnsafeURLError, address_problem, check_url, fetch
from tests.conftest import Route

ICS = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"
FAST = {"retries": 0, "backoff": 0.01, "host_delay": 0}


class Network:
    """A stub resolver plus a connect spy: names map to lists of answers (one per lookup)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []
        self.connects: list[tuple] = []
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect
        network = self

        def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
            host = str(host)
            network.lookups.append(host)
            if host in network.answers:
                queue = network.answers[host]
                addresses = queue.pop(0) if len(queue) > 1 else queue[0]
                return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6,
                         "", (a, port) if ":" not in a else (a, port, 0, 0)) for a in addresses]
            if host in ("127.0.0.1", "::1", "localhost"):  # no packet leaves the machine
                return real_getaddrinfo(host, port, *args, **kwargs)
            pytest.fail(f"unexpected DNS lookup of {host!r}")

        def connect(sock, address):  # type: ignore[no-untyped-def]
            network.connects.append(address)
            if address[0] != "127.0.0.1":
                pytest.fail(f"a connection to {address!r} was attempted")
            return real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: pytest.fail(
            f"connect_ex to {address!r}"))

    def name(self, host: str, *answers: list[str]) -> None:
        self.answers[host] = list(answers)


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch) -> Network:
    monkeypatch.delenv("TISSU_ALLOW_LOOPBACK_FETCH", raising=False)
    return Network(monkeypatch)


REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "réseau privé"),
    ("172.16.0.9", "réseau privé"),
    ("192.168.1.1", "réseau privé"),
    ("fd12:3456::1", "réseau privé"),
    ("169.254.169.254", "métadonnées"),
    ("fd00:ec2::254", "métadonnées"),
    ("100.100.100.200", "métadonnées"),
    ("169.254.10.20", "lien-local"),
    ("fe80::1", "lien-local"),
    ("224.0.0.251", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "réseau privé"),  # 240/4 "reserved": Python lists it as private
    ("0.0.0.0", "non spécifiée"),
    ("::", "non spécifiée"),
    ("100.64.0.1", "pas une adresse publique"),  # carrier-grade NAT
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "métadonnées"),
    ("2002:a00:1::", "réseau privé"),  # 6to4 wrapping 10.0.0.1
    ("64:ff9b::a9fe:a9fe", "métadonnées"),  # NAT64 wrapping 169.254.169.254
]


@pytest.mark.parametrize(("address", "reason"), REFUSED, ids=[a for a, _ in REFUSED])
def test_each_unsafe_address_is_refused_without_connecting(net, address, reason):
    net.name("calendrier.example.org", [address])
    with pytest.raises(UnsafeURLError, match=reason) as caught:
        fetch("https://calendrier.example.org/agenda.ics", **FAST)
    assert "adresse refusée pour calendrier.example.org" in str(caught.value)
    assert net.connects == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/",
                                 "http://[fd00:ec2::254]/", "http://127.0.0.1:8001/",
                                 "http://[::1]/", "http://0.0.0.0/"])
def test_literal_addresses_are_refused(net, url):
    with pytest.raises(UnsafeURLError):
        fetch(url, **FAST)
    assert net.connects == []


@pytest.mark.parametrize(("url", "words"), [
    ("ftp://example.org/agenda.ics", "« ftp: »"),
    ("file:///etc/passwd", "« file: »"),
    ("gopher://example.org:70/", "« gopher: »"),
    ("javascript:alert(1)", "« javascript: »"),
    ("data:text/calendar,BEGIN:VCALENDAR", "« data: »"),
])
def test_only_http_and_https(net, url, words):
    with pytest.raises(UnsafeURLError, match="seuls http:// et https://") as caught:
        fetch(url, allow_local=False, **FAST)
    assert words in str(caught.value)
    assert net.lookups == [] and net.connects == []


def test_a_local_path_is_refused_for_user_urls(net):
    with pytest.raises(UnsafeURLError, match="aucun protocole"):
        fetch("/etc/passwd", allow_local=False, **FAST)


def test_credentials_in_the_url_are_refused(net):
    with pytest.raises(UnsafeURLError, match="identifiant ou un mot de passe"):
        fetch("https://admin:secret@example.org/agenda.ics", **FAST)
    assert net.lookups == [] and net.connects == []


def test_a_name_mixing_public_and_private_answers_is_refused(net):
    net.name("mixte.example.org", ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(UnsafeURLError, match="10.0.0.7"):
        fetch("https://mixte.example.org/", **FAST)
    assert net.connects == []


def test_dns_rebinding_between_check_and_connect_is_refused(net):
    # First lookup (the check) says public, the next one (at connect time) says private.
    net.name("rebind.example.org", ["93.184.216.34"], ["10.0.0.1"])
    with pytest.raises(UnsafeURLError, match="10.0.0.1"):
        fetch("http://rebind.example.org/agenda.ics", **FAST)
    assert net.lookups == ["rebind.example.org", "rebind.example.org"]
    assert net.connects == []


def test_unknown_name_is_a_plain_error(net, monkeypatch):
    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(FetchError, match="nom de domaine introuvable : nulle-part.example"):
        fetch("http://nulle-part.example/agenda.ics", **FAST)
    assert net.connects == []


def test_check_url_returns_the_address_and_connects_nowhere(net):
    net.name("agenda.example.org", ["93.184.216.34"])
    assert check_url("https://agenda.example.org/a.ics") == "93.184.216.34"
    assert net.connects == []
    with pytest.raises(UnsafeURLError):
        check_url("http://localhost.example.org.invalid@127.0.0.1/")


# ------------------------------------------------- redirects, pinning, loopback for tests


def test_redirect_to_a_metadata_address_is_refused_at_the_redirect(net, http_server,
                                                                   monkeypatch):
    monkeypatch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
    net.name("metadata.example.org", ["169.254.169.254"])
    http_server.routes["/go"] = Route(
        b"", status=302, headers={"Location": "http://metadata.example.org/latest/meta-data/"})
    with pytest.raises(UnsafeURLError, match="métadonnées"):
        fetch(http_server.url("/go"), **FAST)
    assert http_server.hits == {"/go": 1}
    assert [address[0] for address in net.connects] == ["127.0.0.1"]


def test_redirect_to_another_scheme_is_refused(net, http_server, monkeypatch):
    monkeypatch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
    http_server.routes["/go"] = Route(b"", status=301, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(UnsafeURLError, match="« file: »"):
        fetch(http_server.url("/go"), **FAST)


def test_redirect_to_loopback_is_refused_when_loopback_is_not_allowed(net, monkeypatch):
    # A public name whose server redirects to 127.0.0.1: refused at the first hop here, since
    # the stub network only answers on loopback; the point is that the guard is consulted.
    net.name("public.example.org", ["127.0.0.1"])
    with pytest.raises(UnsafeURLError, match="loopback"):
        fetch("http://public.example.org/", **FAST)
    assert net.connects == []


def test_connection_goes_to_the_checked_address_with_the_name_as_host(net, http_server,
                                                                      monkeypatch):
    monkeypatch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
    port = http_server.httpd.server_address[1]
    net.name("feeds.example.org", ["127.0.0.1"])
    http_server.routes["/agenda.ics"] = Route(ICS)
    result = fetch(f"http://feeds.example.org:{port}/agenda.ics", **FAST)
    assert result.content == ICS
    assert http_server.requests[-1]["host"] == f"feeds.example.org:{port}"
    assert net.connects == [("127.0.0.1", port)]
    # the name was only ever resolved by the guard; the socket got the literal address
    assert [host for host in net.lookups if host != "127.0.0.1"] == ["feeds.example.org"] * 2


def test_loopback_flag_allows_loopback_and_nothing_else(net, monkeypatch):
    monkeypatch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
    assert address_problem("127.0.0.1") is None
    assert address_problem("::1") is None
    for address in ("10.0.0.1", "169.254.169.254", "192.168.0.1", "fe80::1", "0.0.0.0"):
        assert address_problem(address) is not None
    net.name("intranet.example.org", ["192.168.0.10"])
    with pytest.raises(UnsafeURLError, match="réseau privé"):
        fetch("http://intranet.example.org/", **FAST)
    assert net.connects == []


def test_environment_proxies_and_netrc_are_ignored(net, http_server, monkeypatch, tmp_path):
    monkeypatch.setenv("TISSU_ALLOW_LOOPBACK_FETCH", "1")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login admin password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    monkeypatch.setenv("http_proxy", "http://10.9.9.9:3128")
    http_server.routes["/a.ics"] = Route(ICS)
    assert fetch(http_server.url("/a.ics"), **FAST).content == ICS
    assert "authorization" not in http_server.requests[-1]
    assert all(address[0] == "127.0.0.1" for address in net.connects)


def test_public_addresses_pass(net):
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert address_problem(address, allow_loopback=False) is None
