"""``model.env_manager``: a model whose dependency the service lacks is served from its own
restored environment (:mod:`streamer.scoring.envs`), with a real MLflow registry, real uv,
pip and pyenv, real scoring-server processes, and the real service on a real broker.

The probe model imports ``humanize`` (pinned; absent from the service's environment) when it
loads, and reports the package's version and the dtypes it received in every prediction, so
each test sees which environment scored and what survived the trip. The environments land
in MLflow's persistent cache (``$MLFLOW_ENV_ROOT``, default ``~/.mlflow/envs``): the first
run creates them (seconds with uv, about a minute with virtualenv's pip), later runs reuse
them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from streamer.config import load_config
from streamer.errors import ModelError
from streamer.scoring import envs
from streamer.tools.train import use_experiment
from tests.helpers import assert_eventually, consume_all, produce
from tests.integration.models import RegisteredModel, event_records, feature_frame
from tests.integration.runner import Running, write_config

pytestmark = pytest.mark.integration

needs_pyenv = pytest.mark.skipif(
    shutil.which("pyenv") is None and os.environ.get("STREAMER_TEST_REQUIRE_PYENV") != "1",
    reason="pyenv is not on PATH: env_manager virtualenv restores the model's Python with it",
)
"""CI sets STREAMER_TEST_REQUIRE_PYENV=1 (.ci/run): there these tests run, and fail if pyenv
is missing, rather than skip."""

REPO = Path(__file__).resolve().parents[2]
PIN = {"uv": "4.9.0", "virtualenv": "4.8.0"}
"""A different pin per manager: each gets an environment of its own (MLflow names the
environment by the requirements alone, so equal pins would share one)."""

# A model from code (no pickled class: the environment cannot import this test module).
MODEL_CODE = """
import importlib.metadata

import mlflow
import pandas as pd


