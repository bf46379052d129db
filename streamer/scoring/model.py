"""Driver side: resolve the configured model URI, pin it, download it once, ship it to the
executors, and validate it (signature → input schema, and a probe of its output shape).

Executors never talk to the tracking server: the pinned model directory travels as a zip
archive (:func:`ship_model`) and each Python worker loads it from where Spark unpacked it,
once (see :mod:`.cache`). Pinning means an alias moved in the registry while the service runs
does not change which version scores; every output names the version that scored it.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from streamer.errors import ModelError, root_cause
from streamer.kafka import SOURCE_COLUMNS
from streamer.scoring import envs
from streamer.scoring.predictions import normalize_predictions, scores_for_threshold
from streamer.scoring.schema import signature_to_schema
from streamer.scoring.scorer import Scorer, ScoringSettings
from streamer.scoring.udf import make_scoring_udf

log = logging.getLogger(__name__)

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))/?$")
_LOGGED_MODEL_URI = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)/?$")
"""MLflow 3's logged models (``models:/m-<id>``): immutable, so already pinned."""


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A resolved, pinned, downloaded and validated model. Picklable; small."""

    uri: str
    pinned_uri: str
    name: str
    version: str | None
    local_path: str
    input_schema: T.StructType
    output_columns: tuple[str, ...] | None
    """Column names when the model returns several columns, None for one value per row,
    and None as well when no input example was available to probe the output."""
    env_manager: str = "local"

    @property
    def ship_name(self) -> str:
        """The name the model directory has under ``SparkFiles`` on executors. Unique per
        resolve (the download directory's name ends in a random suffix), so a hot swap's
        new version never lands on the directory the running version is loaded from."""
        return Path(self.local_path).name

    @property
    def group_by(self) -> None:
        return None

    def served(self) -> list[ModelSpec]:
        return [self]

    def identity(self) -> str:
        return self.pinned_uri

    def ship(self, spark: SparkSession) -> None:
        ship_model(spark, self)

    def scorer(self, settings: ScoringSettings, *, shadow: ModelSpec | None = None) -> Scorer:
        return Scorer(self, settings, shadow=shadow)

    def scores(
        self, source: DataFrame, settings: ScoringSettings, *, shadow: ModelSpec | None = None
    ) -> DataFrame:
        """The scoring pandas UDF over the source columns; other columns (headers) ride
        beside each record's output or dead letter."""
        udf = make_scoring_udf(self.scorer(settings, shadow=shadow))
        extra = [c for c in source.columns if c not in SOURCE_COLUMNS]
        scored = source.select(udf(*[F.col(c) for c in SOURCE_COLUMNS]).alias("r"), *extra)
        return scored.select("r.*", *extra)


class Models(Protocol):
    """What the service serves: one model (:class:`ModelSpec`) or one per value of an event
    field (:class:`.groups.GroupedModels`). The service, the pipeline and the alias follower
    use only these, never the kind."""

    @property
    def group_by(self) -> str | None:
        """The event field whose value picks each row's model; None for one model."""

    def served(self) -> list[ModelSpec]:
        """Every model served."""

    def identity(self) -> str:
        """What names the served version(s): the pinned URI, or the groups' pinned URIs."""

    def ship(self, spark: SparkSession) -> None:
        """Make every model directory available to every executor."""

    def scorer(
        self, settings: ScoringSettings, *, shadow: ModelSpec | None = None
    ) -> Scorer | None:
        """The scoring step every record goes through as it is read, or None when records
        are routed to their group's model first (a shuffle), so a source cannot score them."""

    def scores(
        self, source: DataFrame, settings: ScoringSettings, *, shadow: ModelSpec | None = None
    ) -> DataFrame:
        """Source rows (:data:`~streamer.kafka.SOURCE_COLUMNS`) → one
        :data:`.scorer.OUTPUT_TYPE` row each: the scoring step in the Spark plan."""


@dataclass(frozen=True)
class _Pinned:
    pinned_uri: str
    name: str
    version: str | None


def registry_client(tracking_uri: str | None, registry_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)


def pin_model_uri(uri: str, client: Any) -> _Pinned:
    """Resolve aliases, ``latest`` and stages to a version; keep other URIs as they are."""
    logged = _LOGGED_MODEL_URI.match(uri)
    if logged:
        return _Pinned(uri, logged["id"], None)
    match = _MODELS_URI.match(uri)
    if uri.startswith("models:/") and not match:
        raise ModelError(
            f"model.uri = {uri!r} is not a registry URI streamer understands; use "
            "models:/<name>@<alias>, models:/<name>/<version>, models:/<name>/latest or a "
            "logged model's models:/m-<id>"
        )
    try:
        if match:
            name, alias, ref = match["name"], match["alias"], match["ref"]
            if alias:
                mv = client.get_model_version_by_alias(name, alias)
            elif ref.isdigit():
                mv = client.get_model_version(name, ref)
            elif ref.lower() == "latest":
                versions = client.search_model_versions(f"name='{name}'")
                if not versions:
                    raise ModelError(f"registered model {name!r} has no versions")
                mv = max(versions, key=lambda v: int(v.version))
            else:
                found = client.get_latest_versions(name, stages=[ref])
                if not found:
                    raise ModelError(f"registered model {name!r} has no version in stage {ref!r}")
                mv = found[0]
            return _Pinned(f"models:/{name}/{mv.version}", name, str(mv.version))
    except ModelError:
        raise
    except Exception as exc:  # the MLflow client raises MlflowException and transport errors
        raise ModelError(f"cannot resolve model.uri = {uri!r}: {exc}") from exc
    if uri.startswith("runs:/"):
        parts = uri[len("runs:/") :].strip("/").split("/", 1)
        return _Pinned(uri, parts[1] if len(parts) > 1 else "model", parts[0])
    return _Pinned(uri, Path(uri.rstrip("/")).name or "model", None)


def resolve_model(
    uri: str,
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    threshold: float | None = None,
    score_column: str | None = None,
    work_dir: str | None = None,
    env_manager: str = "local",
) -> ModelSpec:
    """Pin, download and validate the model; fail fast with a message that says what to fix.

    With ``env_manager`` other than ``local`` the model's own environment is restored here
    (once per machine; :mod:`.envs` caches it) and the probe scores through it.
    """
    import mlflow

    # MLflow's models:/ artifact repository only follows the process-wide URIs, so the
    # configured ones become the process's (this runs on the driver, at start-up).
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if registry_uri:
        mlflow.set_registry_uri(registry_uri)
    pinned = pin_model_uri(uri, registry_client(tracking_uri, registry_uri))
    dst, metadata = _download(pinned, work_dir, tracking_uri, registry_uri)
    if "python_function" not in metadata.flavors:
        raise ModelError(
            f"{pinned.pinned_uri} has no python_function flavor; pyfunc cannot load it"
        )
    schema = signature_to_schema(metadata.signature)
    if env_manager != "local":
        envs.prepare(str(dst), env_manager)
    output_columns = _probe_output(
        metadata, str(dst), threshold, score_column, pinned.pinned_uri, env_manager
    )
    spec = ModelSpec(
        uri=uri,
        pinned_uri=pinned.pinned_uri,
        name=pinned.name,
        version=pinned.version,
        local_path=str(dst),
        input_schema=schema,
        output_columns=output_columns,
        env_manager=env_manager,
    )
    log.info(
        'model resolved uri="%s" pinned="%s" name="%s" version="%s" inputs="%d" outputs="%s"',
        uri,
        spec.pinned_uri,
        spec.name,
        spec.version,
        len(schema.fields),
        ",".join(output_columns) if output_columns else "single",
    )
    return spec


def _download(
    pinned: _Pinned, work_dir: str | None, tracking_uri: str | None, registry_uri: str | None
) -> tuple[Path, Any]:
    """The pinned model's directory, downloaded under a unique name, and its metadata."""
    import mlflow
    from mlflow.models import Model

    parent = Path(work_dir or tempfile.gettempdir())
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{pinned.name}-{pinned.version or 'local'}")
    dst = parent / f"streamer-model-{safe}-{uuid.uuid4().hex[:8]}"
    dst.mkdir(parents=True)
    try:
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=pinned.pinned_uri,
            dst_path=str(dst),
            tracking_uri=tracking_uri,
            registry_uri=registry_uri,
        )
        local = Path(downloaded)
        if not (local / "MLmodel").exists():
            raise ModelError(f"{pinned.pinned_uri} has no MLmodel file; is it an MLflow model?")
        # Ship exactly the model directory, under a unique name.
        if local != dst:
            for item in local.iterdir():
                shutil.move(str(item), dst / item.name)
        metadata = Model.load(str(dst))
    except ModelError:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(dst, ignore_errors=True)
        raise ModelError(f"cannot download model {pinned.pinned_uri}: {exc}") from exc
    return dst, metadata


