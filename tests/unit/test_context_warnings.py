"""The Context's warnings: said once, to the face's hook or stderr; collected for an API response."""

from rootless.engine.context import Context


def test_a_warning_goes_to_stderr_once_by_default(capsys):
    ctx = Context(root="/nonexistent")
    ctx.warn("the disk is small")
    ctx.warn("the disk is small")
    assert capsys.readouterr().err == "rootless: warning: the disk is small\n"


def test_a_face_may_take_the_warnings(capsys):
    seen = []
    ctx = Context(root="/nonexistent", warnings=seen.append)
    ctx.warn("a")
    ctx.warn("a")
    assert seen == ["a"]
    assert capsys.readouterr().err == ""


def test_warnings_collected_for_a_response_then_stderr_again(capsys):
    ctx = Context(root="/nonexistent")
    ctx.warn("before")
    with ctx.collecting_warnings() as found:
        ctx.warn("before")  # said again in a new response
        ctx.warn("limit discarded")
        ctx.warn("limit discarded")
    assert found == ["before", "limit discarded"]
    ctx.warn("after")
    ctx.warn("before")  # already said on stderr
    assert capsys.readouterr().err == "rootless: warning: before\nrootless: warning: after\n"
