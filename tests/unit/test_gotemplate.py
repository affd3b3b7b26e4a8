"""Tests for rootless/cli/gotemplate/: Go text/template as Docker's --format uses it.

The expected outputs are what Go's text/template (with Docker's functions)
prints for the same template over the same data decoded from JSON. The
literal-only printf, comparison and tabwriter cases were checked against a
Docker CLI binary.
"""

import math

import pytest

from rootless.base.errors import UsageError
from rootless.cli import gotemplate
from rootless.cli.gotemplate import TemplateError

ID = "4f2a9c1e7b3d8a6f0e5c2b1a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e"

DATA = {
    "ID": ID,
    "Name": "/web",
    "Names": "web",
    "Image": "alpine:3.19",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0,
              "Health": None},
    "Config": {
        "Hostname": "4f2a9c1e7b3d",
        "Env": ["PATH=/usr/bin", "TERM=xterm"],
        "Cmd": ["sh", "-c", "echo hi"],
        "Labels": {"com.example.k": "v1", "app": "web"},
        "Entrypoint": None,
    },
    "Mounts": [
        {"Type": "bind", "Source": "/srv/data", "Destination": "/data", "RW": True},
        {"Type": "volume", "Source": "/var/lib/v", "Destination": "/v", "RW": False},
    ],
    "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None},
    "Size": 1.5,
    "Ratio": 3.0,
    "Big": 1e6,
    "Count": 0,
    "Empty": "",
    "List0": [],
    "Map0": {},
}


def render(text, data=DATA):
    return gotemplate.compile(text).render(data)


# --- Docker's common script forms --------------------------------------------

