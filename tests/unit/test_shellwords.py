"""Dockerfile word processing (layers.shellwords) against Docker's (buildkit's) behaviour."""

from __future__ import annotations

import pytest

from layers.shellwords import WordError, expand_word, expand_words, referenced
from rootless.base.errors import UsageError

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


# ---- expand_word: quoting, escapes, plain variables (after buildkit's envVarTest) ----

@pytest.mark.parametrize("word, expected", [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    (r"he\'llo", "he'llo"),
    (r"abc\tdef", "abctdef"),
    (r'"abc\tdef"', r"abc\tdef"),
    (r'"abc\\tdef"', r"abc\tdef"),
    (r"'abc\tdef'", r"abc\tdef"),
    ("hello\\", "hello"),
    (r"hello\\", "hello\\"),
    ("\"hel'lo\"", "hel'lo"),
    ("'hello\\'", "hello\\"),
    (r"'hello\\there'", r"hello\\there"),
    ("\"''\"", "''"),
    ("'\"hello\"'", '"hello"'),
    ("$.", "$."),
    ("$", "$"),
    ("a$", "a$"),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    (r"he\$PWD", "he$PWD"),
    (r"he\\$PWD", "he\\/home"),
    (r'"he\$PWD"', "he$PWD"),
    (r'"he\\$PWD"', "he\\/home"),
    (r"'he\$PWD'", r"he\$PWD"),
    (r"\${}", "${}"),
    (r"he\${}xx", "he${}xx"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ("\"he'$PWD'\"", "he'/home'"),
    ("'$PWD'", "$PWD"),
    ("${aaa}}", "}"),
    ("안'녕'하세요", "안녕하세요"),
    (r"안녕\t하세요", "안녕t하세요"),
    ("안녕$KOREAN", "안녕한국어"),
    ("$KOREAN", "한국어"),
    ("a  b\tc", "a  b\tc"),  # one word: whitespace stays
    ("'a  b'   \"c d\"", "a  b   c d"),
    ("a\\ b", "a b"),
    ('"a\\b"', "a\\b"),  # in double quotes a backslash before anything else stays
    ('"a\\"b"', 'a"b'),
    ("\"a'b\"'c\"d'", "a'bc\"d"),
])
def test_expand_word(word, expected):
    assert expand_word(word, ENV) == expected


# ---- the ${...} forms ----

@pytest.mark.parametrize("word, expected", [
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("${NULL:-dflt}", "dflt"),
    ("${NULL-dflt}", ""),
    ("${XXX-dflt}", "dflt"),
    ("${PWD-dflt}", "/home"),
    ("${XXX:-}", ""),
    ("${XXX:-a b  c}", "a b  c"),
    ("${XXX:-\"q}\"}", "q}"),
    ("${XXX:-'$PWD'}", "$PWD"),
    ("${XXX:-a\\}b}", "a}b"),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("${NULL:+set}", ""),
    ("${NULL+set}", "set"),
    ("${XXX+set}", ""),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    (r"he${XXX:-\$PWD:}xx", "he$PWD:xx"),
    (r"he${XXX:-\${PWD}z}xx", "he${PWDz}xx"),
    ("${aaa:-bbb}}", "bbb}"),
    ("${aaa:-${bbb:-ccc}}", "ccc"),
    ("${aaa:-bbb {foo}", "bbb {foo"),
    # positional and special parameters exist as names but are never set
    ("$1", ""),
    ("${1}", ""),
    ("${9:-bbb}", "bbb"),
    ("${999:+bbb}aaa", "aaa"),
    ("$999aaa", "aaa"),
    ("$001aaa", "aaa"),
    ("$@@@", "@@"),
    ("${@:-bbb}aaa", "bbbaaa"),
    ("$*$#$?$-$$$!$0", ""),
    ("${#:-bbb}", "bbb"),
    ("${$:+bbb}", ""),
    ("${0:-bbb}", "bbb"),
])
def test_parameter_forms(word, expected):
    assert expand_word(word, ENV) == expected


@pytest.mark.parametrize("word, env, expected", [
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx"}, "xxx"),
    ("${BAR?bbb}", {"BAR": ""}, ""),
    ("${FOO:?aaa}", {"FOO": "xxx"}, "xxx"),
    ("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}, "plain"),
    ("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}, ""),
    ("v-${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tgz", {"OS": "linux", "ARCH": "arm", "VARIANT": "v7"},
     "v-linux-arm-v7.tgz"),
    ("v-${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tgz", {"OS": "linux", "ARCH": "arm64", "VARIANT": ""},
     "v-linux-arm64.tgz"),
    ("v-${OS}-${ARCH}${VARIANT:+-${VARIANT}}.tgz", {"OS": "linux", "ARCH": "arm64"},
     "v-linux-arm64.tgz"),
])
def test_parameter_forms_with_env(word, env, expected):
    assert expand_word(word, env) == expected


# ---- ${VAR#pat} ${VAR##pat} ${VAR%pat} ${VAR%%pat} ${VAR/pat/text} ${VAR//pat/text} ----

@pytest.mark.parametrize("word, env, expected", [
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*}", {"FOO": "xxyy"}, ""),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO#*x}", {"FOO": "xxyy"}, "xyy"),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${FOO#x}", {}, ""),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%y}", {"FOO": "xxyy"}, "xxy"),
    ("${FOO%y*}", {"FOO": "xxyyxy"}, "xxyyx"),
    ("${FOO%%y*}", {"FOO": "xxyyxy"}, "xx"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FILE%.tar.gz}", {"FILE": "app-1.2.tar.gz"}, "app-1.2"),
    ("${FILE##*/}", {"FILE": "/usr/local/bin/tool"}, "tool"),
    ("${FILE%/*}", {"FILE": "/usr/local/bin/tool"}, "/usr/local/bin"),
    ('${FOO#"a\\b"}', {"FOO": "a\\bc"}, "c"),  # a backslash quoted in a pattern is literal
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
     "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$NEEDLE/$REPL} - ${FOO//$NEEDLE/$REPL}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPL": "/"},
     "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO/$NEEDLE/$REPL}", {"FOO": "http://google.de", "NEEDLE": "http://", "REPL": "https://"},
     "https://google.de"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    ("${FOO//*/x}", {"FOO": "abcabc"}, "x"),  # no second, empty match at the end
    ("${FOO//b/$}", {"FOO": "abcabc"}, "a$ca$c"),  # the replacement is literal
    ("${FOO/b*/-}", {"FOO": "abcabc"}, "a-"),
])
def test_patterns(word, env, expected):
    assert expand_word(word, env) == expected


# ---- the escape character ----

@pytest.mark.parametrize("word, expected", [
    ("C:\\Users\\x", "C:\\Users\\x"),  # with ` as escape, \ is an ordinary character
    ("a`$PWD", "a$PWD"),
    ("a``$PWD", "a`/home"),
    ("a` b", "a b"),
    ('"a`"b"', 'a"b'),
    ('"a`$PWD"', "a$PWD"),
    ('"a`x"', "a`x"),
    ('"a\\$PWD"', "a\\/home"),
    ("'a`b'", "a`b"),
    ("trailing`", "trailing"),
    ("${XXX:-a`}b}", "a}b"),
])
def test_backtick_escape(word, expected):
    assert expand_word(word, ENV, escape="`") == expected


# ---- expand_words: splitting (after buildkit's wordsTest) ----

SPLIT_ENV = {"hi": "hi", "space": "abc  def", "leading": "  ab c", "trailing": "ab c   ",
             "NULL": ""}


@pytest.mark.parametrize("text, expected", [
    ("hello", ["hello"]),
    ("hello${nope}bye", ["hellobye"]),
    ("hello${hi}bye", ["hellohibye"]),
    ("hello${space}bye", ["helloabc", "defbye"]),
    ('hello"${space}"bye', ["helloabc  defbye"]),
    ('hello "${space}"bye', ["hello", "abc  defbye"]),
    ("hello${leading}def", ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["hello  ab c", "def"]),
    ("hello${leading}", ["hello", "ab", "c"]),
    ("hello${trailing}", ["helloab", "c"]),
    ("hello${trailing}d", ["helloab", "c", "d"]),
    ('hello"${trailing}"d', ["helloab c   d"]),
    ('hel"lo${trailing}"', ["helloab c   "]),
    ('hello" there  "', ["hello there  "]),
    ("hello there     ", ["hello", "there"]),
    ("  \t hello \n there \t", ["hello", "there"]),
    ("hello\\ there", ["hello there"]),
    ('hello\\" there', ['hello"', "there"]),
    ('hello"\\\\there"', ["hello\\there"]),
    ('hello"\\there"', ["hello\\there"]),
    ("hello'\\\\there'", ["hello\\\\there"]),
    ("hello'$there'", ["hello$there"]),
    ("${nope:-a b}", ["a", "b"]),
    ('${nope:-"a b"}', ["a", "b"]),  # the value of an unquoted expansion is split
    ("ab${nope:-c}d", ["abcd"]),
    ("a $NULL b", ["a", "b"]),
    ('a "" b', ["a", "b"]),  # Docker drops empty words, quoted or not
    ('a "$NULL"b', ["a", "b"]),
    ("", []),
    ("   ", []),
])
def test_expand_words(text, expected):
    assert expand_words(text, SPLIT_ENV) == expected


def test_expand_words_backtick():
    assert expand_words("a` b c`` d", {}, escape="`") == ["a b", "c`", "d"]


# ---- errors ----

@pytest.mark.parametrize("word", [
    "he'llo", r"he\\'llo", '"hello', r'"hello\"', "'hello", "안'녕하세요",
    "${}", "${}aaa", "he${}xx", "he${.}", "${1a}", "${ a}", "${{aaa}", "${{aaa:-bbb}",
    "${:}", "${:-bbb}", "${:+bbb}", "${", "${aaa", "he${PWD", "${aaa:-bbb", "${aaa:-bbb ${foo}",
    "he${XXX:YYY}", "he${PWD:=000}xx", "${FOO=aaa}", "${FOO:#a}", "${FOO:%%a}", "${FOO:",
    "he${XXX?}", "he${XXX:?}", "he${NULL:?}", "${XXX:-${YYY:?}}",
    "${PWD//ww}", "${PWD//}", "${PWD/a/b", "${PWD#\\x}", "${PWD%a\\}", "${XXX:-'a}",
])
def test_errors(word):
    with pytest.raises(WordError):
        expand_word(word, ENV)
    with pytest.raises(WordError):
        expand_words(word, ENV)


@pytest.mark.parametrize("word, env, message", [
    ("${FOO:?}", {}, 'failed to process "${FOO:?}": FOO: is not allowed to be unset'),
    ("${FOO:?}", {"FOO": ""}, 'failed to process "${FOO:?}": FOO: is not allowed to be empty'),
    ("${FOO?}", {"FOO": ""}, None),
    ("${FOO:?set it$ARG}", {"ARG": "!"}, 'failed to process "${FOO:?set it$ARG}": FOO: set it!'),
    ("${FOO:?set it$ARG}", {"FOO": "", "ARG": "!"},
     'failed to process "${FOO:?set it$ARG}": FOO: set it!'),
    ("${FOO?set it}", {}, 'failed to process "${FOO?set it}": FOO: set it'),
    ("a${}", {}, 'failed to process "a${}": syntax error: bad substitution'),
    ("${A:-b", {}, "failed to process \"${A:-b\": syntax error: missing '}'"),
    ("${A/b", {}, "failed to process \"${A/b\": syntax error: missing '/' in ${}"),
    ("${A:=b}", {}, 'failed to process "${A:=b}": unsupported modifier (:=) in substitution'),
    ("'a", {}, "failed to process \"'a\": "
     "unexpected end of statement while looking for matching single-quote"),
    ('x"a\\"', {}, 'failed to process "x\\"a\\\\\\"": '
     "unexpected end of statement while looking for matching double-quote"),
    ("a\nb\t'", {}, "failed to process \"a\\nb\\t'\": "
     "unexpected end of statement while looking for matching single-quote"),
    ("${A#\\q}", {}, 'failed to process "${A#\\\\q}": invalid pattern (\\q) in substitution: '
     "invalid escape '\\q'"),
])
def test_error_messages(word, env, message):
    if message is None:
        assert expand_word(word, env) == ""
        return
    with pytest.raises(WordError) as caught:
        expand_word(word, env)
    assert str(caught.value) == message
    assert caught.value.message == message
    assert "\n" not in message


def test_word_error_is_a_usage_error():
    assert issubclass(WordError, UsageError)


# ---- referenced ----

@pytest.mark.parametrize("text, names", [
    ("plain", set()),
    ("$A ${B} ${C:-x} ${D-x} ${E:+x} ${F+x} ${G:?x} ${H?x}", set("ABCDEFGH")),
    ("${A#x} ${B##x} ${C%x} ${D%%x} ${E/x/y} ${F//x/y}", set("ABCDEF")),
    ("${A:-${B:+$C}}", {"A", "B", "C"}),
    ("${A#$B} ${C/$D/${E:-$F}}", set("ABCDEF")),
    ("'$A' \\$B \"$C\" \"\\$D\" ${E:-'$F'}", {"C", "E"}),
    ("$TARGETOS/$TARGETARCH${TARGETVARIANT:+/$TARGETVARIANT}",
     {"TARGETOS", "TARGETARCH", "TARGETVARIANT"}),
    ("$A_1.$b$ü", {"A_1", "b", "ü"}),
    ("a`$B $C", {"C"}),
    ("$", set()),
])
def test_referenced(text, names):
    assert referenced(text, escape="`" if "`" in text else "\\") == names


def test_referenced_ignores_values():
    # set or not, empty or not: ${X:?} does not fail when only the names are wanted
    assert referenced("${X:?} ${Y?}") == {"X", "Y"}


@pytest.mark.parametrize("text", ["${", "'a", "${A:-b", "${}"])
def test_referenced_malformed(text):
    with pytest.raises(WordError):
        referenced(text)
