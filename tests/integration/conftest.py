import uuid

import pytest

from tests.integration.models import register_classifier, register_regressor


@pytest.fixture(scope="session")
def mlflow_root(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def tracking_uri(mlflow_root):
    return f"sqlite:///{mlflow_root}/mlflow.db"


@pytest.fixture(scope="session")
def fraud_classifier(tracking_uri, mlflow_root):
    return register_classifier(
        tracking_uri, str(mlflow_root / "artifacts"), f"fraud-{uuid.uuid4().hex[:6]}"
    )


@pytest.fixture(scope="session")
def amount_regressor(tracking_uri, mlflow_root):
    return register_regressor(
        tracking_uri, str(mlflow_root / "artifacts"), f"amount-{uuid.uuid4().hex[:6]}"
    )
