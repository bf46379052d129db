"""The local S3 server used by the s3 offset store tests and the durable tansu broker."""

from __future__ import annotations

import json
from dataclasses import dataclass

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client_kwargs(self) -> dict[str, str]:
        """``offsets.s3_client`` for this server."""
        return {"endpoint_url": self.endpoint, "region_name": REGION, **CREDENTIALS}

    def client(self):
        import boto3

        return boto3.client("s3", **self.client_kwargs())

    def tansu_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
        }


def add_partitions(broker, s3: S3Server, topic: str, total: int) -> None:
    """Grow ``topic`` to ``total`` partitions on a durable tansu broker.

    tansu 0.6 answers CreatePartitions with UNSUPPORTED_FEATURE. It keeps topic metadata in
    ``clusters/<id>/meta.json`` of its storage and caches it while running, so this stops
    the broker, raises ``num_partitions`` there and starts it again on the same port (about
    a second). Clients then see what CreatePartitions gives on Apache Kafka: metadata lists
    the new partitions, and produce and fetch work on them.
    """
    broker.stop()
    client = s3.client()
    key = "clusters/tansu_cluster/meta.json"
    meta = json.loads(client.get_object(Bucket=broker.bucket, Key=key)["Body"].read())
    meta["topics"][topic]["topic"]["num_partitions"] = total
    client.put_object(Bucket=broker.bucket, Key=key, Body=json.dumps(meta).encode())
    broker.start()
