"""Found ONVIF devices as ``cameras:`` entries (YAML, ready to paste) or as JSON.

``CameraConfig`` takes a camera's credentials inside its URL (``rtsp://user:pass@host/...``, hidden in every log by
``vigil.config.redact_url``); there is no environment-variable form. The entries therefore carry the user name and
the placeholder ``PASSWORD``, to be replaced by hand: the password given to ``vigil cameras discover`` is never
printed. A camera with a second, smaller profile (the substream) gets two ``inputs``: the substream analysed
(``detect``) and the main stream recorded (``record``), each with its size; without known sizes the main stream is
the single ``url`` and the substream a comment.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from vigil.sources.onvif_discovery import Device, Profile

PASSWORD_PLACEHOLDER = "PASSWORD"
_VIDEO_CODECS = ("H264", "H265", "HEVC")


def slug(text: str, limit: int = 64) -> str:
    """A camera id (``[A-Za-z0-9_.-]{1,64}``, as ``CameraConfig.id`` wants) from a device name."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return out[:limit].rstrip("-")


def with_user(uri: str, user: str) -> str:
    """``rtsp://host/x`` → ``rtsp://<user>:PASSWORD@host/x`` (the user name URL-quoted)."""
    if not user:
        return uri
    parts = urlsplit(uri)
    netloc = f"{quote(user, safe='')}:{PASSWORD_PLACEHOLDER}@{parts.netloc.rsplit('@', 1)[-1]}"
    return urlunsplit(parts._replace(netloc=netloc))


def main_and_sub(device: Device) -> tuple[Profile | None, Profile | None]:
    """The main stream (the largest H.264/H.265 profile, else the largest) and a smaller one as substream."""
    streams = [p for p in device.profiles if p.uri]
    streams.sort(key=lambda p: (p.encoding.upper() in _VIDEO_CODECS, p.width * p.height), reverse=True)
    if not streams:
        return None, None
    main = streams[0]
    sub = next((p for p in streams[1:] if p.uri != main.uri and p.width * p.height < main.width * main.height), None)
    return main, sub


def describe(profile: Profile) -> str:
    """``main: 1920x1080 H264 25 fps`` (the parts the device gave)."""
    parts = [f"{profile.width}x{profile.height}" if profile.width else "", profile.encoding,
             f"{profile.fps:g} fps" if profile.fps else ""]
    return f"{profile.name}: " + " ".join(p for p in parts if p)


def display_name(device: Device) -> str:
    model = " ".join(v for v in (device.info.get("manufacturer"), device.info.get("model")) if v)
    return device.name or model or device.hardware or device.address


def camera_entries(devices: list[Device], user: str) -> list[tuple[Device, dict, Profile, Profile | None]]:
    """``(device, entry, main, sub)`` for each device with an RTSP stream; ids made unique across them."""
    used: set[str] = set()
    out = []
    for device in devices:
        main, sub = main_and_sub(device)
        if main is None:
            continue
        name = display_name(device)
        base = slug(name) or slug(f"onvif-{device.address}") or "onvif-camera"
        camera_id, n = base, 2
        while camera_id in used:
            camera_id, n = f"{base[:60]}-{n}", n + 1
        used.add(camera_id)
        entry: dict = {"id": camera_id, "name": name, "url": with_user(main.uri, user)}
        if sub is not None and sub.width and main.width:
            del entry["url"]
            entry["inputs"] = [
                {"url": with_user(sub.uri, user), "roles": ["detect"], "size": [sub.width, sub.height]},
                {"url": with_user(main.uri, user), "roles": ["record"], "size": [main.width, main.height]}]
            sub = None  # in the entry
        out.append((device, entry, main, sub))
    return out


def _about(device: Device) -> str:
    model = " ".join(v for v in (device.info.get("manufacturer"), device.info.get("model")) if v)
    facts = [model if device.hardware in model else f"{device.hardware} {model}".strip(),
             f"location {device.location}" if device.location else ""]
    known = "; ".join(dict.fromkeys(f for f in facts if f))
    return f"ONVIF device {device.address}" + (f" ({known})" if known else "")


def to_yaml(devices: list[Device], user: str) -> str:
    """Entries for the ``cameras:`` list, each under comments saying where it came from and what to edit."""
    lines: list[str] = []
    entries = camera_entries(devices, user)
    if entries:
        lines.append(f"# {len(entries)} camera(s) found by `vigil cameras discover`: paste under `cameras:` and put "
                     f"the password in place of {PASSWORD_PLACEHOLDER} (it is never printed)")
    for device, entry, main, sub in entries:
        lines.append(f"# {entry['name']}: {_about(device)}; main stream {describe(main)}"
                     + ("; analysed on its substream" if "inputs" in entry else ""))
        lines.extend(yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=1000).splitlines())
        if sub is not None:
            lines.append(f"  # substream {describe(sub)} (its size is unknown: give it as inputs with sizes to "
                         "analyse it and record the main stream):")
            lines.append(f"  # {with_user(sub.uri, user)}")
    listed = {id(device) for device, *_ in entries}
    for device in devices:
        if device.error is None and id(device) not in listed:
            hint = ("give --user and --password-stdin to read its stream URIs" if not device.profiles
                    else "no RTSP stream")
            lines.append(f"# {display_name(device)}: {_about(device)}: {hint}")
    return "\n".join(lines) + "\n" if lines else ""


def to_json(devices: list[Device], user: str) -> str:
    """The devices, their profiles and (for those with streams) the config entry and substream URI."""
    entries = {id(device): (entry, sub) for device, entry, _main, sub in camera_entries(devices, user)}
    rows = []
    for device in devices:
        row = asdict(device)
        row.update(name=device.name, hardware=device.hardware, location=device.location, xaddr=device.xaddr)
        entry, sub = entries.get(id(device), (None, None))
        row["camera"] = entry
        row["substream"] = with_user(sub.uri, user) if sub is not None else None
        rows.append(row)
    return json.dumps({"devices": rows}, indent=2, ensure_ascii=False) + "\n"