@pytest.mark.parametrize("text, out", [
    ("{{.State.Status}}", "running"),
    ("{{.Name}}", "/web"),
    ("{{.ID}}", ID),
    ("{{.Names}}", "web"),
    ("{{truncate .ID 12}}", "4f2a9c1e7b3d"),
    ('{{index .Config.Labels "com.example.k"}}', "v1"),
    ("{{json .Config}}",
     '{"Hostname":"4f2a9c1e7b3d","Env":["PATH=/usr/bin","TERM=xterm"],'
     '"Cmd":["sh","-c","echo hi"],"Labels":{"com.example.k":"v1","app":"web"},'
     '"Entrypoint":null}'),
    ("{{json .Config.Labels}}", '{"com.example.k":"v1","app":"web"}'),
    ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/srv/data:/data /var/lib/v:/v "),
    ('{{(index (index .Ports "80/tcp") 0).HostPort}}', "8080"),
    ('{{range $p, $conf := .Ports}}{{$p}}->{{$conf}};{{end}}',
     "443/tcp-><nil>;80/tcp->[map[HostIp:0.0.0.0 HostPort:8080]];"),
    ('{{join .Config.Cmd " "}}', "sh -c echo hi"),
    ("{{.State.Pid}} {{.State.Running}} {{.State.ExitCode}}", "4242 true 0"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ('{{if eq .State.Status "running" "restarting"}}live{{end}}', "live"),
])
def test_docker_forms(text, out):
    assert render(text) == out


# --- fields, variables and Go's printing of values -----------------------------

@pytest.mark.parametrize("text, out", [
    ("{{.Config.Env}}", "[PATH=/usr/bin TERM=xterm]"),
    ("{{.Config.Labels}}", "map[app:web com.example.k:v1]"),  # keys sorted
    ("{{.Mounts}}", "[map[Destination:/data RW:true Source:/srv/data Type:bind] "
                    "map[Destination:/v RW:false Source:/var/lib/v Type:volume]]"),
    ("{{.List0}}|{{.Map0}}|{{.Empty}}|{{.Count}}", "[]|map[]||0"),
    ("{{.Size}} {{.Ratio}} {{.Big}}", "1.5 3 1e+06"),
    # a missing map key prints <no value>, also further down a chain
    ("{{.Nope}}", "<no value>"),
    ("{{.Nope.Deeper.Still}}", "<no value>"),
    ('{{index .Config.Labels "nope"}}', ""),  # as docker inspect prints it
    # a null prints like Docker's nil pointers
    ("{{.State.Health}}", "<nil>"),
    ("{{print .Nope}}", "<nil>"),
    ("{{$}}", None),
    ("{{$.Names}}", "web"),
    ("{{with .State}}{{$.Names}}:{{.Status}}{{end}}", "web:running"),
    ("{{$n := .Names}}{{range .Mounts}}{{$n}}/{{.Type}} {{end}}", "web/bind web/volume "),
    ("{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}", "12"),
    ("{{$x := 1}}{{range .Mounts}}{{$x = .Type}}{{end}}{{$x}}", "volume"),
    ("{{$x := 1}}{{if true}}{{$x := 5}}{{$x}}{{end}}{{$x}}", "51"),
    ("{{$s := .State}}{{$s.Status}}", "running"),
    ("{{(index .Mounts 1).Source}}", "/var/lib/v"),
    ("{{index .Mounts 1 \"Type\"}}", "volume"),
    ("{{index .Config.Cmd 2}}", "echo hi"),
    ("{{index .Names 0}}", "119"),  # a byte, as in Go
    ("{{index .Names}}", "web"),
])
def test_values(text, out):
    if out is None:
        out = gotemplate._show(DATA)
    assert render(text) == out


def test_dot_prints_a_map_sorted():
    assert render("{{.}}", {"b": 1, "a": [1, "x", None, 2.5]}) == "map[a:[1 x <nil> 2.5] b:1]"


@pytest.mark.parametrize("value, out", [
    (3.0, "3"), (1.5, "1.5"), (-0.0, "-0"), (0.0, "0"), (100000.0, "100000"),
    (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (123456.5, "123456.5"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (1e21, "1e+21"), (2.5e-7, "2.5e-07"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"),
    (True, "true"), (False, "false"), (None, "<nil>"), (-7, "-7"),
])
def test_go_value_printing(value, out):
    assert render("{{.V}}", {"V": value}) == out


# --- literals -------------------------------------------------------------------

@pytest.mark.parametrize("text, out", [
    ('{{"a\\tb\\\\c\\"d\\u00e9\\x41\\101"}}', 'a\tb\\c"déAA'),
    ("{{`raw\\n{{x}}`}}", "raw\\n{{x}}"),
    ('{{"}}"}}', "}}"),
    ("{{'a'}} {{'\\n'}}", "97 10"),
    ("{{3}} {{-3}} {{+3}} {{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}}",
     "3 -3 3 31 15 15 5 1000"),
    ("{{1.50}} {{1e3}} {{.5}} {{2.0}}", "1.5 1000 0.5 2"),
    ("{{true}} {{false}}", "true false"),
    ("{{print nil}}", "<nil>"),
])
def test_literals(text, out):
    assert render(text) == out


# --- whitespace trimming and comments ----------------------------------------

@pytest.mark.parametrize("text, out", [
    ("a  {{- .Names -}}  b", "awebb"),
    ("a\n\t {{- .Names}}\n", "aweb\n"),
    ("{{.Names -}}\n\n  x", "webx"),
    ("{{range .Mounts -}}\n  {{.Type}}\n{{- end}}", "bindvolume"),
    ("{{range .Mounts}}\n  {{- .Type}},\n{{- end}}", "bind,volume,"),
    ("{{-3}}", "-3"),  # no space after "-": a number, not a trim marker
    ("{{3 -}} x", "3x"),
    ("a {{/* a comment */}} b", "a  b"),
    ("a {{- /* a comment */ -}} b", "ab"),
    ("{{/* multi\nline */}}x", "x"),
])
def test_trimming_and_comments(text, out):
    assert render(text) == out


# --- control structures ---------------------------------------------------------

@pytest.mark.parametrize("text, out", [
    ("{{if .Count}}a{{else if .Empty}}b{{else if .List0}}c{{else if .Map0}}d{{else}}e{{end}}", "e"),
    ("{{if .Nope}}a{{else if .State.Health}}b{{else}}c{{end}}", "c"),
    ("{{if .Size}}a{{else if .Names}}b{{end}}", "a"),
    ("{{if .Count}}a{{end}}", ""),
    ("{{if $s := .State.Status}}{{$s}}{{end}}", "running"),
    ("{{if $c := .Count}}a{{else}}{{$c}}{{end}}", "0"),
    ("{{with .State}}{{.Status}}/{{.Pid}}{{end}}", "running/4242"),
    ("{{with .Nope}}x{{else}}{{.Names}}{{end}}", "web"),
    ("{{with .Empty}}x{{else with .Names}}{{.}}{{end}}", "web"),
    ("{{with $s := .State.Status}}{{$s}}={{.}}{{end}}", "running=running"),
    ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Type}};{{end}}", "0=bind;1=volume;"),
    ("{{range $m := .Mounts}}{{$m.Type}};{{end}}", "bind;volume;"),
    ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}", "app=web,com.example.k=v1,"),
    ("{{range .Config.Labels}}{{.}} {{end}}", "web v1 "),
    ("{{range .List0}}x{{else}}none{{end}}", "none"),
    ("{{range .Map0}}x{{else}}none{{end}}", "none"),
    ("{{range .Config.Entrypoint}}x{{else}}none{{end}}", "none"),
    ("{{range .Nope}}x{{else}}none{{end}}", "none"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    ("{{range $i := 2}}[{{$i}}]{{end}}", "[0][1]"),
    ('{{range .Config.Cmd}}{{if eq . "-c"}}{{continue}}{{end}}{{.}};{{end}}', "sh;echo hi;"),
    ('{{range .Config.Cmd}}{{if eq . "-c"}}{{break}}{{end}}{{.}};{{end}}', "sh;"),
    ("{{range .Mounts}}{{range $.Config.Cmd}}{{break}}{{end}}{{.Type}}{{end}}", "bindvolume"),
    ("{{range .Mounts}}{{$t := .Type}}{{$t}}{{end}}", "bindvolume"),
])
def test_control(text, out):
    assert render(text) == out


# --- functions ------------------------------------------------------------------

@pytest.mark.parametrize("text, out", [
    ("{{.Names | upper}}", "WEB"),
    ('{{.Names | printf "%s!"}}', "web!"),
    ('{{.Names | printf "%s-%s" "x"}}', "x-web"),
    ("{{.Names | upper | len}}", "3"),
    ("{{upper .Names}} {{lower \"ABC\"}}", "WEB abc"),
    ('{{title "hello wORLD foo-bar don\'t a.b x_y"}}', "Hello WORLD Foo-Bar Don'T A.B X_y"),
    ('{{split .Image ":"}}', "[alpine 3.19]"),
    ('{{index (split .Image ":") 1}}', "3.19"),
    ('{{split "abc" ""}}|{{len (split "" ",")}}', "[a b c]|1"),
    ('{{join .List0 ","}}|{{join .Config.Entrypoint ","}}', "|"),
    ("{{truncate .Names 2}}|{{truncate .Names 10}}|{{truncate .Names 0}}", "we|web|"),
    ("{{len .Mounts}} {{len .Names}} {{len .Config.Labels}} {{len \"héllo\"}}", "2 3 2 6"),
    ("{{json .Size}} {{json .Ratio}} {{json .Big}} {{json .Nope}} {{json .State.Running}}",
     "1.5 3 1000000 null true"),
    ("{{json .Mounts}}",
     '[{"Type":"bind","Source":"/srv/data","Destination":"/data","RW":true},'
     '{"Type":"volume","Source":"/var/lib/v","Destination":"/v","RW":false}]'),
    ("{{print .Names 1 2 \"x\" 3}}", "web1 2x3"),
    ("{{print 1 2}} {{print nil nil}} {{print}}", "1 2 <nil> <nil> "),
    ("{{println .Names .State.Pid}}", "web 4242\n"),
    ("{{not .Count}} {{not .Names}} {{not .Nope}}", "true false true"),
    ("{{and .Names .Count .Size}} {{and .Names .Size}} {{and .Nope 1}}", "0 1.5 <no value>"),
    ("{{or .Count .Empty .Names}} {{or .Count .Empty}} {{or nil}}", "web  <no value>"),
    ("{{if and .State.Running (eq .State.ExitCode 0)}}ok{{end}}", "ok"),
    ("{{.Names | and 1}} {{.Count | or 7}} {{.Count | or \"\"}}", "web 7 0"),
    ("{{eq .State.Status \"running\"}} {{eq 1 2}} {{eq 1 2 1}} {{eq true true}}",
     "true false true true"),
    ("{{ne .State.Pid 0}} {{ne \"a\" \"a\"}}", "true false"),
    ("{{eq .Nope \"x\"}} {{eq .State.Health nil}} {{eq .Nope nil}} {{eq .Mounts nil}}",
     "false true true false"),
    ("{{lt .Size 2.0}} {{gt .State.Pid 100}} {{le 1 1}} {{ge \"a\" \"b\"}} {{lt -1 0}}",
     "true true true false true"),
])
def test_functions(text, out):
    assert render(text) == out


# printf, checked against Go's fmt
@pytest.mark.parametrize("text, out", [
    ('{{printf "%-10s|%5d|%v|%q" .Names .State.Pid .Config.Env .Names}}',
     'web       | 4242|[PATH=/usr/bin TERM=xterm]|"web"'),
    ('{{printf "%-20s|" .Names}}', "web                 |"),
    ('{{printf "%v|%v|%v|%v|%v|%v" 0.0001 0.00001 -0.0 1e21 123456.5 1e20}}',
     "0.0001|1e-05|-0|1e+21|123456.5|1e+20"),
    ('{{printf "%d|%s|%v|%q|%x" "a" 5 nil "a\\"b\\n" "hi"}}',
     '%!d(string=a)|%!s(int=5)|<nil>|"a\\"b\\n"|6869'),
    ('{{printf "%d %d" 1}}', "1 %!d(MISSING)"),
    ('{{printf "%d" 1 "x" nil}}', "1%!(EXTRA string=x, <nil>)"),
    ('{{printf "%5.2f|%-6d|%06d|%x|%X|%o|%e|%g|%.3g|%8.3s|" 3.14159 42 -42 255 255 8 '
     '1234.5678 1e6 1234.5678 "abcdef"}}',
     " 3.14|42    |-00042|ff|FF|10|1.234568e+03|1e+06|1.23e+03|     abc|"),
    ('{{printf "%t %v %s" true false true}}', "true false %!s(bool=true)"),
    ('{{printf "%f|%d" 3 1.5}}', "%!f(int=3)|%!d(float64=1.5)"),
    ('{{printf "%c|%q|%U" 65 65 65}}', "A|'A'|U+0041"),
    ('{{printf "%x %X % x" "hello" "hi" "ab"}}', "68656c6c6f 6869 61 62"),
    ('{{printf "%+d %+d % d %+.1f" 5 -5 5 2.25}}', "+5 -5  5 +2.2"),
    ('{{printf "%10.3v|%-10v|" 3.14159 "ab"}}', "      3.14|ab        |"),
    ('{{printf "%05s|%.0f|%.f" "ab" 2.5 3.5}}', "000ab|2|4"),
    ('{{printf "%q|%5s|%d" (split "a,b" ",") (split "a,b" ",") (split "a,b" ",")}}',
     '["a" "b"]|[    a     b]|[%!d(string=a) %!d(string=b)]'),
    ('{{printf "%%|%|%z" 1}}', "%|%!|(int=1)%!z(MISSING)"),
    ('{{printf "%#x %#o %#v" 255 8 "s"}}', '0xff 010 "s"'),
    ('{{printf "%*d|%-*d|" 5 3 4 2}}', "    3|2   |"),
    ('{{printf "%q" "tab\\there\\x7f\\u00a0é"}}', '"tab\\there\\x7f\\u00a0é"'),
    ('{{printf "%+q" "é"}}', '"\\u00e9"'),
    ('{{printf "%v|%d" 9223372036854775807 -9223372036854775808}}',
     "9223372036854775807|-9223372036854775808"),
    ('{{printf "%6.2f%%" 99.5}}', " 99.50%"),
    ("{{printf \"%s\" .Nope}}", "%!s(<nil>)"),
])
def test_printf(text, out):
    assert render(text) == out


@pytest.mark.parametrize("value, out", [
    ("a\b\f\x01<>&\u2028 é\"\\", '"a\\b\\f\\u0001<>&\\u2028 é\\"\\\\"'),
    (1e21, "1e+21"), (1e-7, "1e-7"), (1.0, "1"), (0.000001, "0.000001"),
    (123456789.0, "123456789"), (-0.0, "-0"), (1e20, "100000000000000000000"),
    ([], "[]"), ({}, "{}"), (None, "null"), ([1, "a", None, False], '[1,"a",null,false]'),
])
def test_json(value, out):
    assert render("{{json .V}}", {"V": value}) == out


def test_methods_are_callables_in_the_data():
    labels = {"app": "web"}
    row = {"Label": lambda key: labels.get(key, ""), "ID": "abc"}
    assert render('{{.Label "app"}}|{{.Label "nope"}}|{{"app" | .Label}}', row) == "web||web"
    with pytest.raises(TemplateError, match="error calling Label"):
        render("{{.Label}}", row)


# --- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("{{.Names", "unclosed action"),
    ("{{.Names}", 'bad character "}" after ".Names"'),
    ("{{.Names ", "unclosed action"),
    ("{{foo .X}}", 'unsupported function "foo"'),
    ("{{html .X}}", 'unsupported function "html"'),
    ("{{pad .X 1 2}}", 'unsupported function "pad"'),
    ("{{end}}", "unexpected {{end}}"),
    ("{{else}}", "unexpected {{else}}"),
    ("x{{if .X}}a", "unclosed {{if}}: missing {{end}}"),
    ("{{range .X}}", "unclosed {{range}}"),
    ("{{with .X}}{{else}}", "unclosed {{with}}"),
    ("{{if 1}}a{{else}}b{{else}}c{{end}}", "expected {{end}}; found {{else}}"),
    ("{{range 1}}{{else if 1}}{{end}}", 'unexpected "if" in else'),
    ("{{if 1}}{{end x}}", 'unexpected "x" in end'),
    ("{{}}", "missing value for command"),
    ("{{ }}", "missing value for command"),
    ("{{if}}{{end}}", "missing value for if"),
    ("{{if 1}}{{else if}}{{end}}", "missing value for if"),
    ("{{range}}{{end}}", "missing value for range"),
    ("{{.X |}}", "missing command"),
    ("{{| .X}}", "missing value for command"),
    ("{{(.X}}", "unclosed left paren"),
    ("{{.X)}}", "unexpected right paren"),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{$x = 1}}", 'undefined variable "$x"'),
    ("{{$x := $x}}", 'undefined variable "$x"'),
    ("{{if 1}}{{$y := 2}}{{end}}{{$y}}", 'undefined variable "$y"'),
    ("{{$x, $y := 1}}", "too many declarations in command"),
    ("{{range $x, 3 := .L}}{{end}}", "range can only initialize variables"),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{if 1}}{{continue}}{{end}}", "{{continue}} outside {{range}}"),
    ("{{range 2}}{{else}}{{break}}{{end}}", "{{break}} outside {{range}}"),
    ("{{range 2}}{{break 1}}{{end}}", 'unexpected "1" in break'),
    ('{{define "x"}}{{end}}', "unsupported action {{define}}"),
    ('{{template "x"}}', "unsupported action {{template}}"),
    ('{{block "x" .}}{{end}}', "unsupported action {{block}}"),
    ("{{join .Args}}", "wrong number of args for join: want 2 got 1"),
    ("{{len}}", "wrong number of args for len: want 1 got 0"),
    ("{{len .A .B}}", "wrong number of args for len: want 1 got 2"),
    ("{{eq 1}}", "wrong number of args for eq: want at least 2 got 1"),
    ("{{not 1 2}}", "wrong number of args for not: want 1 got 2"),
    ("{{.X | upper \"a\"}}", "wrong number of args for upper: want 1 got 2"),
    ("{{and}}", "wrong number of args for and: want at least 1 got 0"),
    ("{{printf}}", "wrong number of args for printf: want at least 1 got 0"),
    ("{{print upper}}", "wrong number of args for upper: want 1 got 0"),
    ("{{truncate .ID}}", "wrong number of args for truncate: want 2 got 1"),
    ("{{3 4}}", 'can\'t give argument to non-function "3"'),
    ("{{.X | 3}}", "can't give argument to non-function"),
    ("{{$ 1}}", "can't give argument to non-function"),
    ("{{nil}}", "nil is not a command"),
    ("{{upper nil}}", "cannot use nil as argument 1 of upper"),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{`abc}}", "unterminated raw quoted string"),
    ("{{'ab'}}", "malformed character constant"),
    ("{{12abc}}", 'bad number syntax: "12abc"'),
    ("{{1.2.3}}", "bad number syntax"),
    ("{{09}}", "bad number syntax"),
    ('{{"\\q"}}', "bad escape"),
    ("{{%}}", 'unexpected "%" in action'),
    ("{{.X.}}", 'unexpected "." in operand'),
    ('{{"x".Y}}', "unexpected . after term"),
    ('{{print "a""b"}}', "unexpected"),
    ("{{.X\"y\"}}", "bad character"),
    ("{{if if}}{{end}}", 'unexpected "if" in operand'),
    ("{{/* x", "unclosed comment"),
    ("{{/* x */ .X}}", "comment ends before closing delimiter"),
])
def test_compile_errors(text, message):
    with pytest.raises(TemplateError) as exc:
        gotemplate.compile(text)
    assert message in str(exc.value)
    assert str(exc.value).startswith("template: ")


@pytest.mark.parametrize("text, message", [
    ("{{.Names.First}}", "can't evaluate field First in type string"),
    ("{{.Mounts.Source}}", "can't evaluate field Source in type []interface {}"),
    ("{{.State.Pid.X}}", "can't evaluate field X in type int"),
    ("{{.State.Health.Status}}", "nil pointer evaluating interface {}.Status"),
    ("{{.Names \"x\"}}", "Names is not a method but has arguments"),
    ("{{.State | .Status}}", "Status is not a method but has arguments"),
    ("{{index .Mounts 5}}", "error calling index: index out of range: 5"),
    ("{{index .Mounts -1}}", "error calling index: index out of range: -1"),
    ("{{index .Mounts \"a\"}}", "cannot index slice/array with type string"),
    ("{{index .Config.Labels 1}}", "value has type int; should be string"),
    ("{{index .State.Pid 0}}", "error calling index: can't index item of type int"),
    ("{{index .Nope 0}}", "error calling index: index of untyped nil"),
    ('{{index .Config.Labels "nope" "x"}}', "error calling index: cannot index slice/array with type string"),
    ("{{len .State.Pid}}", "error calling len: len of type int"),
    ("{{len .Nope}}", "error calling len: len of nil pointer"),
    ("{{upper .State.Pid}}", "wrong type for value; expected string; got int"),
    ("{{upper .Nope}}", "invalid value; expected string"),
    ("{{truncate .ID .Names}}", "wrong type for value; expected int; got string"),
    ('{{join .Mounts ","}}', "expected []string; got []interface {}"),
    ('{{join .Names ","}}', "expected []string; got string"),
    ("{{lt .Names 1}}", "error calling lt: incompatible types for comparison"),
    ("{{eq 1 1.0}}", "error calling eq: incompatible types for comparison"),
    ('{{eq 1 "1"}}', "incompatible types for comparison"),
    ("{{eq .Mounts .Mounts}}", "non-comparable type"),
    ("{{lt .State.Running true}}", "error calling lt: invalid type for comparison"),
    ("{{lt .Nope 1}}", "invalid type for comparison"),
    ("{{range .Names}}{{end}}", "range can't iterate over web"),
    ("{{range .Size}}{{end}}", "range can't iterate over 1.5"),
    ("{{range $i, $v := 3}}{{end}}", "can't use 3 to iterate over more than one variable"),
    ("{{json .Bad}}", "json: unsupported value: NaN"),
    ("{{truncate .Names -1}}", "error calling truncate"),
    ('{{printf "%[1]d" 1}}', "argument indexes"),
])
def test_render_errors(text, message):
    tmpl = gotemplate.compile(text)  # compiles fine: the data is at fault
    with pytest.raises(TemplateError) as exc:
        tmpl.render({**DATA, "Bad": math.nan})
    assert message in str(exc.value)


def test_render_error_names_the_failing_command():
    with pytest.raises(TemplateError) as exc:
        render("x {{if 1}}{{.Names.First}}{{end}}")
    assert str(exc.value) == (
        "template: executing at <.Names.First>: can't evaluate field First in type string")


def test_errors_are_usage_errors_with_exit_code_125():
    with pytest.raises(UsageError) as exc:
        gotemplate.compile("{{foo}}")
    assert exc.value.exit_code == 125
    assert str(exc.value) == 'template: unsupported function "foo" (column 3)'
    with pytest.raises(TemplateError) as exc:
        gotemplate.compile("line one\n{{if}}{{end}}")
    assert str(exc.value) == "template: missing value for if (line 2, column 5)"


def test_a_template_renders_many_times_without_leaking_state():
    tmpl = gotemplate.compile("{{$n := .Names}}{{range .Mounts}}{{$n}}{{.Type}} {{end}}")
    assert tmpl.render(DATA) == "webbind webvolume "
    assert tmpl.render({"Names": "x", "Mounts": []}) == ""
    assert tmpl.render(DATA) == "webbind webvolume "


# --- Docker's table formats ---------------------------------------------------------

HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE"}
ROWS = [
    {"ID": "4f2a9c1e7b3d", "Image": "alpine:3.19", "Names": "web"},
    {"ID": "9b8c7d6e5f4a", "Image": "nginx", "Names": "proxy-server"},
]


@pytest.mark.parametrize("text, result", [
    ("table {{.ID}}\\t{{.Image}}", (True, "{{.ID}}\\t{{.Image}}")),
    ("table   {{.ID}}  ", (True, "{{.ID}}")),
    ("table", (True, "")),
    ("tablex {{.ID}}", (True, "x {{.ID}}")),  # Docker only checks the prefix
    ("  {{.ID}} ", (False, "{{.ID}}")),
    ("{{.ID}}\\t{{.Names}}", (False, "{{.ID}}\\t{{.Names}}")),
])
def test_split_table(text, result):
    assert gotemplate.split_table(text) == result


def test_unescape():
    assert gotemplate.unescape("{{.ID}}\\t{{.Names}}\\n") == "{{.ID}}\t{{.Names}}\n"
    assert gotemplate.unescape("a\\\\tb") == "a\\\tb"
    assert gotemplate.unescape(gotemplate.unescape("x\\ty")) == "x\ty"


@pytest.mark.parametrize("text, header", [
    ("{{.ID}}\t{{.Image}}", "CONTAINER ID\tIMAGE"),
    ("{{.Status}}\t{{.Names}}", "STATUS\tNAMES"),
    ("{{.ID}}: {{$.Names}}", "CONTAINER ID: NAMES"),
    # Docker's functions leave the title alone; printf still pads it
    ("{{truncate .ID 5}}|{{.Names | upper}}|{{json .Image}}|{{lower .Names}}",
     "CONTAINER ID|NAMES|IMAGE|NAMES"),
    ('{{printf "%-14s|" .Names}}', "NAMES         |"),
    ('{{.Label "com.example"}}', "LABEL"),
    ("{{.State.Status}}", "STATUS"),
])
def test_header_row(text, header):
    assert gotemplate.header_row(text, HEADERS) == header


def test_render_rows_table_aligns_like_docker():
    out = gotemplate.render_rows("table {{.ID}}\\t{{.Image}}\\t{{.Names}}", ROWS, HEADERS)
    assert out == (
        "CONTAINER ID   IMAGE         NAMES\n"
        "4f2a9c1e7b3d   alpine:3.19   web\n"
        "9b8c7d6e5f4a   nginx         proxy-server")


def test_render_rows_table_columns_are_at_least_ten_wide():
    rows = [{"A": "x", "B": "y"}]
    assert gotemplate.render_rows("table {{.A}}\t{{.B}}", rows, {}) == "A         B\nx         y"


def test_render_rows_table_without_rows_prints_the_header():
    assert gotemplate.render_rows("table {{.ID}}\\t{{.Names}}", [], HEADERS) == (
        "CONTAINER ID   NAMES")


def test_render_rows_plain_format_joins_lines():
    assert gotemplate.render_rows("{{.ID}} {{.Names}}", ROWS, HEADERS) == (
        "4f2a9c1e7b3d web\n9b8c7d6e5f4a proxy-server")
    assert gotemplate.render_rows("{{.Names}}", [], HEADERS) == ""


def test_render_rows_bare_table_uses_the_default():
    out = gotemplate.render_rows("table", ROWS[:1], HEADERS, default="table {{.Names}}\t{{.ID}}")
    assert out == "NAMES     CONTAINER ID\nweb       4f2a9c1e7b3d"
    with pytest.raises(TemplateError):
        gotemplate.render_rows("table", ROWS, HEADERS)


def test_render_rows_reports_template_errors():
    with pytest.raises(TemplateError, match="unsupported function"):
        gotemplate.render_rows("table {{nope .ID}}", ROWS, HEADERS)


def test_tabwrite_blocks_like_go():
    # Checked against `docker context ls --format 'table ...'`: a column's width
    # covers only the run of consecutive lines that have that column.
    text = "NAME\tb\tc\nlonger-cell-x\td\n\nx\ty\ndefault\tb\tc\nlonger-cell-x\td\n\nx\ty"
    assert gotemplate.tabwrite(text) == (
        "NAME            b         c\n"
        "longer-cell-x   d\n"
        "\n"
        "x               y\n"
        "default         b         c\n"
        "longer-cell-x   d\n"
        "\n"
        "x         y")


def test_compile_format_sets_is_table():
    tmpl = gotemplate.compile_format("table {{.ID}}\\t{{.Names}}")
    assert tmpl.is_table
    assert tmpl.render(ROWS[0]) == "4f2a9c1e7b3d\tweb"
    assert tmpl.header(HEADERS) == "CONTAINER ID\tNAMES"
    assert not gotemplate.compile_format("{{.ID}}").is_table
    assert not gotemplate.compile("table {{.ID}}").is_table
