"""Go's text/template, a strict subset, for ``--format`` / ``-f``, and Docker's list output around it.
``compile(text)`` parses a template once; ``Template.render(data)`` evaluates it; every syntax error,
unsupported construct or failure on the data raises ``TemplateError`` (a ``UsageError``, exit code 125):
a template never silently renders as an empty string. Docker's lists: ``split_table`` (the ``table``
prefix), ``unescape`` (``\\t``, ``\\n``), ``compile_format`` (both, then compile; sets
``Template.is_table``), ``header_row`` / ``Template.header`` (each field becomes its column title; json,
join, split, upper, lower, title and truncate return it unchanged, as in Docker), ``tabwrite`` and
``render_rows``. The modules, bottom to top: ``values`` (Go's values, ``%v``, the errors, ``Struct``),
``printf`` (Go's fmt verbs), ``funcs`` (the functions), ``lexer``, ``evaluator`` (the nodes and their
evaluation, ``Template``), ``parser`` (what is supported), ``tabwriter``. It imports only
``rootless.base``; a command without a template does not load it (``events`` does, for ``Struct``).
"""

from __future__ import annotations

from rootless.cli.gotemplate.evaluator import Template
from rootless.cli.gotemplate.parser import Parser
from rootless.cli.gotemplate.tabwriter import tabwrite
from rootless.cli.gotemplate.values import NilMap, NilSlice, Struct, TemplateError
from rootless.cli.gotemplate.values import show as _show  # noqa: F401 (Go's %v: the tests check it)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["NilMap", "NilSlice", "Struct", "Template", "TemplateError", "compile", "compile_format", "header_row",
           "render_rows", "split_table", "tabwrite", "unescape"]


def compile(text: str) -> Template:
    """Parse a template; raise TemplateError for anything unsupported."""
    return Template(text, Parser(text).parse())


def split_table(text: str) -> tuple[bool, str]:
    """Docker's list formats: a leading ``table`` asks for a header and columns.

    Like Docker, the prefix is stripped and the rest trimmed of spaces.
    """
    if text.startswith("table"):
        return True, text[5:].strip(" ")
    return False, text.strip(" ")


def unescape(text: str) -> str:
    """Turn the two-character sequences ``\\t`` and ``\\n`` into tab and newline."""
    return text.replace("\\t", "\t").replace("\\n", "\n")


def compile_format(fmt: str) -> Template:
    """A ``--format`` value of a list command: ``table`` prefix, escapes, template."""
    is_table, rest = split_table(fmt)
    tmpl = compile(unescape(rest))
    tmpl.is_table = is_table
    return tmpl


def header_row(template_text: str, headers: Mapping[str, str]) -> str:
    """The template rendered with each field replaced by its column title."""
    return compile(template_text).header(headers)


def render_rows(fmt: str, rows: Iterable, headers: Mapping[str, str] | None = None,
                default: str = "") -> str:
    """Render a list command's rows with a ``--format`` value.

    Plain formats give one rendered row per line; ``table`` formats add a
    header row and align the tab-separated columns. A bare ``table`` uses
    ``default``. No trailing newline.
    """
    is_table, rest = split_table(fmt)
    if is_table and not rest:
        if not default:
            raise TemplateError("template: \"table\" needs a template after it")
        rest = split_table(default)[1]
    tmpl = compile(unescape(rest))
    lines = [tmpl.render(row) for row in rows]
    if not is_table:
        return "\n".join(lines)
    return tabwrite("\n".join([tmpl.header(headers or {}), *lines]))
