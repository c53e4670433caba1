"""Reading an OCI image layout (what `buildah push ... oci:DIR:TAG` writes): the manifest of a tag,
its image config (entrypoint, env, user, labels) and its layers' sizes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ImageInfo", "read_image"]

Obj = dict[str, Any]


@dataclass(frozen=True)
class ImageInfo:
    manifest_digest: str
    config: Obj  # the image config's "config" object: Entrypoint, Cmd, Env, User, WorkingDir, Labels
    layers: list[Obj]  # {"digest", "size", "mediaType"} as in the manifest (gzip: compressed sizes)
    created: str

    @property
    def layers_bytes(self) -> int:
        """What a registry stores and a node pulls: the layers as the manifest lists them."""
        return sum(int(layer["size"]) for layer in self.layers)


def _blob(layout: Path, digest: str) -> Obj:
    algo, _, hexdigest = digest.partition(":")
    doc = json.loads((layout / "blobs" / algo / hexdigest).read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{digest} in {layout} is not a JSON object")
    return doc


def read_image(layout: Path, tag: str) -> ImageInfo:
    index = json.loads((layout / "index.json").read_text())
    refs = [
        m
        for m in index.get("manifests", [])
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    if len(refs) != 1:
        raise ValueError(f"{layout}: want exactly one manifest tagged {tag!r}, found {len(refs)}")
    manifest = _blob(layout, refs[0]["digest"])
    config = _blob(layout, manifest["config"]["digest"])
    return ImageInfo(
        manifest_digest=refs[0]["digest"],
        config=config.get("config") or {},
        layers=list(manifest.get("layers", [])),
        created=str(config.get("created", "")),
    )
