"""Install the command centre's third-party browser libraries (Leaflet, its marker-cluster plugin, hls.js) from npm
into ``vigil/web/vendor/``.

Run at setup: ``python -m vigil.web.vendor``. Idempotent: a library whose files are already there (same
version) is skipped. The folder is gitignored and served by the API at ``/vendor/...``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vigil.errors import VigilError

VENDOR_DIR = Path(__file__).with_name("vendor")


class VendorError(VigilError):
    """The browser libraries could not be installed."""


@dataclass(frozen=True, slots=True)
class Library:
    package: str  # npm package name
    spec: str  # npm version range
    files: dict[str, str]  # path inside the package -> path inside vendor/<package>/


LIBRARIES = (
    Library("leaflet", "1.9", {
        "dist/leaflet.js": "leaflet.js",
        "dist/leaflet.css": "leaflet.css",
        "dist/images/marker-icon.png": "images/marker-icon.png",
        "dist/images/marker-icon-2x.png": "images/marker-icon-2x.png",
        "dist/images/marker-shadow.png": "images/marker-shadow.png",
        "dist/images/layers.png": "images/layers.png",
        "dist/images/layers-2x.png": "images/layers-2x.png",
        "LICENSE": "LICENSE",
    }),
    # clusters the map's camera markers when zoomed out (a city has ~1,000); a plugin of the global ``L``
    Library("leaflet.markercluster", "1.5.3", {
        "dist/leaflet.markercluster.js": "leaflet.markercluster.js",
        "dist/MarkerCluster.css": "MarkerCluster.css",
        "dist/MarkerCluster.Default.css": "MarkerCluster.Default.css",
        "MIT-LICENCE.txt": "LICENSE",
    }),
    Library("hls.js", "1", {
        "dist/hls.min.js": "hls.min.js",
        "LICENSE": "LICENSE",
    }),
)


def installed_version(library: Library, vendor_dir: Path = VENDOR_DIR) -> str | None:
    """The version recorded in ``vendor/<package>/VERSION`` when every file is present, else None."""
    target = vendor_dir / library.package
    marker = target / "VERSION"
    if not marker.exists() or not all((target / dest).exists() for dest in library.files.values()):
        return None
    return marker.read_text().strip()


def _wanted(version: str | None, spec: str) -> bool:
    return version is not None and (version == spec or version.startswith(spec + "."))


def install(vendor_dir: Path = VENDOR_DIR, npm: str | None = None) -> dict[str, str]:
    """Install each library that is missing; returns ``{package: version}``. Raises ``VendorError``."""
    missing = [lib for lib in LIBRARIES if not _wanted(installed_version(lib, vendor_dir), lib.spec)]
    versions = {lib.package: installed_version(lib, vendor_dir) or "" for lib in LIBRARIES if lib not in missing}
    if not missing:
        return versions
    npm = npm or shutil.which("npm")
    if npm is None:
        raise VendorError("npm not found: install Node.js and npm (Debian: apt-get install npm) to fetch "
                          "Leaflet, leaflet.markercluster and hls.js for the command centre")
    with tempfile.TemporaryDirectory(prefix="vigil-vendor-") as tmp:
        specs = [f"{lib.package}@{lib.spec}" for lib in missing]
        done = subprocess.run([npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--ignore-scripts",
                               *specs], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise VendorError(f"npm install {' '.join(specs)} failed: {last}")
        for lib in missing:
            versions[lib.package] = _copy(lib, Path(tmp) / "node_modules" / lib.package, vendor_dir / lib.package)
    return versions


def _copy(library: Library, source: Path, target: Path) -> str:
    version = json.loads((source / "package.json").read_text())["version"]
    if target.exists():
        shutil.rmtree(target)
    for inside, dest in library.files.items():
        if not (source / inside).exists():
            raise VendorError(f"npm package {library.package}@{version} has no {inside}")
        (target / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / inside, target / dest)
    (target / "VERSION").write_text(version + "\n")
    return version


def main() -> int:
    try:
        versions = install()
    except VendorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("browser libraries in", VENDOR_DIR, "—", ", ".join(f"{k} {v}" for k, v in versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
