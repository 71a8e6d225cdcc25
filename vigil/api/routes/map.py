"""``/api/map/basemap.geojson``: the offline basemap's roads, made once from an OSM extract with ``osmium``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from vigil.api.deps import ApiState, api_state, require
from vigil.errors import DataError
from vigil.governance.users import User

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/map", tags=["map"])
CACHE_DIR = "cache"
TOLERANCE_DEG = 1e-5  # Douglas-Peucker tolerance, about 1 m
KEEP = ("highway", "name", "ref")
_build_lock = threading.Lock()


def basemap_cache(extract: Path, data_dir: Path) -> Path:
    """The GeoJSON file of ``extract``'s roads in ``data_dir/cache`` (built with osmium on first use)."""
    stat = extract.stat()
    target = data_dir / CACHE_DIR / f"basemap-{extract.name.split('.')[0]}-{int(stat.st_mtime)}-{stat.st_size}.geojson"
    with _build_lock:
        if not target.exists():
            build_basemap(extract, target)
    return target


def build_basemap(extract: Path, target: Path) -> int:
    """Write ``extract``'s highways as a GeoJSON FeatureCollection of simplified LineStrings; the feature count."""
    osmium = shutil.which("osmium")
    if osmium is None:
        raise DataError("osmium is not installed (apt-get install osmium-tool); it builds the basemap")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        roads, lines = Path(work) / "roads.osm.pbf", Path(work) / "roads.geojsonseq"
        for command in ([osmium, "tags-filter", str(extract), "w/highway", "-O", "-o", str(roads)],
                        [osmium, "export", str(roads), "--geometry-types=linestring", "-f", "geojsonseq", "-O",
                         "-o", str(lines)]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                message = (done.stderr.strip().splitlines() or ["failed"])[-1]
                raise DataError(f"{extract}: osmium could not read the extract ({message})")
        features = []
        with lines.open() as fh:
            for line in fh:
                feature = json.loads(line.lstrip("\x1e"))
                coords = _simplify(feature["geometry"]["coordinates"])
                props = {k: v for k, v in feature.get("properties", {}).items() if k in KEEP}
                if len(coords) >= 2 and "highway" in props:
                    features.append({"type": "Feature", "properties": props,
                                     "geometry": {"type": "LineString", "coordinates": coords}})
        tmp = Path(work) / "out.geojson"
        tmp.write_text(json.dumps({"type": "FeatureCollection", "source": extract.name, "features": features},
                                  separators=(",", ":"), ensure_ascii=False))
        os.replace(tmp, target)
    log.info("basemap: %d roads from %s cached in %s", len(features), extract.name, target)
    return len(features)


def _simplify(coords: list[list[float]]) -> list[list[float]]:
    points = np.asarray(coords, dtype=np.float64)
    origin = points[0].copy()
    relative = (points - origin).astype(np.float32).reshape(-1, 1, 2)  # small offsets keep float32 precise
    kept = cv2.approxPolyDP(relative, TOLERANCE_DEG, False).reshape(-1, 2).astype(np.float64) + origin
    return [[round(float(x), 6), round(float(y), 6)] for x, y in kept]


@router.get("/basemap.geojson", response_class=FileResponse,
            responses={200: {"content": {"application/geo+json": {}}}})
def basemap(_user: User = Depends(require()), state: ApiState = Depends(api_state)) -> FileResponse:
    """Roads (LineStrings with a ``highway`` property) of the configured OSM extract, built once and cached."""
    if state.basemap is None or not state.basemap.is_file():
        raise HTTPException(404, "no OSM extract configured for the basemap (put one in map/*.osm.pbf)")
    cached = basemap_cache(state.basemap, Path(state.config.data_dir))
    return FileResponse(cached, media_type="application/geo+json", headers={"Cache-Control": "private, max-age=86400"})
