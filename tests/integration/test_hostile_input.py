"""Property test of every input surface against the real adapter process, in front of a recording
proxy, in front of a real Prometheus (no cluster, AlwaysAllow), with rules that put request values
inside quotes (``<<index .LabelValuesByName "pod">>``, prometheus-adapter's documented pattern).

For every generated request (path shape, namespace, object name, metric name, ``labelSelector``,
``metricLabelSelector``):

* the answer is never 5xx except 503, and every non-2xx body is a metav1.Status whose ``code`` is
  the HTTP status;
* every query that reaches Prometheus parses (Prometheus's grammar, ``adapter.naming.promql``) and
  Prometheus accepts it;
* each query is one selector of a series the rules know, and the matchers on the request's
  namespace/object labels and on the selector's keys hold exactly the (escaped) input values.

Examples: ``FUZZ_EXAMPLES`` (default 400, derandomized so every run tries the same inputs).
``FUZZ_EXAMPLES=10000 FUZZ_COUNT_ONLY=1 pytest -s tests/integration/test_hostile_input.py`` runs
without stopping at the first failure and prints the counts (requests, 5xx, unparsable queries, ...).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.errors import BadRequest
from adapter.naming.promql import PromQLError, parse
from adapter.naming.selectors import parse_selector, regex_escape
from tests.support.adapter import Adapter, adapter
from tests.support.proxy import Proxy, counting_proxy
from tests.support.stack import ROOT, exporter_and_prometheus

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
COUNT_ONLY = os.environ.get("FUZZ_COUNT_ONLY", "") not in ("", "0")
RULES = ROOT / "tests" / "data" / "rules-hostile.yaml"

SERIES: list[dict[str, object]] = [
    {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p1"}, "value": 80},
    {"name": "gpu_util", "labels": {"namespace": "ns1", "pod": "p2.dotted"}, "value": 30},
    {"name": "gpu_util", "labels": {"namespace": "ml-a", "pod": "train-0"}, "value": 50},
    {"name": "node_temp_celsius", "labels": {"node": "node-1.example"}, "value": 61},
    {"name": "replicas_busy", "labels": {"namespace": "ns1", "deployment": "llm"}, "value": 3},
    {"name": "queue_depth", "labels": {"namespace": "ns1", "model": "llama"}, "value": 12},
    {"name": "kube_pod_labels", "labels": {"namespace": "ns1", "pod": "p1", "label_app": "llm",
                                           "label_tier": "3"}, "value": 1},
    {"name": "kube_pod_labels", "labels": {"namespace": "ns1", "pod": "p2.dotted", "label_app": "web",
                                           "label_tier": "7"}, "value": 1},
]
KNOWN_SERIES = {"gpu_util", "node_temp_celsius", "replicas_busy", "queue_depth"}
KNOWN_OBJECTS = {"p1", "p2.dotted", "train-0", "node-1.example", "llm"}
# the rules whose template has <<.LabelMatchers>> (where selectors become matchers)
WITH_LABEL_MATCHERS = {"gpu_utilization", "replicas_busy", "queue_depth", "queue_quoted"}
KSM_QUERY = 'kube_pod_labels{namespace!="",pod!=""}'
RESOURCE_LABEL = {"pods": "pod", "nodes": "node", "deployments.apps": "deployment", "deployments": "deployment",
                  "namespaces": "namespace"}

CM = "/apis/custom.metrics.k8s.io"
EM = "/apis/external.metrics.k8s.io/v1beta1"

# strings that broke out of PromQL strings or regexes, or made Prometheus reject the query
HOSTILE = ["}", '"} or vector(1) #', "\\d+", ")&", '"', "\\", "..", ".", "a|b", ".*", "(", "[", "%", "`",
           "'", "a\nb", "\x00", "ns1\"}", "ns1'", 'p1",pod=~".*', "p1|.*", "x{y}", "#", "a b", "é", "Ns1",
           "-ns", "ns-", "a" * 64, "a" * 254, "a.b", "a_b", "a:b", "*", "%2A", "metrics", "namespaces",
           "$1", "${1}", "<<.Series>>", "{{x}}", "\u202e", "\ufeff", "ns1/pods", "/", " "]
# valid requests (shape, namespace, resource, name, metric) that reach Prometheus; examples mutate them
VALID = [("namespaced", "ns1", "pods", "p1", "gpu_utilization"), ("namespaced", "ns1", "pods", "*", "gpu_utilization"),
         ("namespaced", "ns1", "pods", "p1", "gpu_quoted"), ("namespaced", "ns1", "pods", "*", "gpu_quoted"),
         ("namespaced", "ml-a", "pods", "train-0", "gpu_quoted"),
         ("namespaced", "ns1", "deployments.apps", "llm", "replicas_busy"),
         ("cluster", "", "nodes", "node-1.example", "node_temp_quoted"),
         ("cluster", "", "nodes", "*", "node_temp_quoted"),
         ("ns-metric", "ns1", "", "", "gpu_utilization"), ("ns-metric", "ml-a", "", "", "gpu_quoted"),
         ("external", "ns1", "", "", "queue_depth"), ("external", "ns1", "", "", "queue_quoted")]
SELECTORS = ["app=llm", "app!=llm", "app in (llm,web)", "app notin (web)", "app", "!app", "tier>1", "tier<5",
             "app=llm,tier>2", "model=llama", "model in (llama,mistral)", "app=", "x.y/z=1", "a=b=c", "a in ()",
             "a in (b", "=x", "a,", ",", "a>x", "a>1_0", "a>+1", "app==llm", "in=x", "notin", "__name__=x",
             'app="x"', "app=x y", "app=a|b", "app in (a|b)"]

SEGMENT = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12),
                    st.text(alphabet='abz019-._~:/%*"\\{}()|[]+?^$=!,<> \'`#', max_size=12))


def _maybe(draw: st.DrawFn, value: str) -> str:
    """``value``, or (one time in three) a hostile replacement."""
    return draw(SEGMENT) if draw(st.integers(0, 2)) == 0 else value


@dataclass(frozen=True)
class Req:
    path: str
    query: str


@st.composite
def requests(draw: st.DrawFn) -> Req:
    shape, ns, resource, name, metric = draw(st.sampled_from(VALID))
    if draw(st.integers(0, 9)) == 0:
        shape = draw(st.sampled_from(["namespaced", "cluster", "ns-metric", "external", "raw"]))
    version = draw(st.sampled_from(["v1beta1", "v1beta2", "v1beta2", "v2"])) if draw(st.booleans()) else "v1beta2"
    ns, resource, name, metric = (_maybe(draw, ns), _maybe(draw, resource), _maybe(draw, name),
                                  _maybe(draw, metric))
    if shape == "namespaced":
        segs = [f"{CM}/{version}", "namespaces", ns, resource, name, metric]
    elif shape == "cluster":
        segs = [f"{CM}/{version}", resource, name, metric]
    elif shape == "ns-metric":
        segs = [f"{CM}/{version}", "namespaces", ns, "metrics", metric]
    elif shape == "external":
        segs = [EM, "namespaces", ns, metric]
    else:
        segs = [draw(st.sampled_from([f"{CM}/{version}", EM, "/apis", "", "/healthz", "/readyz"])),
                *draw(st.lists(SEGMENT, max_size=6))]
    safe = draw(st.sampled_from(["", "*", "*:@", "*:@"]))
    path = segs[0] + "".join("/" + urllib.parse.quote(s, safe=safe) for s in segs[1:])
    if draw(st.integers(0, 9)) == 0:
        path += "/"
    params: list[tuple[str, str]] = []
    for key in ("labelSelector", "metricLabelSelector"):
        if draw(st.integers(0, 2)) == 0:
            params.append((key, draw(st.one_of(st.sampled_from(SELECTORS), st.sampled_from(HOSTILE),
                                               st.text(alphabet="abt01 =!,()<>inot.-_/|\"\\", max_size=16)))))
    if draw(st.integers(0, 9)) == 0:
        params.append(("pretty", "true"))
    return Req(path, urllib.parse.urlencode(params, quote_via=urllib.parse.quote))


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class Fuzz:
    adapter: Adapter
    proxy: Proxy
    ctx: ssl.SSLContext
    host: str
    port: int

    def get(self, req: Req) -> tuple[int, bytes]:
        target = req.path + ("?" + req.query if req.query else "")
        for attempt in range(3):
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            try:
                conn.request("GET", target)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                if attempt == 2:
                    raise
                time.sleep(0.2)
            finally:
                conn.close()
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    with exporter_and_prometheus(tmp, SERIES, wait_for="kube_pod_labels", min_results=2) as (_, prom):
        prom.wait_for("queue_depth")
        prom.wait_for("replicas_busy")
        with counting_proxy(prom.url) as proxy, \
                adapter(tmp, proxy.url, "--config", str(RULES), "--cache-ttl", "0",
                        "--metrics-relist-interval", "1m") as ad:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            url = urllib.parse.urlsplit(ad.url)
            assert url.hostname and url.port
            f = Fuzz(ad, proxy, ctx, url.hostname, url.port)
            # the relist has seen every rule's series before the examples start
            for path in (f"{CM}/v1beta2/namespaces/ns1/pods/p1/gpu_quoted", f"{EM}/namespaces/ns1/queue_quoted",
                         f"{CM}/v1beta2/nodes/node-1.example/node_temp_quoted",
                         f"{CM}/v1beta2/namespaces/ns1/deployments.apps/llm/replicas_busy"):
                deadline = time.monotonic() + 30
                while f.get(Req(path, ""))[0] != 200 and time.monotonic() < deadline:
                    time.sleep(0.3)
            yield f


# --- the properties -------------------------------------------------------------------------------


def _selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    out: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            out.append(node)
    promql_parser.walk(expr, visit)
    return out


def _matchers(vs: promql_parser.VectorSelector) -> list[tuple[str, str, str]]:
    names = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
    ms = [*vs.matchers.matchers, *(m for group in vs.matchers.or_matchers for m in group)]
    return [(m.name, names[str(m.op)], m.value) for m in ms]


def _target(req: Req) -> tuple[str, str, str] | None:
    """(namespace, resource label, object name) the server decodes from the path; None if not a metric path."""
    path = urllib.parse.unquote(req.path).rstrip("/")
    if path.startswith(EM + "/"):
        parts = path[len(EM) + 1:].split("/")
        return (parts[1], "", "") if len(parts) == 3 and parts[0] == "namespaces" else None
    if not path.startswith(CM + "/"):
        return None
    parts = path[len(CM) + 1:].split("/")[1:]
    if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "metrics":
        return "", "namespace", parts[1]
    if len(parts) == 5 and parts[0] == "namespaces":
        return parts[1], RESOURCE_LABEL.get(parts[2], "?"), parts[3]
    if len(parts) == 3:
        return "", RESOURCE_LABEL.get(parts[0], "?"), parts[1]
    return None


def _expected_selector_matchers(req: Req) -> set[tuple[str, str, str]]:
    """The matchers a selector parameter must become (the custom API's metricLabelSelector, the external
    API's labelSelector): keys verbatim, values quoted, set values as an exact alternation."""
    params = dict(urllib.parse.parse_qsl(req.query, keep_blank_values=True))
    text = params.get("labelSelector" if req.path.startswith(EM) else "metricLabelSelector")
    try:
        selector = parse_selector(text)
    except BadRequest:
        return set()
    out: set[tuple[str, str, str]] = set()
    for r in selector.requirements:
        if r.operator in ("=", "in", "!=", "notin"):
            regex = len(r.values) > 1
            negate = r.operator in ("!=", "notin")
            op = ("!~" if negate else "=~") if regex else ("!=" if negate else "=")
            out.add((r.key, op, "|".join(regex_escape(v) for v in r.values) if regex else r.values[0]))
        elif r.operator == "exists":
            out.add((r.key, "!=", ""))
        elif r.operator == "!":
            out.add((r.key, "=", ""))
    return out


def _check_query(promql: str, req: Req, status: int, body: bytes) -> list[str]:
    problems: list[str] = []
    try:
        expr = parse(promql)
    except PromQLError as e:
        return [f"unparsable query: {e}"]
    if status != 200:
        problems.append(f"Prometheus rejected the query ({status}): {body[:200]!r}")
    if promql == KSM_QUERY:
        return problems
    # the value query's selector and, attached to it, the same selector inside the data-age query
    # (timestamp(...)): every one must be a known series carrying exactly the input's matchers
    selectors = _selectors(expr)
    if not selectors or any(s.name not in KNOWN_SERIES for s in selectors):
        return [*problems, f"query selects unknown series: {[s.name for s in selectors]}"]
    for sel in selectors:
        for p in _check_selector(sel, req):
            if p not in problems:
                problems.append(p)
    return problems


def _check_selector(sel: promql_parser.VectorSelector, req: Req) -> list[str]:
    problems: list[str] = []
    matchers = _matchers(sel)
    target = _target(req)
    if target is not None and "" not in urllib.parse.unquote(req.path).rstrip("/").split("/")[1:]:
        ns, label, name = target
        for m_name, op, value in matchers:
            if ns and m_name == "namespace" and label != "namespace" and (op, value) != ("=", ns):
                problems.append(f"namespace matcher {op}{value!r} for namespace {ns!r}")
            if name and name != "*" and m_name == label and not (
                    op in ("=", "=~") and value in (name, regex_escape(name))):
                problems.append(f"{label} matcher {op}{value!r} for name {name!r}")
            if name == "*" and m_name == label:
                alternatives = value.replace("\\.", ".").split("|")
                # "every object": <label>!="" in LabelMatchers, ".+" in LabelValuesByName (whatever the
                # template's operator), or the names resolved from kube-state-metrics
                if not ((op, value) in (("!=", ""), ("=~", ".+"), ("=", ".+")) or
                        (op in ("=", "=~") and set(alternatives) <= KNOWN_OBJECTS)):
                    problems.append(f"{label} matcher {op}{value!r} for all objects")
    metric = urllib.parse.unquote(req.path).rstrip("/").rsplit("/", 1)[-1]
    missing = _expected_selector_matchers(req) - set(matchers) if metric in WITH_LABEL_MATCHERS else set()
    if missing:
        problems.append(f"selector matchers missing from the query: {sorted(missing)}")
    return problems


def _check(f: Fuzz, req: Req, tally: Counter[str]) -> list[str]:
    f.proxy.reset()
    status, body = f.get(req)
    tally["requests"] += 1
    tally[f"status {status}"] += 1
    problems: list[str] = []
    if status >= 500 and status != 503:
        tally["5xx (not 503)"] += 1
        problems.append(f"answered {status}")
    if not 200 <= status < 300 and not 300 <= status < 400:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not (isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("code") == status):
            tally["non-2xx without a matching Status"] += 1
            problems.append(f"{status} body is not a Status with code {status}: {body[:200]!r}")
    elif 300 <= status < 400:
        tally["redirects"] += 1
        problems.append(f"answered a redirect ({status})")
    with f.proxy.lock:
        answers = list(f.proxy.answers)
    for raw, q_status, q_body in answers:
        tally["queries"] += 1
        split = raw.split(" ", 1)
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(split[0]).query)
        if len(split) > 1:
            params.update(urllib.parse.parse_qs(split[1]))
        promql = params["query"][0]
        found = _check_query(promql, req, q_status, q_body)
        for p in found:
            tally[p.split(":")[0].split(" (")[0] if p.startswith(("unparsable", "Prometheus")) else
                  "matchers not exactly the input"] += 1
        problems += [f"{p}\n    query: {promql}" for p in found]
    if problems and COUNT_ONLY:
        print(f"GET {req.path}?{req.query}\n  " + "\n  ".join(problems))
    return problems


def test_hostile_requests_never_5xx_and_never_reach_promql_unescaped(fuzz: Fuzz) -> None:
    tally: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(req=requests())
    def run(req: Req) -> None:
        problems = _check(fuzz, req, tally)
        if problems and not COUNT_ONLY:
            raise AssertionError(f"GET {req.path}?{req.query}\n  " + "\n  ".join(problems))

    run()
    print("\nhostile-input counts:", json.dumps(dict(sorted(tally.items())), indent=1))
    if COUNT_ONLY:
        pytest.skip(f"FUZZ_COUNT_ONLY: {dict(tally)}")
