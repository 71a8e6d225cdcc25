"""A simulated ONVIF camera on 127.0.0.1 for tests: the device and media SOAP services and a WS-Discovery responder.

``SimulatedCamera`` serves, in threads of the test process:

- HTTP ``/onvif/device_service`` (GetSystemDateAndTime, GetCapabilities, GetServices, GetDeviceInformation) and
  ``/onvif/media_service`` (GetProfiles: ``main`` 1920x1080 H264 and ``sub`` 640x360 H264; GetStreamUri:
  ``rtsp://127.0.0.1:<rtsp_port>/main`` and ``/sub``). Every call but the three pre-auth ones (ONVIF's PRE_AUTH
  class: GetSystemDateAndTime, GetCapabilities, GetServices) needs a WS-Security UsernameToken whose
  PasswordDigest matches the known user and password, with a fresh nonce and a ``Created`` within 5 s of the
  device's clock (which may be set off by ``clock_offset_s``); otherwise it answers the SOAP fault
  ``env:Sender / ter:NotAuthorized`` with HTTP 400, as cameras do.
- UDP WS-Discovery: a Probe gets a ProbeMatches whose XAddrs point to the HTTP server and whose scopes carry the
  name, hardware and location. It listens on 127.0.0.1:<ephemeral> for unicast probes, or with
  ``multicast=True`` on 239.255.255.250:3702 (only ever inside a private network namespace, see the tests).

Run as a script (``python tests/onvif_device.py [--multicast] -- CMD ...``) it serves the camera, runs CMD with
the same stdin and returns its exit code: the multicast test runs both inside ``unshare -n``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import socket
import struct
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree
from xml.sax.saxutils import escape

SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PRE_AUTH = {"GetSystemDateAndTime", "GetCapabilities", "GetServices"}
NAMESPACES = (f'xmlns:env="{SOAP}" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
              'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema" '
              'xmlns:ter="http://www.onvif.org/ver10/error"')
PROFILES = [("main", "MainStream", 1920, 1080, 25, 4096), ("sub", "SubStream", 640, 360, 15, 512)]


def _envelope(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {NAMESPACES}><env:Body>{body}</env:Body>' \
           '</env:Envelope>'.encode()


def _fault(subcode: str, reason: str) -> bytes:
    return _envelope(f"<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>{subcode}"
                     f'</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">{reason}</env:Text>'
                     "</env:Reason></env:Fault>")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class SimulatedCamera:
    """One ONVIF camera (see the module docstring); ``with SimulatedCamera() as cam:`` starts and stops it."""

    def __init__(self, user: str = "admin", password: str = "walnut-kayak-73", name: str = "Front Gate",
                 hardware: str = "SIM-1080", location: str = "city/Leeds", rtsp_port: int = 8554,
                 clock_offset_s: float = 0.0, capabilities: bool = True, garbage: bool = False,
                 multicast: bool = False) -> None:
        self.user, self.password = user, password
        self.name, self.hardware, self.location = name, hardware, location
        self.rtsp_port, self.clock_offset = rtsp_port, dt.timedelta(seconds=clock_offset_s)
        self.capabilities, self.garbage, self.multicast = capabilities, garbage, multicast
        self.endpoint = f"urn:uuid:{uuid.uuid4()}"
        self.calls: list[tuple[str, bool]] = []  # (action, authenticated) of each SOAP call
        self.probes = 0
        self._nonces: set[str] = set()
        self._http: ThreadingHTTPServer | None = None
        self._udp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> SimulatedCamera:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, body, kind = camera.answer(self.path, self.rfile.read(length))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if self.multicast:
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._udp.bind(("", 3702))
            group = struct.pack("4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton("0.0.0.0"))
            self._udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
        else:
            self._udp.bind(("127.0.0.1", 0))
        self._threads = [threading.Thread(target=self._http.serve_forever, daemon=True),
                         threading.Thread(target=self._discovery, daemon=True)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._udp is not None:
            self._udp.close()

    @property
    def http_port(self) -> int:
        assert self._http is not None
        return self._http.server_address[1]

    @property
    def discovery_address(self) -> str:
        """``127.0.0.1:<udp port>``, for ``--address``."""
        assert self._udp is not None
        return f"127.0.0.1:{self._udp.getsockname()[1]}"

    @property
    def xaddr(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/onvif/device_service"

    # ------------------------------------------------------------ WS-Discovery

    def probe_matches(self, relates_to: str) -> bytes:
        scopes = " ".join(f"onvif://www.onvif.org/{kind}/{value.replace(' ', '%20')}" for kind, value in
                          [("type", "video_encoder"), ("Profile", "Streaming"), ("name", self.name),
                           ("hardware", self.hardware), ("location", self.location)] if value)
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="{SOAP}" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"
 xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><env:Header>
<wsa:MessageID>uuid:{uuid.uuid4()}</wsa:MessageID><wsa:RelatesTo>{escape(relates_to)}</wsa:RelatesTo>
<wsa:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To>
<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></env:Header>
<env:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>{self.endpoint}</wsa:Address>
</wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>{escape(scopes)}</d:Scopes>
<d:XAddrs>{self.xaddr}</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>
</env:Body></env:Envelope>""".encode()

    def _discovery(self) -> None:
        assert self._udp is not None
        self._udp.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                data, peer = self._udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                root = ElementTree.fromstring(data)
            except ElementTree.ParseError:
                continue
            message_id = next((n.text for n in root.iter() if _local(n.tag) == "MessageID"), "") or ""
            types = next((n.text for n in root.iter() if _local(n.tag) == "Types"), "") or ""
            if not any(_local(n.tag) == "Probe" for n in root.iter()):
                continue
            if types and not any(t.split(":")[-1] in ("NetworkVideoTransmitter", "Device") for t in types.split()):
                continue
            self.probes += 1
            answer = b"\x00garbage, not SOAP" if self.garbage else self.probe_matches(message_id)
            with contextlib.suppress(OSError):
                self._udp.sendto(answer, peer)

    # ------------------------------------------------------------ SOAP

    def now(self) -> dt.datetime:
        """The device's clock."""
        return dt.datetime.now(dt.UTC) + self.clock_offset

    def authenticated(self, root: ElementTree.Element) -> bool:
        token = root.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user, password = token.findtext(f"{{{WSSE}}}Username"), token.find(f"{{{WSSE}}}Password")
        nonce, created = token.findtext(f"{{{WSSE}}}Nonce"), token.findtext(f"{{{WSU}}}Created")
        if user != self.user or password is None or not nonce or not created:
            return False
        if not str(password.get("Type", "")).endswith("#PasswordDigest") or nonce in self._nonces:
            return False
        digest = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode()
                                               + self.password.encode()).digest()).decode()
        try:
            fresh = abs((dt.datetime.fromisoformat(created) - self.now()).total_seconds()) <= 5
        except ValueError:
            return False
        if digest != (password.text or "").strip() or not fresh:
            return False
        self._nonces.add(nonce)
        return True

    def answer(self, path: str, request: bytes) -> tuple[int, bytes, str]:
        """``(HTTP status, body, content type)`` for a POSTed SOAP request."""
        if self.garbage:
            return 200, b"<!DOCTYPE html><html><body>router login</body></html>", "text/html"
        soap = "application/soap+xml; charset=utf-8"
        try:
            root = ElementTree.fromstring(request)
            action = _local(next(iter(root.find(f"{{{SOAP}}}Body"))).tag)  # type: ignore[arg-type]
        except (ElementTree.ParseError, TypeError, StopIteration):
            return 400, _fault("ter:WellFormed", "not a SOAP envelope"), soap
        ok = self.authenticated(root)
        self.calls.append((action, ok))
        if action not in PRE_AUTH and not ok:
            return 400, _fault("ter:NotAuthorized", "Sender not Authorized"), soap
        handler = getattr(self, f"_{action}", None)
        service = "media" if path.endswith("/media_service") else "device"
        if handler is None or (action == "GetCapabilities" and not self.capabilities) \
                or (service == "media") != (action in ("GetProfiles", "GetStreamUri")):
            return 400, _fault("ter:ActionNotSupported", f"{action} is not supported here"), soap
        return 200, _envelope(handler(root)), soap

    def _GetSystemDateAndTime(self, _root: ElementTree.Element) -> str:
        t = self.now()
        return ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType>"
                "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>UTC0</tt:TZ></tt:TimeZone>"
                f"<tt:UTCDateTime><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
                f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
                f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:UTCDateTime>"
                "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")

    def _media_xaddr(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/onvif/media_service"

    def _GetCapabilities(self, _root: ElementTree.Element) -> str:
        return (f"<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>{self._media_xaddr()}"
                "</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true"
                "</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>")

    def _GetServices(self, _root: ElementTree.Element) -> str:
        services = [("http://www.onvif.org/ver10/device/wsdl", self.xaddr),
                    ("http://www.onvif.org/ver10/media/wsdl", self._media_xaddr())]
        return "<tds:GetServicesResponse>" + "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{xaddr}</tds:XAddr><tds:Version>"
            "<tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service>" for ns, xaddr in services
        ) + "</tds:GetServicesResponse>"

    def _GetDeviceInformation(self, _root: ElementTree.Element) -> str:
        return ("<tds:GetDeviceInformationResponse><tds:Manufacturer>Vigil Test</tds:Manufacturer>"
                f"<tds:Model>{escape(self.hardware)}</tds:Model><tds:FirmwareVersion>1.0</tds:FirmwareVersion>"
                "<tds:SerialNumber>SIM0001</tds:SerialNumber><tds:HardwareId>1</tds:HardwareId>"
                "</tds:GetDeviceInformationResponse>")

    def _GetProfiles(self, _root: ElementTree.Element) -> str:
        profiles = "".join(
            f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{name}</tt:Name>'
            f'<tt:VideoEncoderConfiguration token="venc_{token}"><tt:Name>venc_{token}</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding><tt:Resolution>"
            f"<tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{fps}</tt:FrameRateLimit><tt:EncodingInterval>1"
            f"</tt:EncodingInterval><tt:BitrateLimit>{kbps}</tt:BitrateLimit></tt:RateControl><tt:H264>"
            "<tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile></tt:H264><tt:Multicast><tt:Address>"
            "<tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>0</tt:Port>"
            "<tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration></trt:Profiles>"
            for token, name, width, height, fps, kbps in PROFILES)
        return f"<trt:GetProfilesResponse>{profiles}</trt:GetProfilesResponse>"

    def _GetStreamUri(self, root: ElementTree.Element) -> str:
        token = next((n.text for n in root.iter() if _local(n.tag) == "ProfileToken"), "") or ""
        if token not in {p[0] for p in PROFILES}:
            raise ValueError(token)
        return (f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://127.0.0.1:{self.rtsp_port}/{token}</tt:Uri>"
                "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false"
                "</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>")


def main(argv: list[str]) -> int:
    """``[--multicast] -- CMD ...``: serve a camera while CMD runs; CMD's exit code."""
    multicast = "--multicast" in argv[: argv.index("--")]
    command = argv[argv.index("--") + 1:]
    with SimulatedCamera(multicast=multicast) as camera:
        print(f"CAMERA {camera.xaddr}", file=sys.stderr, flush=True)
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