class EnvProbe(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import humanize  # absent from the service's environment on purpose

        self.humanize = humanize

    def predict(self, context, model_input, params=None):
        dtypes = ",".join(f"{c}={t}" for c, t in model_input.dtypes.astype(str).items())
        return pd.DataFrame(
            {
                "score": model_input["amount ($)"].astype(float) / 100.0,
                "amount_text": [self.humanize.intcomma(int(a)) for a in model_input["amount ($)"]],
                "humanize": importlib.metadata.version("humanize"),
                "dtypes": dtypes,
            }
        )


mlflow.models.set_model(EnvProbe())
"""

EXPECTED_DTYPES = {
    "amount ($)": {"float64"},
    "merchant category": {"object", "str", "string"},  # pandas 2 or 3 in the environment
    "hour": {"int32"},
    "distance.km": {"float64"},
    "txn_last_hour": {"int64"},
    "card present?": {"bool"},
}


def _log_probe(tracking_uri: str, root: Path, name: str, requirement: str) -> RegisteredModel:
    from mlflow.models import infer_signature

    mlflow.set_tracking_uri(tracking_uri)
    code = root / "env_probe_model.py"
    code.write_text(MODEL_CODE)
    X = feature_frame(5)
    out = pd.DataFrame({"score": [0.5], "amount_text": ["1"], "humanize": ["x"], "dtypes": ["x"]})
    use_experiment("streamer-tests", str(root / "artifacts"))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            pip_requirements=[requirement],
            signature=infer_signature(X, out),
            input_example=X,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    return RegisteredModel(name, version, f"models:/{name}/{version}", tracking_uri)


@pytest.fixture(scope="module")
def probe_models(tracking_uri, mlflow_root, tmp_path_factory):
    """{env_manager: (registered model, downloaded model directory)}"""
    root = tmp_path_factory.mktemp("env-probe")
    models = {}
    for manager, pin in PIN.items():
        registered = _log_probe(
            tracking_uri, mlflow_root, f"env-probe-{uuid.uuid4().hex[:6]}", f"humanize=={pin}"
        )
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=registered.uri, dst_path=str(root / manager), tracking_uri=tracking_uri
        )
        models[manager] = (registered, path)
    return models


def _check_predictions(out: pd.DataFrame, frame: pd.DataFrame, pin: str) -> None:
    assert list(out.columns) == ["score", "amount_text", "humanize", "dtypes"]
    assert len(out) == len(frame)
    assert set(out["humanize"]) == {pin}, "scored outside the model's environment"
    assert out["amount_text"].tolist() == [f"{int(a):,}" for a in frame["amount ($)"]]
    pd.testing.assert_series_equal(
        out["score"], frame["amount ($)"] / 100.0, check_names=False, check_index=False
    )
    seen = dict(pair.split("=", 1) for pair in out["dtypes"].iloc[0].split(","))
    assert list(seen) == list(EXPECTED_DTYPES), seen
    for column, dtypes in EXPECTED_DTYPES.items():
        assert seen[column] in dtypes, (column, seen[column])


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.parametrize("manager", ["uv", pytest.param("virtualenv", marks=needs_pyenv)])
def test_restored_environment_scores_with_its_own_packages(probe_models, manager):
    _, path = probe_models[manager]
    envs.prepare(path, manager)
    envs.prepare(path, manager)  # idempotent: the cached environment
    assert (envs.env_dir(path) / envs.READY_MARKER).exists()
    frame = feature_frame(40, seed=5)
    for wire in envs.WIRES:
        model = envs.load(path, manager, wire=wire)
        try:
            assert model.wire == wire
            _check_predictions(model.predict(frame), frame, PIN[manager])
        finally:
            model.close()
        assert model.pid is None


def test_local_manager_cannot_import_the_dependency(probe_models):
    """The service's own environment lacks humanize: isolation is what made the test above
    pass, not a package that happened to be installed."""
    _, path = probe_models["uv"]
    with pytest.raises(ModuleNotFoundError, match="humanize"):
        envs.load(path, "local")


CHILD = textwrap.dedent(
    """
    import sys, threading
    from streamer.scoring import envs

    held = {}
    # Loaded from a thread that ends at once: the server must not die with the thread.
    loader = threading.Thread(target=lambda: held.update(m=envs.load(sys.argv[1], "uv")))
    loader.start()
    loader.join()
    with open(sys.argv[2], "w") as out:
        out.write(str(held["m"].pid))
    sys.stdin.read()  # until the test closes stdin (clean exit) or kills us
    """
)


@pytest.mark.parametrize("ending", ["sigkill", "clean-exit"])
def test_server_dies_with_its_worker(probe_models, tmp_path, ending):
    _, path = probe_models["uv"]
    envs.prepare(path, "uv")
    pid_file = tmp_path / "server.pid"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, path, str(pid_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:

        def server_pid() -> int:
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            text = pid_file.read_text() if pid_file.exists() else ""
            assert text, "no server yet"
            return int(text)

        pid = assert_eventually(server_pid, timeout=180)
        assert _running(pid)
        if ending == "sigkill":
            child.send_signal(signal.SIGKILL)  # what Spark does to an idle Python worker
        else:
            child.stdin.close()
        child.wait(timeout=60)

        def gone() -> None:
            assert not _running(pid), f"server {pid} outlived its worker ({ending})"

        assert_eventually(gone, timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_dead_server_is_restarted_by_the_next_predict(probe_models):
    _, path = probe_models["uv"]
    model = envs.load(path, "uv")
    try:
        first = model.pid
        os.kill(first, signal.SIGKILL)

        def dead() -> None:
            assert not model.alive()

        assert_eventually(dead, timeout=30)
        frame = feature_frame(10, seed=9)
        _check_predictions(model.predict(frame), frame, PIN["uv"])
        assert model.pid != first and model.alive()
        assert model.restarts == 1
        # The model's own failure is an error for that batch, not a restart.
        with pytest.raises(ModelError, match="HTTP 400"):
            model.predict(frame.drop(columns=["hour"]))
        assert model.restarts == 1 and model.alive()
    finally:
        model.close()


def _copy_with(path: str, tmp_path: Path, *, python: str | None = None, requirement=None) -> str:
    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    if python is not None:
        env = yaml.safe_load((copy / "python_env.yaml").read_text())
        env["python"] = python
        (copy / "python_env.yaml").write_text(yaml.safe_dump(env))
    if requirement is not None:
        (copy / "requirements.txt").write_text(f"mlflow=={mlflow.__version__}\n{requirement}\n")
    return str(copy)


def test_uv_without_the_models_python_says_how_to_fix_it(probe_models, tmp_path):
    # 3.9.18 is installed in pyenv here, but not a global version, so uv cannot see it.
    path = _copy_with(probe_models["uv"][1], tmp_path, python="3.9.18")
    with pytest.raises(ModelError, match=r"no Python 3\.9\.18 interpreter that uv can use"):
        envs.prepare(path, "uv")
    assert not envs.env_dir(path).exists()


@needs_pyenv
def test_virtualenv_without_the_models_python_says_how_to_fix_it(probe_models, tmp_path):
    path = _copy_with(probe_models["uv"][1], tmp_path, python="3.11.99")
    with pytest.raises(ModelError, match=r"pyenv has no Python 3\.11\.99.*pyenv install"):
        envs.prepare(path, "virtualenv")


def test_failed_install_names_the_requirement_and_leaves_no_environment(probe_models, tmp_path):
    missing = "streamer-no-such-package-for-tests==1.0"  # fixed: one environment name
    path = _copy_with(probe_models["uv"][1], tmp_path, requirement=missing)
    with pytest.raises(ModelError, match="cannot create the uv environment") as failure:
        envs.prepare(path, "uv")
    assert missing.split("==")[0] in str(failure.value)  # the installer's own words, in the tail
    assert not envs.env_dir(path).exists()


def test_service_scores_in_the_models_environment(
    spark, kafka_bootstrap, probe_models, tmp_path, service_topics
):
    """The whole service with ``model.env_manager: uv``: the driver restores the environment
    and probes the model through it, each Python worker serves it once, and every output
    carries the pinned package's version and the dtypes the signature asks for."""
    registered, _ = probe_models["uv"]
    topics = service_topics(partitions=2)
    events = event_records(300, seed=11, prefix="env")
    produce(kafka_bootstrap, topics["in"], events)
    path = Path(
        write_config(
            tmp_path / "streamer.yaml",
            bootstrap=kafka_bootstrap,
            topics=topics,
            model=registered,
            spark={"trigger": "500 milliseconds", "max_offsets_per_trigger": 100},
        )
    )
    document = yaml.safe_load(path.read_text())
    document["model"]["env_manager"] = "uv"
    path.write_text(yaml.safe_dump(document))
    running = Running(load_config(str(path), env={}), spark)
    try:
        outputs = consume_all(kafka_bootstrap, topics["out"], len(events), timeout=300)
    finally:
        result = running.stop()
    assert result.outcome == "stopped", result.error
    bodies = {json.loads(r.value)["key"]: json.loads(r.value) for r in outputs}
    assert sorted(bodies) == sorted(k.decode() for k, _ in events)
    frame = feature_frame(300, seed=11)
    for i, amount in enumerate(frame["amount ($)"]):
        prediction = bodies[f"env-{i}"]["prediction"]
        assert prediction["humanize"] == PIN["uv"]
        assert prediction["amount_text"] == f"{int(amount):,}"
    seen = dict(p.split("=", 1) for p in bodies["env-0"]["prediction"]["dtypes"].split(","))
    for column, dtypes in EXPECTED_DTYPES.items():
        assert seen[column] in dtypes, (column, seen[column])
    totals = result.totals
    assert totals.model_loads >= 1
    assert len(totals.load_pids) == len(set(totals.load_pids)) == totals.model_loads
