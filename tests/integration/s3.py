"""The local S3 server used by the s3 offset store tests and the durable tansu broker."""

from __future__ import annotations

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