def _probe_output(
    metadata: Any,
    path: str,
    threshold: float | None,
    score_column: str | None,
    where: str,
    env_manager: str = "local",
) -> tuple[str, ...] | None:
    """Load the model once on the driver and score its input example, when it has one.

    This proves the model loads and scores before any executor tries, and tells whether the
    output is one value or several columns, so a threshold without ``model.score_column``
    on a multi-column model is refused at start rather than mislabelling every record.
    """
    try:
        example = metadata.load_input_example(path)
    except Exception as exc:
        log.warning('model input example unreadable model="%s" error="%s"', where, exc)
        example = None
    if example is None:
        log.warning(
            'model has no input example; output shape not probed model="%s" '
            "(log it with input_example=... to have it checked at start)",
            where,
        )
        return None
    model: Any = None
    try:
        model = envs.load(path, env_manager)
        frame = example if isinstance(example, pd.DataFrame) else pd.DataFrame(example)
        predictions, columns = normalize_predictions(model.predict(frame), len(frame))
    except Exception as exc:
        raise ModelError(f"model {where} failed to score its own input example: {exc}") from exc
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            close()
    if threshold is not None:
        if columns and score_column is None:
            raise ModelError(
                f"model.threshold is set but {where} returns several columns {list(columns)}; "
                "set model.score_column to the one the threshold applies to"
            )
        if columns and score_column not in columns:
            raise ModelError(
                f"model.score_column = {score_column!r} is not among the model's output "
                f"columns {list(columns)}"
            )
        scores = scores_for_threshold(predictions, score_column if columns else None)
        if np.isnan(scores).all():
            raise ModelError(f"model.threshold is set but {where} returns non-numeric predictions")
    return columns


