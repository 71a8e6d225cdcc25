"""WS-Discovery of ONVIF devices: a Probe, by multicast on 239.255.255.250:3702 or by unicast to one address.

Implemented with the stdlib ``socket`` and ``defusedxml`` rather than the ``WSDiscovery`` package, which was
tried first and cannot serve here: it reads the answers to a unicast (directed) probe on no socket at all (they
are lost), and it never sends a multicast probe on a loopback interface (its address monitor drops loopback
addresses), so neither ``--address`` nor a test on 127.0.0.1 can work with it. A probe is one UDP datagram and
its ProbeMatches are small SOAP messages; 150 lines do it, with no threads.

Multicast probes go out with TTL 1 (the local link, never routed), once for ``dn:NetworkVideoTransmitter`` and once
for ``tds:Device`` (older cameras advertise only the first, NVRs only the second), each sent twice, as WS-Discovery
recommends for UDP; answers are merged by endpoint reference. Untrusted datagrams are parsed by defusedxml (no
entities, no DTDs); a datagram that is not a ProbeMatches is ignored, and a unicast target that sent only such
datagrams is reported as answering garbage.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element

from defusedxml import ElementTree

from vigil.errors import VigilError

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
#: the WS-Discovery version ONVIF uses (2005/04), and its WS-Addressing
NS_DISCOVERY = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
NS_ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
PROBE_TYPES = ("dn:NetworkVideoTransmitter", "tds:Device")
_SCOPE_PREFIX = "onvif://www.onvif.org/"

_PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="{addressing}" xmlns:d="{discovery}"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
<s:Header><a:MessageID>{message_id}</a:MessageID>
<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
<a:Action s:mustUnderstand="1">{discovery}/Probe</a:Action></s:Header>
<s:Body><d:Probe><d:Types>{types}</d:Types></d:Probe></s:Body></s:Envelope>"""


class OnvifError(VigilError):
    """An ONVIF device cannot be found or read; the message is one line naming the device's address."""


@dataclass
class Profile:
    """One media profile of a device, with its RTSP stream URI (credentials never embedded)."""

    token: str
    name: str
    encoding: str = ""
    width: int = 0
    height: int = 0
    fps: float | None = None
    bitrate_kbps: int | None = None
    uri: str = ""


@dataclass
class Device:
    """A device that answered a probe (or an address that did not: then ``error`` says why)."""

    address: str  # host:port of the device service, or the probed address
    xaddrs: list[str] = field(default_factory=list)
    endpoint: str = ""  # its WS-Addressing endpoint reference, e.g. urn:uuid:…
    types: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    info: dict[str, str] = field(default_factory=dict)  # GetDeviceInformation: manufacturer, model, …
    profiles: list[Profile] = field(default_factory=list)
    error: str | None = None

    def scope(self, kind: str) -> list[str]:
        """The values of its ``onvif://www.onvif.org/<kind>/...`` scopes, URL-decoded."""
        prefix = f"{_SCOPE_PREFIX}{kind}/"
        return [unquote(s[len(prefix):]) for s in self.scopes if s.lower().startswith(prefix.lower())]

    @property
    def name(self) -> str:
        return " ".join(self.scope("name")).strip()

    @property
    def hardware(self) -> str:
        return " ".join(self.scope("hardware")).strip()

    @property
    def location(self) -> str:
        return ", ".join(self.scope("location"))

    @property
    def xaddr(self) -> str:
        """The device service URL to use: an http(s) XAddr on the host that answered, else the first one."""
        host = self.address.rsplit(":", 1)[0].strip("[]")
        urls = [x for x in self.xaddrs if x.startswith(("http://", "https://"))]
        return next((x for x in urls if urlsplit(x).hostname == host), urls[0] if urls else "")


