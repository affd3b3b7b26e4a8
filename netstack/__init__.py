"""Container networking: slirp4netns, port forwarding, links and /etc files.

Empty for now: the foundation only offers ``--network none|host``, which the
runtime handles itself. slirp4netns, published ports and links land here.
"""
