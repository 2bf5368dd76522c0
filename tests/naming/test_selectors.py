import pytest

from adapter.errors import BadRequest
from adapter.model import Requirement
from adapter.naming.selectors import parse_selector, quote, regex_escape, to_label_selector_json, to_matchers


@pytest.mark.parametrize(("text", "expected"), [
    ("app=llm", [Requirement("app", "=", ("llm",))]),
    ("app==llm", [Requirement("app", "=", ("llm",))]),
    ("app!=llm", [Requirement("app", "!=", ("llm",))]),
    ("tier in (b,a)", [Requirement("tier", "in", ("a", "b"))]),
    ("tier notin (a)", [Requirement("tier", "notin", ("a",))]),
    ("gpu", [Requirement("gpu", "exists")]),
    ("!gpu", [Requirement("gpu", "!")]),
    ("replicas>3", [Requirement("replicas", "gt", ("3",))]),
    ("b=1,a=2", [Requirement("a", "=", ("2",)), Requirement("b", "=", ("1",))]),
    ("app.kubernetes.io/name=vllm", [Requirement("app.kubernetes.io/name", "=", ("vllm",))]),
    ("app=", [Requirement("app", "=", ("",))]),
    ("", []),
], ids=["eq", "double-eq", "neq", "in", "notin", "exists", "not-exists", "gt", "sorted", "prefixed-key",
        "empty-value", "empty"])
def test_parse(text: str, expected: list[Requirement]) -> None:
    assert list(parse_selector(text).requirements) == expected


@pytest.mark.parametrize("text", ["=b", "a in x", "a=b,", "a b", 'a="b"', "a in (x", "a=b c", "a>x",
                                  'a"} or vector(1) #=x', "-bad=1", "a>1_0", "a>\u0661", "a>99999999999999999999",
                                  "a\x0b=b", "a=b\x0bc", "a=\u00e9"])
def test_malformed_is_bad_request(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_selector(text)


@pytest.mark.parametrize(("text", "matchers"), [
    ("app=llm", ['app="llm"']),
    ("app!=llm", ['app!="llm"']),
    ("app in (a,b)", ['app=~"a|b"']),
    ("app notin (a,b)", ['app!~"a|b"']),
    ("app in (a.b,c)", ['app=~"a\\\\.b|c"']),
    ("app in (x)", ['app="x"']),
    ("gpu", ['gpu!=""']),
    ("!gpu", ['gpu=""']),
], ids=["eq", "neq", "in", "notin", "in-regex-escaped", "in-one", "exists", "not-exists"])
def test_to_matchers(text: str, matchers: list[str]) -> None:
    assert to_matchers(parse_selector(text)) == matchers


def test_gt_is_rejected_for_prometheus() -> None:
    with pytest.raises(BadRequest, match="not supported by Prometheus"):
        to_matchers(parse_selector("n>1"))


def test_label_key_with_slash_cannot_be_a_prometheus_label() -> None:
    with pytest.raises(BadRequest, match="not a valid Prometheus label name"):
        to_matchers(parse_selector("app.kubernetes.io/name=x"))


@pytest.mark.parametrize(("raw", "quoted"), [
    ("plain", '"plain"'),
    ('a"} or vector(1) #', '"a\\"} or vector(1) #"'),
    ("back\\slash", '"back\\\\slash"'),
    ("new\nline", '"new\\nline"'),
    ("\x01", '"\\x01"'),
])
def test_quote(raw: str, quoted: str) -> None:
    assert quote(raw) == quoted


def test_regex_escape_makes_metacharacters_literal() -> None:
    assert regex_escape("a.b*c|d(e)") == "a\\.b\\*c\\|d\\(e\\)"


def test_label_selector_json() -> None:
    sel = parse_selector("gpu=a100,tier in (x,y),!spot,zone")
    assert to_label_selector_json(sel) == {
        "matchLabels": {"gpu": "a100"},
        "matchExpressions": [
            {"key": "spot", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "In", "values": ["x", "y"]},
            {"key": "zone", "operator": "Exists"},
        ],
    }
    assert to_label_selector_json(parse_selector("")) is None


@pytest.mark.parametrize(("text", "labels", "ok"), [
    ("app=llm", {"app": "llm"}, True),
    ("app=llm", {"app": "x"}, False),
    ("app!=llm", {}, True),
    ("app in (a,b)", {"app": "b"}, True),
    ("app notin (a,b)", {"app": "b"}, False),
    ("gpu", {"gpu": ""}, True),
    ("!gpu", {"gpu": ""}, False),
    ("n>3", {"n": "4"}, True),
    ("n<3", {"n": "4"}, False),
])
def test_matches(text: str, labels: dict[str, str], ok: bool) -> None:
    assert parse_selector(text).matches(labels) is ok
