"""Tests for rootless/cli/progress.py: terminal lines redrawn in place, plain lines elsewhere."""

import io

from rootless.cli import progress


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_quiet_is_silent_and_plain_is_lines():
    assert progress.reporter(True) is None
    out = io.StringIO()
    say = progress.reporter(False, out)
    say("0123456789ab: Pull complete")
    say.progress("sha256:" + "0" * 64, 5, 10)  # no bars when not a terminal
    assert out.getvalue() == "0123456789ab: Pull complete\n"


def test_terminal_redraws_each_layer_in_place():
    out = Tty()
    say = progress.reporter(False, out)
    assert isinstance(say, progress.Terminal)
    say("latest: Pulling from x")
    say("aaaaaaaaaaaa: Already exists")
    say.progress("sha256:" + "b" * 64, 10, 10)
    say("bbbbbbbbbbbb: Pull complete")
    text = out.getvalue()
    assert "\x1b[1A" in text and "\x1b[2A" in text  # moved up over the layer lines to redraw them
    assert "bbbbbbbbbbbb: Downloading [" + "=" * 30 + "] 10B/10B" in text
    final = text.split("\x1b[2A")[-1]
    assert final == "\x1b[2Kaaaaaaaaaaaa: Already exists\n\x1b[2Kbbbbbbbbbbbb: Pull complete\n"
