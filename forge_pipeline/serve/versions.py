"""The manifest as the server sees it: which versions exist, with their files verified (sha256), as immutable
descriptions (`VersionSpec`) that the engines load and requests are pinned to. No llama.cpp here: this is
what the HTTP side reads too (model listing, downloads) without touching an engine.

Verification is cached per (path, size, mtime), so polling the manifest and every download of a multi-GB base
stay cheap. Every version verified since start is remembered: while the manifest cannot be read, those stay
selectable by name as they were last verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forge_pipeline.errors import ForgeError
from forge_pipeline.export.manifest import ManifestError, read_manifest, resolve_file, verify_version


class MalformedManifestError(ManifestError):
    """The manifest (or one version's entry) is valid JSON of the wrong shape."""


class UnknownVersionError(ForgeError, LookupError):
    """A request named a model this server cannot answer with (not in the manifest, or not on the served base).
    `model` is the name the request gave, `reason` why it cannot be served (the 404 says both)."""

    def __init__(self, model: str, reason: str):
        super().__init__(reason)
        self.model = model
        self.reason = reason


@dataclass(frozen=True, eq=False)
class VersionSpec:
    version: str
    base_path: Path
    adapter_path: Path | None
    entry: dict

    def same_files(self, other: VersionSpec | None) -> bool:
        return other is not None and (self.version, self.base_path, self.adapter_path) == (
            other.version,
            other.base_path,
            other.adapter_path,
        )


def _structural(err: Exception) -> bool:
    return isinstance(err, KeyError | TypeError | AttributeError)


class ManifestVersions:
    """The versions of one manifest file, verified once and remembered."""

    def __init__(self, manifest_path: Path):
        self.manifest_path = Path(manifest_path)
        self._known: dict[str, VersionSpec] = {}  # every version verified since start, for a broken manifest
        self._sha_cache: dict[tuple, tuple] = {}

    def known(self) -> dict[str, VersionSpec]:
        """Every version verified since start, by name."""
        return dict(sorted(self._known.items()))

    def read(self) -> dict:
        """read_manifest, with a structurally broken manifest (a list, `versions` not an object) a ManifestError."""
        try:
            manifest = read_manifest(self.manifest_path)
        except (KeyError, TypeError, AttributeError) as err:
            raise MalformedManifestError(f"{self.manifest_path}: not a manifest object ({err})") from None
        if not isinstance(manifest.get("versions"), dict):
            raise MalformedManifestError(f"{self.manifest_path}: field 'versions' must be an object")
        return manifest

    def verified_files(self, manifest: dict, version: str) -> dict[str, Path]:
        """The files of `version`, sha256-checked once per (path, size, mtime): polling the manifest and every
        download of a multi-GB base stay cheap. A structurally broken entry is a ManifestError naming it."""
        try:
            return self._verified_files(manifest, version)
        except Exception as err:
            if _structural(err):
                raise MalformedManifestError(
                    f"{self.manifest_path}: version {version!r} is malformed ({type(err).__name__}: {err}); "
                    "each version needs 'files' with role -> {path, sha256, size_bytes} or null"
                ) from None
            raise

    def _verified_files(self, manifest: dict, version: str) -> dict[str, Path]:
        entry = manifest["versions"].get(version)
        if entry is None:
            raise ManifestError(f"{self.manifest_path}: current version {version!r} is not in the manifest")
        key = (version, tuple(sorted((role, str(f and f.get("sha256"))) for role, f in entry["files"].items())))
        stamp = []
        for _role, file_entry in sorted(entry["files"].items()):
            if file_entry:
                path = resolve_file(file_entry, self.manifest_path)
                stat = path.stat() if path.is_file() else None
                stamp.append((str(path), stat and (stat.st_size, stat.st_mtime_ns)))
        cache_key = (key, tuple(stamp))
        if cache_key in self._sha_cache:
            return {role: Path(path) for role, path in self._sha_cache[cache_key]}
        resolved = verify_version(manifest, version, self.manifest_path)
        if "base_gguf" not in resolved and "merged_gguf" not in resolved:
            raise ManifestError(f"{self.manifest_path}: {version} names neither base_gguf nor merged_gguf")
        self._sha_cache[cache_key] = tuple((role, str(path)) for role, path in resolved.items())
        return resolved

    def spec_of(self, manifest: dict, version: str) -> VersionSpec:
        """The verified, servable description of `version`; remembered for when the manifest breaks."""
        resolved = self.verified_files(manifest, version)
        # A version with an adapter is served as base + hot-swappable adapter; otherwise as the merged model.
        if "adapter_gguf" in resolved and "base_gguf" in resolved:
            base_path, adapter_path = resolved["base_gguf"], resolved["adapter_gguf"]
        else:
            base_path, adapter_path = resolved.get("merged_gguf") or resolved["base_gguf"], None
        spec = VersionSpec(version, base_path, adapter_path, manifest["versions"][version])
        self._known[version] = spec
        return spec

    def pinned(self, version: str) -> VersionSpec:
        """A version that is neither current nor candidate, from the manifest (files verified), or, while the
        manifest cannot be read, as it was last verified."""
        try:
            manifest = self.read()
        except ManifestError as err:
            if version in self._known:
                return self._known[version]
            raise UnknownVersionError(version, f"the manifest cannot be read ({err})") from None
        versions = manifest["versions"]
        if version not in versions:
            raise UnknownVersionError(version, "it is not a version in the adapter manifest")
        try:
            spec = self.spec_of(manifest, version)
        except MalformedManifestError as err:  # as unreadable as no manifest: serve it as last verified
            if version in self._known:
                return self._known[version]
            raise UnknownVersionError(version, f"its manifest entry cannot be read ({err})") from None
        except ManifestError as err:  # its files changed or vanished: refused
            raise UnknownVersionError(version, f"its files cannot be served ({err})") from None
        return spec
