"""``streamer run`` on a core install (no extras): it scores on the real broker.

The service runs as its own process, with the extras' libraries hidden from it and from
Spark's Python workers by a ``sitecustomize`` import hook (the same hook as
``tests/unit/test_extras.py``), and scores with a model that needs none of them: a pyfunc
from code, pandas only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from tests.helpers import produce
from tests.integration.models import event_records, feature_frame
from tests.integration.runner import outputs_of, source_positions, write_config
from tests.unit.test_extras import HIDDEN, HOOK

pytestmark = pytest.mark.integration

EVENTS = 200

MODEL_CODE = """
import mlflow
import pandas as pd


class Amount(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"score": model_input["amount ($)"].astype(float) / 1000.0})


mlflow.models.set_model(Amount())
"""


@pytest.fixture(scope="module")
def plain_model(tracking_uri, mlflow_root, tmp_path_factory):
    from mlflow.models import infer_signature

    from streamer.tools.train import use_experiment
    from tests.integration.models import RegisteredModel

    code = tmp_path_factory.mktemp("plain-model") / "amount_model.py"
    code.write_text(MODEL_CODE)
    mlflow.set_tracking_uri(tracking_uri)
    use_experiment("streamer-tests", str(mlflow_root / "artifacts"))
    X = feature_frame(5)
    name = f"plain-{os.getpid()}"
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            signature=infer_signature(X, pd.DataFrame({"score": [0.5]})),
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    return RegisteredModel(name, version, f"models:/{name}/{version}", tracking_uri)


@pytest.mark.timeout(900)
def test_run_scores_without_any_extra(
    kafka_bootstrap, service_topics, plain_model, tmp_path, kafka_backend
):
    hook = tmp_path / "core-install"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    topics = service_topics(partitions=2)
    config = write_config(
        tmp_path / "streamer.yaml",
        bootstrap=kafka_bootstrap,
        topics=topics,
        model=plain_model,
        kafka={"backend": kafka_backend},
    )
    produce(kafka_bootstrap, topics["in"], event_records(EVENTS, seed=4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    probe = subprocess.run(
        [sys.executable, "-c", "import sklearn"], env=env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "halted; None in sys.modules" in probe.stderr, "no hook"
    process = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "run", "--config", config],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    try:
        records = outputs_of(process, kafka_bootstrap, topics["out"], EVENTS)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert set(source_positions(records).values()) == {1}
    assert len(records) == EVENTS
    for module in HIDDEN:
        assert f"import of {module} halted" not in err
