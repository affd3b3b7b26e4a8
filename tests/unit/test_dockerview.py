"""Docker's views of a container (engine.dockerview)."""

def test_top_never_lists_the_hosts_processes():
    """A pid that is not in a container's own pid namespace (a stale or reused one, or 0) gives no rows,
    never the list of the user's processes on the host."""
    import os

    from rootless.engine.dockerview import top_rows
    assert top_rows(os.getpid()) == []
    assert top_rows(0) == []
