"""ONVIF cameras: find them (WS-Discovery, ``onvif_discovery``) and read their media profiles and RTSP URIs.

The device and media services are called with zeep, on the ONVIF WSDLs that the ``onvif-zeep-async`` package
ships (only its WSDL folder is used, found without importing its asyncio client). Those WSDLs import each other
by relative paths; the only remote ``schemaLocation``s are in ``ws-discovery.xsd``, which the device and media
WSDLs never load, and in ``xml.xsd``'s documentation text. ``_LocalOnly`` makes that a guarantee: zeep may read
WSDLs and schemas from local files only, so nothing is fetched at run time.

Calls carry a WS-Security UsernameToken with PasswordDigest, its ``Created`` time set on the device's clock
(``GetSystemDateAndTime``, which needs no login, gives the offset: cameras reject tokens outside a few seconds of
their own time); requests' HTTP Digest is set as well for the devices that ask for it with a 401. The password is
kept in those two objects only and never printed or logged. Each failure is an ``OnvifError``: one line naming
the device's address (unreachable, wrong credentials, an answer that is not ONVIF SOAP).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.auth import HTTPDigestAuth
from zeep import Client, Settings
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import Fault, TransportError
from zeep.transports import Transport
from zeep.wsdl import Document
from zeep.wsse.username import UsernameToken

from vigil.sources.onvif_discovery import Device, OnvifError, Profile, discover, split_address

__all__ = ["Device", "OnvifError", "Profile", "discover", "read_device", "split_address", "wsdl_dir"]

NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
#: strict=False: cameras often leave out elements the schema requires; zeep's defaults forbid DTDs and entities
SETTINGS = Settings(strict=False, xml_huge_tree=False)


def wsdl_dir() -> Path:
    """The ONVIF WSDL folder of the installed ``onvif-zeep-async`` (its package is located, not imported)."""
    spec = importlib.util.find_spec("onvif")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / "wsdl" / "devicemgmt.wsdl").is_file():
            return Path(folder) / "wsdl"
    raise OnvifError("the ONVIF WSDLs are missing: install the onvif-zeep-async package (scripts/setup.sh does)")


class _LocalOnly(Transport):
    """A zeep transport that loads WSDLs and schemas from local files only (SOAP calls go out as usual)."""

    def load(self, url: str) -> bytes:
        scheme = urlsplit(url).scheme
        if scheme not in ("", "file"):
            raise OnvifError(f"ONVIF WSDLs: {url} would be fetched from the network; refusing")
        return super().load(url)


@functools.cache
def _document(name: str) -> Document:
    """A parsed WSDL (``devicemgmt`` or ``media``), shared by every device's client."""
    return Document(str(wsdl_dir() / f"{name}.wsdl"), _LocalOnly(), settings=SETTINGS)


class _DeviceClockToken(UsernameToken):
    """A PasswordDigest UsernameToken whose ``Created`` is now on the device's clock (local UTC + offset)."""

    def __init__(self, user: str, password: str, offset: dt.timedelta) -> None:
        super().__init__(user, password, use_digest=True, zulu_timestamp=True)
        self.offset = offset

    def apply(self, envelope: Any, headers: Any) -> Any:
        self.created = dt.datetime.now(dt.UTC) + self.offset
        return super().apply(envelope, headers)

    def __repr__(self) -> str:  # never show the password
        return f"_DeviceClockToken({self.username!r})"


