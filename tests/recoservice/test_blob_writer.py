"""BlockWriter against Azurite: blocks staged in parallel, committed in order, or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from recoservice import blobio
from recoservice.blobio import BlobIOError, BlockWriter, parse_location


def _location(container, blob: str, permission: str = "cw") -> blobio.BlobLocation:
    cred = container.credential
    token = generate_blob_sas(
        account_name=cred.account_name, container_name=container.container_name,
        blob_name=blob, account_key=cred.account_key,
        permission=BlobSasPermissions.from_string(permission),
        expiry=datetime.now(UTC) + timedelta(hours=1))
    return parse_location({"authenticationType": "PublicOrSas",
                           "baseLocation": container.url.rsplit("/", 1)[0] + "/",
                           "relativeLocation": f"{container.container_name}/{blob}",
                           "sasBlobToken": "?" + token}, "output")


def test_many_blocks_staged_in_parallel_commit_in_write_order(container, monkeypatch):
    monkeypatch.setattr(blobio, "BLOCK_BYTES", 1000)
    chunks = [f"chunk {i:04d} ".encode() * 40 for i in range(60)]  # ~600 bytes each
    writer = BlockWriter(_location(container, "out.json"), "application/json")

    for chunk in chunks:
        writer.write(chunk)
    writer.close()

    blob = container.get_blob_client("out.json")
    assert blob.download_blob().readall() == b"".join(chunks)
    assert blob.get_blob_properties().content_settings.content_type == "application/json"


def test_abort_leaves_no_blob(container, monkeypatch):
    monkeypatch.setattr(blobio, "BLOCK_BYTES", 100)
    writer = BlockWriter(_location(container, "gone.json"), "application/json")
    for _ in range(10):
        writer.write(b"x" * 150)

    writer.abort()

    assert not container.get_blob_client("gone.json").exists()


def test_a_failed_block_fails_the_write_without_the_token(container, monkeypatch):
    monkeypatch.setattr(blobio, "BLOCK_BYTES", 100)
    location = _location(container, "ro.json", permission="r")  # cannot write
    writer = BlockWriter(location, "application/json")

    with pytest.raises(BlobIOError) as caught:
        for _ in range(10):
            writer.write(b"y" * 150)
        writer.close()

    assert "ro.json" in str(caught.value)
    assert location.sas_token.split("sig=")[1][:10] not in str(caught.value)
    assert not container.get_blob_client("ro.json").exists()
