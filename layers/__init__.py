"""Images: references, manifests, the registry client (pull, push, auth), the content-addressed
store, safe unpacking, whiteouts, overlay mounts, commit and archives (docker-archive, OCI); it
imports only :mod:`rootless.base`, never :mod:`netstack`, the runtime or anything above, and what
must run in a user namespace (unpacking, removing trees) is handed to it as a callable.
"""
