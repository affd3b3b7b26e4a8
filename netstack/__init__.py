"""Container networking: ``--network``/``-p``/``--link``/``--dns`` parsing, slirp4netns (process,
feature probe, API socket), published ports and the built-in relay (which brings each client's
address through: policy rules and local routes over netlink), links (veth over netlink),
loopback, and the generated /etc/hosts, /etc/resolv.conf and /etc/hostname; it imports only
:mod:`rootless.base`, never :mod:`layers`, the runtime or anything above.
"""