def split_address(address: str, default_port: int = PORT) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) → ``(host, port)``; a bad one is an ``OnvifError``."""
    text = address.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(address, rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, rest = text.split(":")
        port = _port(address, rest)
    if not host:
        raise OnvifError(f"--address {address!r}: no host (expected HOST or HOST:PORT)")
    return host, port


def _port(address: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise OnvifError(f"--address {address!r}: bad port {text!r}")
    return int(text)


def probe_messages() -> dict[str, bytes]:
    """One Probe per type, keyed by its MessageID."""
    messages = {}
    for kind in PROBE_TYPES:
        message_id = f"uuid:{uuid.uuid4()}"
        messages[message_id] = _PROBE.format(addressing=NS_ADDRESSING, discovery=NS_DISCOVERY,
                                             message_id=message_id, types=kind).encode()
    return messages


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: Element, name: str) -> Element | None:
    return next((c for c in node if _local(c.tag) == name), None)


def _words(node: Element | None, name: str) -> list[str]:
    found = _child(node, name) if node is not None else None
    return (found.text or "").split() if found is not None else []


def parse_probe_matches(data: bytes, sender: str) -> list[Device] | None:
    """The devices in a ProbeMatches datagram from ``sender`` (host:port); None when it is not one."""
    try:
        root = ElementTree.fromstring(data)
    except Exception:  # defusedxml's and expat's errors: garbage or a forbidden construct
        return None
    body = _child(root, "Body") if _local(root.tag) == "Envelope" else None
    matches = _child(body, "ProbeMatches") if body is not None else None
    if matches is None:
        return None
    devices = []
    for match in matches:
        if _local(match.tag) != "ProbeMatch":
            continue
        epr = _child(match, "EndpointReference")
        address = _child(epr, "Address") if epr is not None else None
        endpoint = (address.text or "").strip() if address is not None else ""
        device = Device(address=sender, xaddrs=_words(match, "XAddrs"), endpoint=endpoint,
                        types=_words(match, "Types"), scopes=_words(match, "Scopes"))
        device.address = _service_address(device.xaddr) or sender  # xaddr prefers the sender's host
        devices.append(device)
    return devices


def _service_address(xaddr: str) -> str:
    if not xaddr:
        return ""
    parts = urlsplit(xaddr)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _merge(found: dict[str, Device], devices: list[Device]) -> None:
    for device in devices:
        key = device.endpoint or device.address
        if key in found:
            known = found[key]
            known.types += [t for t in device.types if t not in known.types]
            known.xaddrs += [x for x in device.xaddrs if x not in known.xaddrs]
            known.scopes += [s for s in device.scopes if s not in known.scopes]
        else:
            found[key] = device


def discover(addresses: list[str] | None = None, timeout: float = 3.0, interface: str | None = None) -> list[Device]:
    """Probe by multicast (no ``addresses``) or by unicast to each ``HOST[:PORT]``; wait ``timeout`` seconds.

    Multicast returns the devices that answered (none is not an error). Unicast returns one entry per address:
    the device(s) it answered with, or a ``Device`` whose ``error`` says that it did not answer or answered
    garbage. ``interface`` is the local IPv4 address to send multicast probes from (default: the system's route).
    """
    messages = probe_messages()
    found: dict[str, Device] = {}
    failed: list[Device] = []
    selector = selectors.DefaultSelector()
    targets: dict[socket.socket, str] = {}  # unicast socket → the address as given
    with contextlib.ExitStack() as stack:
        if not addresses:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            try:
                if interface:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
                sock.bind((interface or "", 0))
            except OSError as exc:
                raise OnvifError(f"--interface {interface}: not an IPv4 address of this machine "
                                 f"({exc.strerror or exc})") from None
            selector.register(sock, selectors.EVENT_READ)
            sends = [(sock, (MULTICAST_GROUP, PORT))]
        else:
            sends = []
            for given in addresses:
                host, port = split_address(given)
                try:
                    family, _, _, _, target = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
                except socket.gaierror as exc:
                    failed.append(Device(address=given, error=f"ONVIF device {given}: unknown host ({exc.strerror})"))
                    continue
                sock = stack.enter_context(socket.socket(family, socket.SOCK_DGRAM))
                sock.connect(target)  # so that an ICMP "port unreachable" is reported, and only its answers read
                selector.register(sock, selectors.EVENT_READ)
                targets[sock] = given
                sends.append((sock, None))
        answered: set[socket.socket] = set()
        garbage: set[socket.socket] = set()
        refused: set[socket.socket] = set()
        for repeat in range(2):
            for sock, target in sends:
                for data in messages.values():
                    try:
                        if target is None:
                            sock.send(data)
                        else:
                            sock.sendto(data, target)
                    except OSError as exc:
                        if target is not None:  # multicast cannot go out at all
                            raise OnvifError(f"WS-Discovery: cannot send a multicast probe ({exc.strerror}); "
                                             "give --interface or --address") from None
                        refused.add(sock)
            if repeat == 0:
                time.sleep(0.05)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if addresses and all(s in answered or s in refused for s in targets):
                break  # every unicast target has answered: no need to wait the whole timeout
            for key, _ in selector.select(left):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data, peer = sock.recvfrom(65536)
                except ConnectionRefusedError:
                    refused.add(sock)
                    continue
                except OSError:
                    continue
                devices = parse_probe_matches(data, f"{_host(peer[0])}:{peer[1]}")
                if devices is None:
                    garbage.add(sock)
                    continue
                answered.add(sock)
                _merge(found, devices)
        for sock, given in targets.items():
            if sock in answered:
                continue
            if sock in refused:
                why = "unreachable (nothing listens on its WS-Discovery port)"
            elif sock in garbage:
                why = "answered the WS-Discovery probe with something that is not a ProbeMatches"
            else:
                why = f"no answer to a WS-Discovery probe within {timeout:g} s (not an ONVIF device, or offline)"
            failed.append(Device(address=given, error=f"ONVIF device {given}: {why}"))
    return [*found.values(), *failed]


def _host(host: str) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host
