"""Grouped models: one registered model per value of an event field (``model.group_by``).

``model.uri`` is then a template naming the field once in the registered model's name,
e.g. ``models:/fraud-{country}@champion``; the version part (``@alias``, ``/<n>``,
``/latest`` or ``/<stage>``) applies to every group.

Driver side (:func:`resolve_groups`): the groups are the registered models whose names
match the template (``fraud-`` + a non-empty value), each resolved, pinned, downloaded and
validated by :func:`.model.resolve_model` as a single model would be, and shipped with
:func:`ship_groups`. :func:`peek_groups` says which versions a fresh resolve would pin, from
registry metadata alone (the hot-swap poller compares it with :meth:`GroupedModels.key`).

Executor side (:func:`grouped_scores`): the group value is read from the JSON on the JVM
side, the rows are grouped by it (``applyInPandas``, a shuffle), and each group's rows are
scored by that group's :class:`.scorer.Scorer`. Rows no model serves become dead letters with
reason ``no_model_for_group``, unless the value is not even a JSON object, in which case the
parser's own reason (``invalid_json``, ``not_an_object``, ...) stands.

The group value is the field's string, or for any other JSON value its JSON text as Spark
writes it: ``7`` → ``"7"``, ``7.50`` → ``"7.5"``, ``1e2`` → ``"100.0"``, ``true`` →
``"true"``. So ``{"country": 7}`` is served by ``fraud-7``, as ``{"country": "7"}`` is. A
null or absent field, or a value that is not a JSON object, has no group.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from streamer.errors import ModelError
from streamer.kafka.backend import SOURCE_COLUMNS
from streamer.scoring.chunk import Chunk
from streamer.scoring.model import ModelSpec, registry_client, resolve_model, ship_model
from streamer.scoring.parse import RecordParser
from streamer.scoring.records import Reason
from streamer.scoring.rules import FieldError
from streamer.scoring.scorer import OUTPUT_TYPE, Scorer, ScoringSettings, output_columns

log = logging.getLogger(__name__)

GROUP_COLUMN = "__streamer_group"
PAGE_SIZE = 100
"""Registered models per registry search page (MLflow's default page size)."""

_TEMPLATE = re.compile(r"^models:/(?P<name>[^/@]+)(?P<ref>(?:@[^/@]+|/[^/@]+)/?)$")


@dataclass(frozen=True)
class Template:
    """``models:/<prefix>{<field>}<suffix><ref>``, split up."""

    template: str
    group_by: str
    prefix: str
    suffix: str
    ref: str
    """``@alias``, ``/<version>``, ``/latest`` or ``/<stage>``."""

    @classmethod
    def parse(cls, template: str, group_by: str) -> Template:
        placeholder = "{" + group_by + "}"
        # The field name may hold any character, "/" and "@" included: mark it out first.
        match = _TEMPLATE.match(template.replace(placeholder, "\0"))
        if template.count(placeholder) != 1 or not match or "\0" not in match["name"]:
            raise ModelError(
                f"model.uri = {template!r} is not a grouped-model template for "
                f"model.group_by = {group_by!r}; expected models:/<name with {placeholder} "
                "once>@<alias> (or /<version>, /latest), e.g. "
                f"models:/fraud-{placeholder}@champion"
            )
        prefix, suffix = match["name"].split("\0")
        return cls(template, group_by, prefix, suffix, match["ref"].rstrip("/"))

    def group_of(self, name: str) -> str | None:
        """The group value a registered model name stands for, or None if it does not match."""
        end = len(name) - len(self.suffix)
        if end <= len(self.prefix) or not name.startswith(self.prefix):
            return None
        return name[len(self.prefix) : end] if name.endswith(self.suffix) else None

    def uri(self, group: str) -> str:
        """The template filled in for one group."""
        return f"models:/{self.prefix}{group}{self.suffix}{self.ref}"

    @property
    def search_filter(self) -> str:
        """A registry filter that finds at least every matching name (quotes are cut out and
        ``_`` is a wildcard, so :meth:`group_of` has the last word)."""
        prefix, suffix = self.prefix.split("'")[0], self.suffix.split("'")[-1]
        return f"name LIKE '{prefix}%{suffix}'"


@dataclass(frozen=True, eq=False)
class GroupedModels:
    """One resolved, pinned, shipped-to-be model per group value. Picklable; small.

    Serves as :class:`.model.Models`, as a single :class:`.model.ModelSpec` does."""

    group_by: str
    template: str
    specs: dict[str, ModelSpec]
    """Group value → its model."""

    @property
    def versions(self) -> dict[str, str | None]:
        """Group value → the pinned version, e.g. ``{"DE": "5", "US": "3"}``."""
        return {group: spec.version for group, spec in sorted(self.specs.items())}

    def key(self) -> str:
        """Names the set of pinned versions: equal keys serve the same models. It equals
        what :func:`peek_groups` says of the registry state it was resolved from."""
        return _key({group: spec.pinned_uri for group, spec in self.specs.items()})

    def served(self) -> list[ModelSpec]:
        return list(self.specs.values())

    def identity(self) -> str:
        return self.key()

    def ship(self, spark: SparkSession) -> None:
        ship_groups(spark, self)

    def scorer(self, settings: ScoringSettings, *, shadow: ModelSpec | None = None) -> None:
        """None: rows are grouped by :attr:`group_by` before they are scored."""
        return None

    def scores(
        self, source: DataFrame, settings: ScoringSettings, *, shadow: ModelSpec | None = None
    ) -> DataFrame:
        """:func:`grouped_scores`; a shadow model is not run on grouped models."""
        return grouped_scores(source, self, settings)


def _key(pinned: dict[str, str]) -> str:
    return ",".join(uri for _, uri in sorted(pinned.items()))


def discover(
    client: Any, template: str, group_by: str, *, page_size: int = PAGE_SIZE, warn: bool = True
) -> dict[str, str]:
    """Group value → pinned URI (``models:/<name>/<version>``), from registry metadata.

    Every registered model whose name matches the template is a candidate; one whose
    version part names no version (the alias is not set on it, the version or stage does
    not exist, it has no versions) is skipped with a warning (a debug line without
    ``warn``, for the poller): that is how a group is prepared or retired without touching
    the running service.
    """
    from mlflow.exceptions import MlflowException

    parsed = Template.parse(template, group_by)
    pinned: dict[str, str] = {}
    token = None
    try:
        while True:
            page = client.search_registered_models(
                filter_string=parsed.search_filter, max_results=page_size, page_token=token
            )
            for model in page:
                group = parsed.group_of(model.name)
                if group is None:
                    continue
                version = _version(client, model, parsed.ref)
                if version is None:
                    log.log(
                        logging.WARNING if warn else logging.DEBUG,
                        'grouped model skipped: no version for the template group="%s" '
                        'model="%s" version="%s"',
                        group,
                        model.name,
                        parsed.ref.lstrip("/"),
                    )
                    continue
                pinned[group] = f"models:/{model.name}/{version}"
            token = page.token
            if not token:
                return pinned
    except MlflowException as exc:
        raise ModelError(f"cannot search the registry for model.uri = {template!r}: {exc}") from exc


def _version(client: Any, model: Any, ref: str) -> str | None:
    """The version ``ref`` names in ``model`` (a registry RegisteredModel), or None."""
    from mlflow.exceptions import MlflowException

    if ref.startswith("@"):
        version = (model.aliases or {}).get(ref[1:])
        return None if version is None else str(version)
    ref = ref.strip("/")
    if ref.isdigit():
        try:
            return str(client.get_model_version(model.name, ref).version)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
    if ref.lower() == "latest":
        versions = client.search_model_versions(f"name='{model.name}'")
        return str(max(int(v.version) for v in versions)) if versions else None
    found = client.get_latest_versions(model.name, stages=[ref])
    return str(found[0].version) if found else None


def peek_groups(
    template: str, group_by: str, tracking_uri: str | None, registry_uri: str | None
) -> str:
    """The :meth:`GroupedModels.key` a resolve would give now, without downloading."""
    client = registry_client(tracking_uri, registry_uri)
    return _key(discover(client, template, group_by, warn=False))


class ResolveOptions(TypedDict, total=False):
    """The keyword arguments of :func:`.model.resolve_model`."""

    tracking_uri: str | None
    registry_uri: str | None
    threshold: float | None
    score_column: str | None
    work_dir: str | None
    env_manager: str


def resolve_groups(
    template: str, group_by: str, **options: Unpack[ResolveOptions]
) -> GroupedModels:
    """Find the template's groups in the registry and resolve each one's model with
    :func:`.model.resolve_model` and ``options``.

    A group whose version part names nothing (e.g. the alias is not set on it) is skipped
    with a warning (see :func:`discover`): the registry is where groups are added and
    removed, and a name that merely matches the pattern is not a deployment. Its events are
    dead-lettered as ``no_model_for_group``, visibly.

    A group whose model is there but cannot be served (download fails, no signature, it
    fails its own input example, a threshold it cannot honour) is fatal, as it is for a
    single model: someone deployed it to serve, and skipping it would quietly dead-letter
    that group's traffic under a reason that blames the events. Failing at start (or
    refusing the hot swap) names the group and says what to fix.

    No group at all is fatal too: the service would score nothing.
    """
    parsed = Template.parse(template, group_by)
    client = registry_client(options.get("tracking_uri"), options.get("registry_uri"))
    pinned = discover(client, template, group_by)
    if not pinned:
        raise ModelError(
            f"model.uri = {template!r} matched no servable registered model: searched "
            f"{parsed.search_filter} for names of that form "
            "whose version part names a version"
        )
    specs: dict[str, ModelSpec] = {}
    for group, uri in sorted(pinned.items()):
        try:
            spec = resolve_model(uri, **options)
        except ModelError as exc:
            raise ModelError(f"grouped model for {group_by} = {group!r} ({uri}): {exc}") from exc
        specs[group] = dataclasses.replace(spec, uri=parsed.uri(group))
    models = GroupedModels(group_by=group_by, template=template, specs=specs)
    log.info(
        'grouped models resolved template="%s" group_by="%s" groups="%d" versions="%s"',
        template,
        group_by,
        len(specs),
        ",".join(f"{g}={v}" for g, v in models.versions.items()),
    )
    return models


def ship_groups(spark: SparkSession, models: GroupedModels) -> None:
    """Make every group's model directory available to every executor."""
    for spec in models.specs.values():
        ship_model(spark, spec)


def group_value(field: str) -> Any:
    """The JVM-side group value of each row's JSON ``value`` (see the module doc).

    ``from_json`` with a one-field schema reads any field name (dots, spaces, quotes), gives
    the JSON text of a non-string value, and like the parser takes the last of duplicate
    keys; it is null for a value that is not a JSON object.
    """
    schema = T.StructType([T.StructField(field, T.StringType())])
    return F.from_json(F.col("value").cast("string"), schema).getField(field)


def grouped_scores(
    source: DataFrame, models: GroupedModels, settings: ScoringSettings
) -> DataFrame:
    """Source rows (:data:`~streamer.kafka.SOURCE_COLUMNS`) → one :data:`.scorer.OUTPUT_TYPE`
    row each, every row scored by its group's model or dead-lettered.

    Each group's :class:`.scorer.Scorer` is built here, on the driver, with
    ``hold_model=False``: the function is unpickled afresh for every task and called once per
    group in it, so a scorer that kept its model would only keep every group's model of the
    task alive at once, past the worker's LRU (``settings.cache_size``).
    """
    scorers = {
        group: Scorer(spec, settings, hold_model=False) for group, spec in models.specs.items()
    }
    unrouted = _Unrouted(models.group_by, models.template, settings)

    def score_group(key: tuple[Any, ...], frame: pd.DataFrame) -> pd.DataFrame:
        group = key[0]
        chunk = Chunk.from_pandas(*(frame[c] for c in SOURCE_COLUMNS))
        scorer = scorers.get(group) if group is not None else None
        if scorer is None:
            return pd.DataFrame(unrouted.dead_letters(group, chunk))
        return pd.DataFrame(scorer.score(chunk))

    grouped = source.select(*SOURCE_COLUMNS, group_value(models.group_by).alias(GROUP_COLUMN))
    return grouped.groupBy(GROUP_COLUMN).applyInPandas(score_group, OUTPUT_TYPE)


class _Unrouted:
    """Dead letters for the rows of a group no model serves (or of no group). Picklable."""

    def __init__(self, group_by: str, template: str, settings: ScoringSettings) -> None:
        self.group_by = group_by
        self.template = template
        self.dead_letter_topic = settings.dead_letter_topic
        # No fields: only its checks of the value itself (size, UTF-8, JSON, an object).
        self.parser = RecordParser(T.StructType([]), settings.max_record_bytes)

    def _why(self, group: str | None, value: bytes | None) -> tuple[str, str]:
        try:
            event = self.parser.load(value)
        except FieldError as exc:
            return exc.reason.value, str(exc)
        if group is not None:
            error = f"no model serves {self.group_by} = {group!r} (model.uri = {self.template!r})"
        elif self.group_by not in event:
            error = f"the event has no field {self.group_by!r}, which selects the model"
        else:
            error = f"field {self.group_by!r}, which selects the model, is null"
        return Reason.NO_MODEL_FOR_GROUP.value, error

    def dead_letters(self, group: str | None, chunk: Chunk) -> dict[str, Any]:
        """The :data:`.scorer.OUTPUT_TYPE` columns, every row a dead letter."""
        n = len(chunk)
        now_ms = int(time.time() * 1000)
        stamps = chunk.stamp_list()
        reasons: list[str | None] = []
        out: list[bytes | None] = []
        for pos in range(n):
            reason, error = self._why(group, chunk.values[pos])
            reasons.append(reason)
            out.append(chunk.dead_letter(pos, reason, error, stamps[pos], now_ms))
        return output_columns(chunk, [self.dead_letter_topic] * n, out, reasons)
