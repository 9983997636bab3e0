"""What the benchmarks that submit a v4 batch job share: the job body with its SAS locations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobSasPermissions, generate_blob_sas


def batch_job_body(service, container, model_id: str, **job) -> dict:
    """``POST /batchjobs`` body for ``job/input.json`` of ``container`` (account-key SAS, 2 h),
    output and errors beside it; ``job`` adds to or overrides the item-to-item job settings."""
    def where(blob: str, permission: str) -> dict:
        token = generate_blob_sas(
            account_name=service.account_name, container_name=container.container_name,
            blob_name=blob, account_key=service.credential.account_key,
            permission=BlobSasPermissions.from_string(permission),
            expiry=datetime.now(UTC) + timedelta(hours=2))
        return {"authenticationType": "PublicOrSas",
                "baseLocation": container.url.rsplit("/", 1)[0] + "/",
                "relativeLocation": f"{container.container_name}/{blob}",
                "sasBlobToken": "?" + token}

    return {"input": where("job/input.json", "r"), "output": where("job/output.json", "cw"),
            "error": where("job/errors.txt", "cw"),
            "job": {"apiName": "ItemRecommend", "modelId": model_id, "numberOfResults": 10,
                    "includeMetadata": False, **job}}
