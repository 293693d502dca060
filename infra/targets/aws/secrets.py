"""The aws target's ``SecretStore``: each tenant's secrets in AWS Secrets Manager.

A secret ``name`` of tenant ``code`` is the Secrets Manager secret ``karmayogi/<code>/<name>``
(``_`` written ``-``), the name the tenant stack makes and the rendered files refer to as
``aws-secretsmanager:karmayogi/<code>/<name>``. Values are read and written here, by the
kit, never by Pulumi: none ever lands in a stack's state, a log line or an error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
import botocore.exceptions

from infra.errors import KitError
from infra.home import new_password
from infra.render.inputs import CLIENT_SECRETS, Secret
from infra.targets.aws import names
from infra.targets.aws.audit import aws_client

REFERENCE_PREFIX = "aws-secretsmanager:"


@dataclass
class AwsSecretStore:
    """Secrets Manager through boto3 (account, region and endpoint found the usual way).

    ``kms_key_id`` encrypts secrets this store creates; by default, the tenant's own key
    (``alias/karmayogi-<code>-<environment>``) as its stack made it.
    """

    environment: str = "production"
    session: boto3.session.Session | None = None
    kms_key_id: str | None = None

    def _client(self) -> Any:
        return aws_client("secretsmanager", self.session)

    def secret(self, code: str, name: str) -> Secret:
        secret_id = names.secret_id(code, name)
        return Secret(name, REFERENCE_PREFIX + secret_id, self.read(secret_id))

    def values(self, code: str) -> dict[str, str]:
        """The tenant's secrets that exist, the client secrets made first if missing."""
        found = {n: v for n in names.SECRET_NAMES if (v := self.read(names.secret_id(code, n)))}
        missing = {n: new_password() for n in CLIENT_SECRETS if n not in found}
        if missing:
            self.put(code, missing)
        return found | missing

    def put(self, code: str, values: dict[str, str]) -> None:
        """Write some of the tenant's secrets (a new version of each; new ones created)."""
        unknown = sorted(set(values) - set(names.SECRET_NAMES))
        if unknown:
            raise KitError(f"tenant {code}: no secret named {', '.join(unknown)} on aws")
        client = self._client()
        for name, value in values.items():
            secret_id = names.secret_id(code, name)
            try:
                client.put_secret_value(SecretId=secret_id, SecretString=value)
            except botocore.exceptions.ClientError as error:
                if _code(error) != "ResourceNotFoundException":
                    raise _refused(error, secret_id) from None
                self._create(client, code, secret_id, value)

    def _create(self, client: Any, code: str, secret_id: str, value: str) -> None:
        key = self.kms_key_id or names.key_alias(code, self.environment)
        try:
            client.create_secret(
                Name=secret_id,
                SecretString=value,
                KmsKeyId=key,
                Tags=[
                    {"Key": k, "Value": v} for k, v in names.tags(code, self.environment).items()
                ],
            )
        except botocore.exceptions.ClientError as error:
            raise _refused(error, secret_id) from None

    def write(self, secret_id: str, value: str) -> None:
        """A new version of a secret a stack made (a tenant's, the platform's)."""
        try:
            self._client().put_secret_value(SecretId=secret_id, SecretString=value)
        except botocore.exceptions.ClientError as error:
            raise _refused(error, secret_id) from None

    def read(self, secret_id: str) -> str | None:
        """A secret's value (a name or an ARN); None when there is no such secret."""
        try:
            answer = self._client().get_secret_value(SecretId=secret_id)
        except botocore.exceptions.ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return None
            raise _refused(error, secret_id) from None
        value = answer.get("SecretString")
        return str(value) if value is not None else None


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _refused(error: botocore.exceptions.ClientError, secret_id: str) -> KitError:
    # The error's message may quote the request; only its code is safe to show.
    return KitError(
        f"AWS Secrets Manager refused {error.operation_name} of {secret_id} ({_code(error)})"
    )
