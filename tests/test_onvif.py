"""``vigil cameras discover`` against a simulated ONVIF camera on 127.0.0.1 (tests/onvif_device.py).

Unicast probes and SOAP calls stay on the loopback. The multicast probe runs inside a private network namespace
(``unshare -n``, where ``lo`` is given a multicast route), so no datagram ever leaves the machine; it is skipped
where such a namespace cannot be made.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.onvif_device import SimulatedCamera
from vigil.cli import app
from vigil.config import load_config
from vigil.sources.onvif import Device, OnvifError, Profile, _LocalOnly, discover, read_device, strip_credentials
from vigil.sources.onvif_config import slug, to_yaml
from vigil.sources.onvif_discovery import parse_probe_matches, split_address

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "admin", "walnut-kayak-73"
runner = CliRunner()


@pytest.fixture
def camera() -> Iterator[SimulatedCamera]:
    with SimulatedCamera(user=USER, password=PASSWORD, rtsp_port=8554) as cam:
        yield cam


def found(cam: SimulatedCamera) -> Device:
    devices = discover([cam.discovery_address], timeout=2)
    assert len(devices) == 1 and devices[0].error is None, devices
    return devices[0]


def test_unicast_probe_finds_the_device_with_its_scopes(camera: SimulatedCamera) -> None:
    device = found(camera)
    assert camera.probes >= 1
    assert device.endpoint == camera.endpoint
    assert device.xaddr == camera.xaddr and device.address == f"127.0.0.1:{camera.http_port}"
    assert (device.name, device.hardware, device.location) == ("Front Gate", "SIM-1080", "city/Leeds")
    assert "dn:NetworkVideoTransmitter" in device.types


@pytest.mark.parametrize("capabilities", [True, False], ids=["GetCapabilities", "GetServices"])
def test_profiles_and_stream_uris_with_the_right_credentials(capabilities: bool) -> None:
    # the device's clock is an hour off: the token's Created must follow it, or every call is refused
    with SimulatedCamera(user=USER, password=PASSWORD, rtsp_port=8554, clock_offset_s=3600,
                         capabilities=capabilities) as cam:
        device = read_device(found(cam), USER, PASSWORD, timeout=5)
        calls = list(cam.calls)
    got = [(p.token, p.encoding, p.width, p.height, p.fps, p.uri) for p in device.profiles]
    assert got == [("main", "H264", 1920, 1080, 25.0, "rtsp://127.0.0.1:8554/main"),
                   ("sub", "H264", 640, 360, 15.0, "rtsp://127.0.0.1:8554/sub")]
    assert device.info["manufacturer"] == "Vigil Test" and device.info["model"] == "SIM-1080"
    assert ("GetServices", True) in calls if not capabilities else ("GetCapabilities", True) in calls
    assert all(ok for action, ok in calls if action != "GetSystemDateAndTime"), calls


def test_wrong_password_is_one_line_naming_the_device(camera: SimulatedCamera, caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    caplog.set_level(logging.DEBUG)  # zeep logs whole envelopes at DEBUG: the password must not be in them
    with pytest.raises(OnvifError) as info:
        read_device(found(camera), USER, "not-the-password", timeout=5)
    message = str(info.value)
    assert message.startswith(f"ONVIF device 127.0.0.1:{camera.http_port}: wrong user name or password")
    assert "\n" not in message and "not-the-password" not in message
    read_device(found(camera), USER, PASSWORD, timeout=5)
    assert PASSWORD not in caplog.text and "not-the-password" not in caplog.text


def test_unreachable_and_garbage_devices_are_one_line_errors(camera: SimulatedCamera) -> None:
    port, udp = camera.http_port, camera.discovery_address
    dead = Device(address=f"127.0.0.1:{port}", xaddrs=[camera.xaddr])
    camera.stop()
    with pytest.raises(OnvifError, match=rf"^ONVIF device 127\.0\.0\.1:{port}: unreachable \(connection refused\)$"):
        read_device(dead, USER, PASSWORD, timeout=2)
    [silent] = discover([udp], timeout=0.5)
    assert silent.error == f"ONVIF device {udp}: unreachable (nothing listens on its WS-Discovery port)"

    with SimulatedCamera(garbage=True) as junk:
        [device] = discover([junk.discovery_address], timeout=1)
        assert device.error == (f"ONVIF device {junk.discovery_address}: answered the WS-Discovery probe with "
                                "something that is not a ProbeMatches")
        web = Device(address=f"127.0.0.1:{junk.http_port}", xaddrs=[junk.xaddr])
        with pytest.raises(OnvifError, match=rf"^ONVIF device 127\.0\.0\.1:{junk.http_port}: answered "
                                             r"GetSystemDateAndTime with something that is not ONVIF SOAP"):
            read_device(web, USER, PASSWORD, timeout=2)


def test_parsing_and_helpers() -> None:
    assert split_address("10.0.0.5") == ("10.0.0.5", 3702)
    assert split_address("cam.local:3703") == ("cam.local", 3703)
    assert split_address("[fe80::1]:3702") == ("fe80::1", 3702)
    with pytest.raises(OnvifError, match="bad port"):
        split_address("10.0.0.5:http")
    assert parse_probe_matches(b"<x/>", "1.2.3.4:3702") is None
    assert parse_probe_matches(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "1.2.3.4:3702") is None
    assert strip_credentials("rtsp://u:p@10.0.0.5:554/s1") == "rtsp://10.0.0.5:554/s1"
    assert slug("Entrée — Gate #2") == "entr-e-gate-2"
    with pytest.raises(OnvifError, match="network"):
        _LocalOnly().load("http://www.w3.org/2001/xml.xsd")


def test_printed_yaml_is_valid_config(camera: SimulatedCamera, tmp_path: Path) -> None:
    result = runner.invoke(app, ["cameras", "discover", "--address", camera.discovery_address, "--timeout", "2",
                                 "--user", USER, "--password-stdin"], input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    config_file = tmp_path / "site.yaml"
    config_file.write_text("cameras:\n" + result.stdout)
    [cam] = load_config(config_file).cameras  # analysed on the substream, the main stream recorded
    assert (cam.id, cam.name, cam.url, cam.size) == ("front-gate", "Front Gate",
                                                     "rtsp://admin:PASSWORD@127.0.0.1:8554/sub", (640, 360))
    assert (cam.record_url, cam.record_size) == ("rtsp://admin:PASSWORD@127.0.0.1:8554/main", (1920, 1080))


def test_yaml_ids_are_unique_and_devices_without_streams_are_comments() -> None:
    a, b = (Device(address=f"10.0.0.{n}:80", scopes=["onvif://www.onvif.org/name/Gate"],
                   profiles=[Profile("main", "main", "H264", 1920, 1080, 25, None, f"rtsp://10.0.0.{n}/main")])
            for n in (1, 2))
    c = Device(address="10.0.0.3:80")
    text = to_yaml([a, b, c], "ad min")
    assert [line for line in text.splitlines() if line.startswith("- id:")] == ["- id: gate", "- id: gate-2"]
    assert "rtsp://ad%20min:PASSWORD@10.0.0.1/main" in text
    assert "# 10.0.0.3:80: ONVIF device 10.0.0.3:80: give --user and --password-stdin" in text


def vigil_cli(*args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)


def test_cli_end_to_end(camera: SimulatedCamera) -> None:
    common = ["cameras", "discover", "--address", camera.discovery_address, "--timeout", "2", "--user", USER,
              "--password-stdin"]
    done = vigil_cli(*common, "--json", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    [device] = json.loads(done.stdout)["devices"]
    assert device["name"] == "Front Gate" and [p["uri"] for p in device["profiles"]] == [
        "rtsp://127.0.0.1:8554/main", "rtsp://127.0.0.1:8554/sub"]
    assert [(i["url"], i["roles"]) for i in device["camera"]["inputs"]] == [
        ("rtsp://admin:PASSWORD@127.0.0.1:8554/sub", ["detect"]), ("rtsp://admin:PASSWORD@127.0.0.1:8554/main",
                                                                   ["record"])]

    wrong = vigil_cli(*common, stdin="guess-123\n")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        f"error: ONVIF device 127.0.0.1:{camera.http_port}: wrong user name or password (NotAuthorized to "
        "GetDeviceInformation)"]
    assert "guess-123" not in wrong.stdout + wrong.stderr

    without = vigil_cli("cameras", "discover", "--address", camera.discovery_address, "--timeout", "2")
    assert without.returncode == 0 and "give --user and --password-stdin" in without.stdout


def _private_netns_reason() -> str | None:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "needs the unshare and ip commands"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up", "multicast", "on"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"cannot make a private network namespace ({probe.stderr.strip()})"


def test_multicast_probe_in_a_private_network_namespace() -> None:
    reason = _private_netns_reason()
    if reason:
        pytest.skip(f"multicast test {reason}; multicast on the machine's own network is not used by tests")
    py = sys.executable
    script = ("ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && "
              f"exec {py} tests/onvif_device.py --multicast -- {py} -m vigil cameras discover --timeout 1 --json "
              f"--user {USER} --password-stdin")
    done = subprocess.run(["unshare", "-n", "sh", "-c", script], input=f"{PASSWORD}\n", capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    [device] = json.loads(done.stdout)["devices"]
    assert device["name"] == "Front Gate" and len(device["profiles"]) == 2 and device["error"] is None
