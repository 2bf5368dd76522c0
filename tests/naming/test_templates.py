import pytest

from adapter.naming.templates import TemplateError, compile_template

FIELDS = frozenset({"Series", "LabelMatchers", "LabelValuesByName", "GroupBy", "GroupBySlice"})
ARGS = {"Series": "s", "LabelMatchers": 'a="b"', "GroupBy": "pod", "GroupBySlice": ["pod", "container"],
        "LabelValuesByName": {"pod": "p1|p2", "namespace": "ns"}}


@pytest.mark.parametrize(("src", "out"), [
    ("<<.Series>>{<<.LabelMatchers>>}", 's{a="b"}'),
    ("by (<<.GroupBy>>)", "by (pod)"),
    ("<<.GroupBySlice>>", "[pod container]"),
    ('<<join .GroupBySlice ",">>', "pod,container"),
    ('<<index .LabelValuesByName "pod">>', "p1|p2"),
    ("<<.LabelValuesByName.namespace>>", "ns"),
    ("x  <<- .Series ->>  y", "xsy"),
    ("no actions", "no actions"),
])
def test_render(src: str, out: str) -> None:
    assert compile_template(src, FIELDS).render(ARGS) == out


@pytest.mark.parametrize(("src", "msg"), [
    ("<<range .GroupBySlice>>x<<end>>", "unsupported template action"),
    ("<<.Nope>>", "unknown template field .Nope"),
    ("sum(<<.Series)", "unclosed"),
])
def test_rejected_at_compile_time(src: str, msg: str) -> None:
    with pytest.raises(TemplateError, match=msg):
        compile_template(src, FIELDS)