def incompatibilities(current: ModelSpec, candidate: ModelSpec) -> list[str]:
    """Why ``candidate`` cannot replace ``current`` mid-stream; empty when it can.

    The events are the ones ``current`` reads, so every input of the candidate must be one
    of the current inputs, with the same type, and required only where it was required: the
    parser then accepts every record it accepted before (and possibly more, when the
    candidate drops an input).
    The output must keep its shape (one value, or the same columns), since consumers of the
    output topic read it.
    """
    problems = []
    fields = {f.name: f for f in current.input_schema.fields}
    for f in candidate.input_schema.fields:
        old = fields.get(f.name)
        if old is None:
            problems.append(f"input {f.name!r} ({f.dataType.simpleString()}) is not read today")
        elif old.dataType != f.dataType:
            problems.append(
                f"input {f.name!r} is {f.dataType.simpleString()}, was "
                f"{old.dataType.simpleString()}"
            )
        elif old.nullable and not f.nullable:
            problems.append(f"input {f.name!r} is required, was optional")
    if current.output_columns != candidate.output_columns and None not in (
        current.output_columns,
        candidate.output_columns,
    ):
        problems.append(
            f"output columns {list(candidate.output_columns or [])}, were "
            f"{list(current.output_columns or [])}"
        )
    elif (current.output_columns is None) != (candidate.output_columns is None):
        problems.append("output shape changed between one value and several columns")
    return problems


def ship_model(spark: SparkSession, spec: ModelSpec) -> None:
    """Make the model directory available to every executor under ``spec.ship_name``.

    The directory is zipped next to itself and added with
    ``SparkContext.addArchive("<zip>#<ship_name>")``, one code path for every master:
    ``addFile`` of a directory is refused on any non-local master
    (``UNSUPPORTED_ADD_FILE.LOCAL_DIRECTORY``). Spark unpacks the archive into
    ``<SparkFiles root>/<ship_name>``, which :func:`.cache.model_dir` reads:

    - on a cluster's executors the root is the executor's working directory (standalone:
      ``<worker dir>/<app id>/<executor id>``), and each executor unpacks the archive
      before its first task that follows the ``addArchive``;
    - in ``local`` mode the driver unpacks it, at ``addArchive``, into its own
      ``userFiles-*`` root, which is the root its (in-process) executor's Python workers get.

    The name must be new to the SparkContext: Spark keys archives by URI, so a second zip
    under a used name is accepted and unpacked over the first one on executors. Ship names
    are unique per resolve (:attr:`ModelSpec.ship_name`); shipping the same spec again is a
    no-op with a warning from Spark.
    """
    archive = Path(spec.local_path).with_name(f"{spec.ship_name}.zip")
    try:
        if not archive.exists():
            _zip_dir(Path(spec.local_path), archive)
        spark.sparkContext.addArchive(f"{archive.resolve().as_uri()}#{spec.ship_name}")
    except Exception as exc:  # Py4JJavaError, or an OSError writing the zip
        raise ModelError(
            f"cannot ship model {spec.pinned_uri} to the executors: {root_cause(exc)}"
        ) from exc
    log.info(
        'model shipped model="%s" ship_name="%s" archive_bytes="%d"',
        spec.pinned_uri,
        spec.ship_name,
        archive.stat().st_size,
    )


def _zip_dir(directory: Path, archive: Path) -> None:
    """Zip the files under ``directory`` relative to it (``MLmodel`` at the top), written to
    a temporary name first so a half-written zip is never shipped."""
    partial = archive.with_name(f"{archive.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(directory.rglob("*")):
            zf.write(path, path.relative_to(directory).as_posix())
    partial.replace(archive)
