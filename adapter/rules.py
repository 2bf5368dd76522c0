"""Typed model of the rules file (prometheus-adapter's format, exactly), its loader, and presets.

Top level: ``rules`` (custom metrics), ``externalRules`` (external metrics), ``resourceRules``
(metrics.k8s.io: accepted and ignored with a warning), and our ``presets`` list. Unknown keys are
errors. Our per-rule extensions (``missingData``, ``maxAge``, ``cacheTTL``) are optional; a
prometheus-adapter v0.12 file never has them and loads unchanged.

Every error names the file, the rule (list and index) and the field, e.g.
``rules.yaml: rules[2].name.as: ...``.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from adapter.errors import ConfigError
from adapter.tenancy_config import TenancyConfig

log = logging.getLogger(__name__)

PRESET_PACKAGE = "adapter.presets"
_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GroupResourceRef(_Strict):
    group: str = ""
    resource: str

    @field_validator("resource")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v


class ResourceMapping(_Strict):
    overrides: dict[str, GroupResourceRef] = Field(default_factory=dict)
    template: str = ""
    namespaced: bool | None = None


class NameMapping(_Strict):
    matches: str = ""
    as_: str = Field(default="", alias="as")


class SeriesFilter(_Strict):
    is_: str | None = Field(default=None, alias="is")
    is_not: str | None = Field(default=None, alias="isNot")

    @model_validator(mode="after")
    def _exactly_one(self) -> SeriesFilter:
        if (self.is_ is None) == (self.is_not is None):
            raise ValueError("exactly one of 'is' and 'isNot' must be set")
        return self


class DiscoveryRule(_Strict):
    series_query: str = Field(alias="seriesQuery")
    series_filters: list[SeriesFilter] = Field(default_factory=list, alias="seriesFilters")
    resources: ResourceMapping = Field(default_factory=ResourceMapping)
    name: NameMapping = Field(default_factory=NameMapping)
    metrics_query: str = Field(alias="metricsQuery")
    # our extensions (all optional)
    missing_data: Literal["error", "zero", "lastKnown"] | None = Field(default=None, alias="missingData")
    max_age: str | None = Field(default=None, alias="maxAge")
    cache_ttl: str | None = Field(default=None, alias="cacheTTL")

    @field_validator("max_age", "cache_ttl")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            from adapter.settings import parse_duration  # noqa: PLC0415 - avoid a cycle at import time

            try:
                parse_duration(v, "duration")
            except ConfigError as e:
                raise ValueError(f"invalid duration {v!r} (use e.g. 30s, 2m)") from e
        return v

    @field_validator("series_query", "metrics_query")
    @classmethod
    def _required(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class PresetRef(_Strict):
    """A preset with parameters: ``{name: vllm, params: {queuePerReplica: 5}}`` (a plain name is the same
    preset with its defaults)."""

    name: str
    params: dict[str, float] = Field(default_factory=dict)


class RulesFile(_Strict):
    rules: list[DiscoveryRule] = Field(default_factory=list)
    external_rules: list[DiscoveryRule] = Field(default_factory=list, alias="externalRules")
    resource_rules: dict[str, Any] | None = Field(default=None, alias="resourceRules")
    # a name, or {name, params}; tagged so that an error names the entry's own field
    presets: list[Annotated[Annotated[str, Tag("name")] | Annotated[PresetRef, Tag("entry")],
                            Discriminator(lambda v: "name" if isinstance(v, str) else "entry")]] = Field(
        default_factory=list)
    tenancy: TenancyConfig | None = None  # namespaces -> tenants, enforced (adapter.tenancy_config)


class MetricRuleSpec(_Strict):
    """``spec`` of a namespaced ``MetricRule`` (accel-metrics.io/v1alpha1): the rules file's two rule
    lists, with the same fields; its rules are confined to the MetricRule's namespace."""

    rules: list[DiscoveryRule] = Field(default_factory=list)
    external_rules: list[DiscoveryRule] = Field(default_factory=list, alias="externalRules")


@dataclass(frozen=True)
class SourcedRule:
    """A rule and where it came from, for error messages and ``explain``."""

    rule: DiscoveryRule
    source: str  # file path, "preset:<name>" or "metricrule:<namespace>/<name>"
    list_name: str  # "rules" or "externalRules"
    index: int
    # a MetricRule's namespace: its metrics exist only there and its queries are confined to it
    namespace: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}: {self.list_name}[{self.index}]"


@dataclass(frozen=True)
class LoadedRules:
    rules: tuple[SourcedRule, ...]
    external_rules: tuple[SourcedRule, ...]
    presets: tuple[str, ...]
    tenancy: TenancyConfig | None = None


_ALIASES = {"series_query": "seriesQuery", "series_filters": "seriesFilters", "metrics_query": "metricsQuery",
            "external_rules": "externalRules", "resource_rules": "resourceRules", "as_": "as", "is_": "is",
            "is_not": "isNot", "missing_data": "missingData", "max_age": "maxAge", "cache_ttl": "cacheTTL",
            "org_id": "orgID", "namespace_label": "namespaceLabel",
            "namespace_annotation": "namespaceAnnotation", "cluster_scoped": "clusterScoped"}


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = _ALIASES.get(part, part)
            out += ("." if out else "") + name
    return out