def _reason(exc: BaseException) -> str:
    """The OS reason inside a requests connection error (e.g. ``Connection refused``)."""
    found = re.findall(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return found[-1].strip().rstrip(".").lower() if found else type(exc).__name__


def _not_authorized(fault: Fault) -> bool:
    codes = [str(getattr(code, "localname", code)) for code in (fault.subcodes or [])]
    words = " ".join([*codes, str(fault.code or ""), str(fault.message or "")]).lower()
    return any(w in words for w in ("notauthorized", "not authorized", "failedauthentication", "unauthorized"))


class _Session:
    """The SOAP calls to one device, each failure turned into a one-line ``OnvifError`` naming it."""

    def __init__(self, device: Device, user: str, password: str, timeout: float) -> None:
        self.device = device
        self.label = f"ONVIF device {device.address}"
        self.timeout = timeout
        session = requests.Session()
        session.trust_env = False  # cameras are on the local network: never through an HTTP(S)_PROXY
        session.auth = HTTPDigestAuth(user, password)  # only used if the device answers 401 with a challenge
        self.transport = Transport(session=session, operation_timeout=timeout)
        self.token = _DeviceClockToken(user, password, dt.timedelta(0))

    def service(self, wsdl: str, binding: str, address: str, signed: bool = True) -> Any:
        client = Client(_document(wsdl), wsse=self.token if signed else None, transport=self.transport,
                        settings=SETTINGS)
        return client.create_service(binding, address)

    def call(self, service: Any, operation: str, **kwargs: Any) -> Any:
        """``service.<operation>(**kwargs)``; a Fault other than NotAuthorized is re-raised for fallbacks."""
        try:
            return getattr(service, operation)(**kwargs)
        except requests.Timeout:
            raise OnvifError(f"{self.label}: no answer to {operation} within {self.timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise OnvifError(f"{self.label}: unreachable ({_reason(exc)})") from None
        except requests.RequestException as exc:
            raise OnvifError(f"{self.label}: {operation} failed ({type(exc).__name__})") from None
        except Fault as fault:
            if _not_authorized(fault):
                raise OnvifError(f"{self.label}: wrong user name or password (NotAuthorized to {operation})") from None
            raise
        except TransportError as exc:
            if exc.status_code == 401:
                raise OnvifError(f"{self.label}: wrong user name or password (HTTP 401 to {operation})") from None
            raise OnvifError(f"{self.label}: answered {operation} with something that is not ONVIF SOAP "
                             f"(HTTP {exc.status_code})") from None
        except (ZeepError, ValueError, TypeError, AttributeError, LookupError) as exc:
            raise self.garbage(operation, exc) from None

    def garbage(self, operation: str, exc: BaseException | str) -> OnvifError:
        what = exc if isinstance(exc, str) else type(exc).__name__
        return OnvifError(f"{self.label}: answered {operation} with something that is not ONVIF SOAP ({what})")

    def fault(self, operation: str, fault: Fault) -> OnvifError:
        return OnvifError(f"{self.label}: {operation} failed (SOAP fault: {str(fault.message or fault.code)[:120]})")


def _clock_offset(session: _Session, device_service: Any) -> dt.timedelta:
    """Device UTC − local UTC, from GetSystemDateAndTime (no login needed); 0 when the device does not say."""
    try:
        answer = session.call(device_service, "GetSystemDateAndTime")
    except Fault:
        return dt.timedelta(0)
    utc = getattr(answer, "UTCDateTime", None)
    try:
        t, d = utc.Time, utc.Date
        device_now = dt.datetime(d.Year, d.Month, d.Day, t.Hour, t.Minute, t.Second, tzinfo=dt.UTC)
    except (AttributeError, TypeError, ValueError):
        return dt.timedelta(0)
    return device_now - dt.datetime.now(dt.UTC).replace(microsecond=0)


def _media_xaddr(session: _Session, device_service: Any) -> str:
    """The media service URL: GetCapabilities (Profile S), else GetServices (newer devices)."""
    try:
        caps = session.call(device_service, "GetCapabilities", Category="Media")
        xaddr = getattr(getattr(caps, "Media", None), "XAddr", None)
        if xaddr:
            return str(xaddr)
    except Fault:
        pass
    try:
        services = session.call(device_service, "GetServices", IncludeCapability=False)
    except Fault as fault:
        raise session.fault("GetServices", fault) from None
    for service in services or []:
        if getattr(service, "Namespace", None) == NS_MEDIA and getattr(service, "XAddr", None):
            return str(service.XAddr)
    raise OnvifError(f"{session.label}: has no ONVIF media service (neither GetCapabilities nor GetServices "
                     "name one)")


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _device_info(session: _Session, device_service: Any) -> dict[str, str]:
    try:
        info = session.call(device_service, "GetDeviceInformation")
    except Fault:
        return {}
    fields = {"manufacturer": "Manufacturer", "model": "Model", "firmware": "FirmwareVersion",
              "serial": "SerialNumber", "hardware_id": "HardwareId"}
    return {key: _text(getattr(info, name, None)) for key, name in fields.items() if _text(getattr(info, name, None))}


def strip_credentials(uri: str) -> str:
    """``rtsp://user:pass@host/x`` → ``rtsp://host/x`` (some devices embed them in their stream URIs)."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _profile(session: _Session, media: Any, raw: Any) -> Profile:
    token = _text(getattr(raw, "token", None))
    if not token:
        raise session.garbage("GetProfiles", "a profile without a token")
    profile = Profile(token=token, name=_text(getattr(raw, "Name", None)) or token)
    encoder = getattr(raw, "VideoEncoderConfiguration", None)
    if encoder is not None:
        profile.encoding = _text(getattr(encoder, "Encoding", None))
        resolution = getattr(encoder, "Resolution", None)
        profile.width = int(getattr(resolution, "Width", 0) or 0)
        profile.height = int(getattr(resolution, "Height", 0) or 0)
        rate = getattr(encoder, "RateControl", None)
        if rate is not None:
            fps = getattr(rate, "FrameRateLimit", None)
            bitrate = getattr(rate, "BitrateLimit", None)
            profile.fps = float(fps) if fps else None
            profile.bitrate_kbps = int(bitrate) if bitrate else None
    setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    try:
        answer = session.call(media, "GetStreamUri", StreamSetup=setup, ProfileToken=token)
    except Fault as fault:
        raise session.fault(f"GetStreamUri of profile {token!r}", fault) from None
    uri = _text(getattr(answer, "Uri", None))
    if not uri.lower().startswith(("rtsp://", "rtsps://")):
        raise session.garbage("GetStreamUri", f"profile {token!r} has no RTSP URI")
    profile.uri = strip_credentials(uri)
    return profile


def read_device(device: Device, user: str, password: str, timeout: float = 5.0) -> Device:
    """Fill ``device.info`` and ``device.profiles`` (with RTSP URIs) from its device and media services.

    Raises ``OnvifError`` naming ``device.address`` when it cannot be reached, rejects the credentials or
    answers something that is not ONVIF SOAP.
    """
    if not device.xaddr:
        raise OnvifError(f"ONVIF device {device.address}: announced no http(s) device service address (XAddrs)")
    session = _Session(device, user, password, timeout)
    binding = f"{{{NS_DEVICE}}}DeviceBinding"
    session.token.offset = _clock_offset(session, session.service("devicemgmt", binding, device.xaddr, signed=False))
    device_service = session.service("devicemgmt", binding, device.xaddr)
    device.info = _device_info(session, device_service)
    media = session.service("media", f"{{{NS_MEDIA}}}MediaBinding", _media_xaddr(session, device_service))
    try:
        profiles = session.call(media, "GetProfiles")
    except Fault as fault:
        raise session.fault("GetProfiles", fault) from None
    if not isinstance(profiles, list | tuple):
        raise session.garbage("GetProfiles", "no list of profiles")
    device.profiles = [_profile(session, media, raw) for raw in profiles]
    return device
