"""``push``: an image's blobs (those the registry lacks), then its manifest.

Blobs the repository already has (HEAD) are skipped; a blob another repository of the same
registry has is mounted across (``?mount=&from=``) when the registry allows; the rest are
uploaded in one PUT, or in chunks (PATCH) when larger than ``CHUNK``. The manifest (OCI) is
put last, so a registry never names an image whose blobs it lacks.
"""

from __future__ import annotations

import functools
import hashlib
from collections import namedtuple

from layers import manifest, reference
from layers.pull import client_for
from layers.registry import Client, RegistryError, Response
from layers.store import ImageStore
from rootless.base.errors import RootlessError

TYPE_CHECKING = False  # annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

CHUNK = 64 << 20
Pushed = namedtuple("Pushed", "digest size reference")


def _blob_exists(client: Client, digest: str) -> bool:
    resp = client.request("HEAD", f"/v2/{client.repository}/blobs/{digest}", ok=(200, 404), what="blob check")
    return resp.status == 200


def _location(client: Client, resp: Response) -> str:
    loc = resp.headers.get("Location", "")
    if not loc:
        raise RegistryError(f"{client.ref_text}: the registry gave no upload location")
    if loc.startswith(("http://", "https://")):
        from urllib.parse import urlsplit
        parts = urlsplit(loc)
        loc = parts.path + (f"?{parts.query}" if parts.query else "")
    return loc


def _with_digest(loc: str, digest: str) -> str:
    return loc + ("&" if "?" in loc else "?") + f"digest={digest}"


def upload_blob(client: Client, path: str, digest: str, size: int, mount_from: str | None = None,
                source: Callable[[], BinaryIO] | None = None) -> str:
    """Put the blob at ``path`` (or, with ``source``, the stream it opens: a store's blob, maybe a
    layer re-created from its tree) into the repository; how: "exists", "mounted" or "uploaded"."""
    if _blob_exists(client, digest):
        return "exists"
    start = f"/v2/{client.repository}/blobs/uploads/"
    if mount_from and mount_from != client.repository:
        resp = client.request("POST", f"{start}?mount={digest}&from={mount_from}", ok=(201, 202),
                              what="blob mount")
        if resp.status == 201:
            return "mounted"
    else:
        resp = client.request("POST", start, ok=(202,), what="blob upload")
    loc = _location(client, resp)
    with source() if source else open(path, "rb") as f:  # a re-created tar is verified before its end
        if size <= CHUNK:
            client.request("PUT", _with_digest(loc, digest),
                           {"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                           body=f.read(), ok=(201,), what="blob upload")
            return "uploaded"
        offset = 0
        while offset < size:
            chunk = f.read(CHUNK)
            resp = client.request("PATCH", loc, {"Content-Type": "application/octet-stream",
                                                 "Content-Length": str(len(chunk)),
                                                 "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
                                  body=chunk, ok=(202,), what="blob upload")
            loc = _location(client, resp)
            offset += len(chunk)
        client.request("PUT", _with_digest(loc, digest), {"Content-Length": "0"}, body=b"", ok=(201,),
                       what="blob upload")
    return "uploaded"


def push(store: ImageStore, image_ref: str, dest: str | None = None, creds: tuple[str, str] | None = None,
         insecure: bool | None = None, ca_dir: str | None = None, say: Callable[[str], object] | None = None) -> Pushed:
    """Push the local image ``image_ref`` to ``dest`` (default: its own name)."""
    say = say or (lambda _line: None)
    rec = store.resolve(image_ref)
    ref = reference.parse(dest or image_ref)
    if ref.digest:
        raise RegistryError(f"cannot push to a digest reference: {ref}", "push to a tag")
    client = client_for(ref, creds, insecure, push=True, ca_dir=ca_dir)
    try:
        say(f"The push refers to repository [{ref.repository}]")
        layers = []
        for lr in rec["layers"]:
            if not store.has_blob(lr["blob"]):
                raise RegistryError(f"layer {lr['blob'][7:19]} of {image_ref} is not in the store",
                                    "pull or load the image again")
            size = store.blob_size(lr["blob"])
            how = upload_blob(client, store.paths.blob(lr["blob"]), lr["blob"], size, _mount_source(store, rec, ref),
                              source=functools.partial(store.open_blob, lr["blob"]))
            say(f"{lr['blob'][7:19]}: "
                f"{'Layer already exists' if how == 'exists' else 'Mounted' if how == 'mounted' else 'Pushed'}")
            layers.append((lr["blob"], size, lr.get("media_type", "")))
        config_size = store.blob_size(rec["id"])
        upload_blob(client, store.paths.blob(rec["id"]), rec["id"], config_size)
        body = manifest.oci_manifest(rec["id"], config_size, layers)
        client.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag}", {"Content-Type": manifest.OCI_MANIFEST},
                       body=body, ok=(201,), what="manifest")
    finally:
        client.close()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    say(f"{ref.tag}: digest: {digest} size: {len(body)}")
    return Pushed(digest, len(body), ref)


def _mount_source(store: ImageStore, rec: dict, ref: reference.Reference) -> str | None:
    """Another repository of the same registry this image came from (for a cross-repository mount)."""
    for rd in rec.get("repo_digests", []):
        try:
            other = reference.parse(rd)
        except RootlessError:  # a malformed stored digest reference: no mount
            continue
        if other.registry == ref.registry and other.path != ref.path:
            return other.path
    return None
