"""Images: references, manifests, the registry client (pull, push, auth), the content-addressed
store, safe unpacking, whiteouts, overlay mounts, commit, archives (docker-archive, OCI) and
what a Dockerfile means (parsing, word expansion, .dockerignore, the build context, the build
cache, the builder); it imports only :mod:`rootless.base`, never :mod:`netstack`, the runtime or
anything above, and what must run in a user namespace (unpacking, removing trees) or start a
container (a build's steps) is handed to it as a callable or an executor object.
"""