def parse_rules_text(text: str, source: str) -> RulesFile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from e
    return _validated(RulesFile, {} if data is None else data, source, "the top level")


def parse_metric_rule_spec(spec: Any, source: str) -> MetricRuleSpec:
    """A MetricRule's ``spec``, strictly, with the rules file's errors (``metricrule:ns/name: rules[0]...``)."""
    return _validated(MetricRuleSpec, spec, source, "spec")


def _validated(model: type[_M], data: Any, source: str, what: str) -> _M:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {what} must be a mapping with 'rules' and/or 'externalRules'")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_first_error(e, model)}") from e


def _first_error(e: ValidationError, root: type[BaseModel] = RulesFile) -> str:
    """The error to show: an unknown key first, with the closest known field, since a misspelt key also
    makes the field it meant "required" (that consequence is not counted as one more error)."""
    errors = e.errors()
    unknown = [err for err in errors if err["type"] == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    loc = tuple(first["loc"])
    msg, meant = first["msg"], None
    if unknown:
        model = _model_at(loc[:-1], root)
        known = sorted(f.alias or n for n, f in model.model_fields.items()) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        meant = _aliased((*loc[:-1], close[0])) if close else None
        msg = "unknown field" + (f" (did you mean {close[0]}?)" if close else
                                 f" (known fields: {', '.join(known)})" if known else "")
    rest = [err for err in errors if err is not first
            and not (err["type"] == "missing" and _aliased(tuple(err["loc"])) == meant)]
    return f"{_loc(loc)}: {msg}" + (f" (and {len(rest)} more errors)" if rest else "")


def _aliased(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in loc)


def _model_at(loc: tuple[int | str, ...], root: type[BaseModel] = RulesFile) -> type[BaseModel] | None:
    """The model that the mapping at ``loc`` (a pydantic error location) is validated as."""
    t: Any = root
    for part in loc:
        t = _optional_inner(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            info = next((f for n, f in t.model_fields.items() if part in (n, f.alias)), None)
            if info is None:
                return None
            t = info.annotation
        elif get_origin(t) in (list, dict):  # an index or a key: step into the item type
            t = get_args(t)[-1]
        else:
            return None
    t = _optional_inner(t)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _optional_inner(t: Any) -> Any:
    args = [a for a in get_args(t) if a is not type(None)]
    return args[0] if get_origin(t) in (Union, UnionType) and len(args) == 1 else t


def available_presets() -> list[str]:
    files = resources.files(PRESET_PACKAGE)
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str, params: dict[str, float] | None = None) -> str:
    """The preset's rules file, its ``${param}`` placeholders filled (defaults unless ``params`` says)."""
    from adapter.presets import PresetParamError, render  # noqa: PLC0415 - the package holding the files

    if name not in available_presets():
        raise ConfigError(f"unknown preset {name!r} (available: {', '.join(available_presets()) or 'none'})")
    text = (resources.files(PRESET_PACKAGE) / f"{name}.yaml").read_text(encoding="utf-8")
    try:
        return render(name, text, params or {})
    except PresetParamError as e:
        raise ConfigError(f"preset {name!r}: {e}") from e


def load_rules(config: Path | None, presets: tuple[str, ...] = ()) -> LoadedRules:
    """Load the user's file (if any) and every preset it or the flags name, strictly.

    Presets come first and the user's rules after them: a metric name produced by several rules belongs
    to the last one (as in prometheus-adapter), so a user rule overrides a preset metric of that name."""
    user: tuple[list[SourcedRule], list[SourcedRule]] = ([], [])
    tenancy: TenancyConfig | None = None
    wanted: list[tuple[str, dict[str, float]]] = []
    if config is not None:
        try:
            text = config.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{config}: cannot read: {e.strerror}") from e
        rf = parse_rules_text(text, str(config))
        if rf.resource_rules is not None:
            log.warning("%s: resourceRules (metrics.k8s.io) are not served by this adapter and are ignored",
                        config)
        user = ([SourcedRule(r, str(config), "rules", i) for i, r in enumerate(rf.rules)],
                [SourcedRule(r, str(config), "externalRules", i) for i, r in enumerate(rf.external_rules)])
        wanted += [(p, {}) if isinstance(p, str) else (p.name, dict(p.params)) for p in rf.presets]
        tenancy = rf.tenancy
    wanted += [(p, {}) for p in presets]
    rules: list[SourcedRule] = []
    external: list[SourcedRule] = []
    seen: list[str] = []
    chosen: dict[str, dict[str, float]] = {}
    for name, params in wanted:
        if name in seen:
            if params and params != chosen[name]:
                raise ConfigError(f"{config}: presets: {name!r} is listed twice with different params")
            continue
        seen.append(name)
        chosen[name] = params
        source = f"preset:{name}"
        try:
            text = preset_text(name, params)
        except ConfigError as e:
            raise ConfigError(f"{config}: presets: {e}" if config is not None else str(e)) from e
        pf = parse_rules_text(text, source)
        rules += [SourcedRule(r, source, "rules", i) for i, r in enumerate(pf.rules)]
        external += [SourcedRule(r, source, "externalRules", i) for i, r in enumerate(pf.external_rules)]
    return LoadedRules((*rules, *user[0]), (*external, *user[1]), tuple(seen), tenancy)
