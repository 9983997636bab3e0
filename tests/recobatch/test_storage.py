"""SAS scope and expiry, and block streams, against real Azurite."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

from recobatch import storage
from recobatch.errors import SupersededError


def _client(location: storage.BlobLocation) -> BlobClient:
    return BlobClient.from_blob_url(location.base_location + location.relative_location
                                    + location.sas_token, retry_total=0)


def test_read_sas_reads_its_blob_only_and_cannot_write(container):
    blob = container.get_blob_client("a/in.json")
    blob.upload_blob(b'{"requests": []}')
    container.get_blob_client("a/other.json").upload_blob(b"other")
    location = storage.sas_location(blob, "r", storage.sas_expiry(60))

    assert _client(location).download_blob().readall() == b'{"requests": []}'
    with pytest.raises(HttpResponseError) as write:
        _client(location).upload_blob(b"overwrite", overwrite=True)
    assert write.value.status_code == 403
    other = storage.BlobLocation(location.base_location,
                                 location.relative_location.replace("in.json", "other.json"),
                                 location.sas_token)
    with pytest.raises(HttpResponseError) as cross:
        _client(other).download_blob().readall()
    assert cross.value.status_code == 403


def test_write_sas_creates_its_blob_and_cannot_read(container):
    blob = container.get_blob_client("a/out.json")
    location = storage.sas_location(blob, "cw", storage.sas_expiry(60))

    _client(location).upload_blob(b"written", overwrite=True)

    assert blob.download_blob().readall() == b"written"
    with pytest.raises(HttpResponseError) as read:
        _client(location).download_blob().readall()
    assert read.value.status_code == 403


def test_sas_expiry_is_job_timeout_plus_margin_and_location_is_v4_shaped(container):
    blob = container.get_blob_client("x/in.json")
    before = datetime.now(UTC)
    expiry = storage.sas_expiry(360, now=before)

    location = storage.sas_location(blob, "r", expiry)

    query = parse_qs(location.sas_token.lstrip("?"))
    assert location.sas_token.startswith("?")
    assert query["sp"] == ["r"]
    assert query["sr"] == ["b"]
    se = datetime.strptime(query["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(se - (before + timedelta(minutes=375))) < timedelta(seconds=2)
    assert location.base_location.endswith("/")
    assert location.relative_location == f"{container.container_name}/x/in.json"
    assert "sig=" not in repr(location)


def test_expired_sas_is_refused(container):
    blob = container.get_blob_client("old.json")
    blob.upload_blob(b"x")
    location = storage.sas_location(blob, "r", datetime.now(UTC) - timedelta(minutes=1))

    with pytest.raises(HttpResponseError) as info:
        _client(location).download_blob().readall()

    assert info.value.status_code == 403


def test_blob_writer_uploads_in_blocks_with_size_and_md5(container, monkeypatch):
    monkeypatch.setattr(storage, "BLOCK_SIZE", 1000)
    blob = container.get_blob_client("big.bin")
    data = bytes(range(256)) * 30
    writer = storage.BlobWriter(blob, "application/octet-stream")

    for start in range(0, len(data), 333):
        writer.write(data[start:start + 333])
    assert not blob.exists()  # nothing visible before commit
    writer.close()

    assert blob.download_blob().readall() == data
    assert writer.size == len(data)
    assert writer.md5_base64 == base64.b64encode(hashlib.md5(data).digest()).decode()
    blocks = blob.get_block_list()[0]
    assert len(blocks) == 6  # 7,680 bytes in blocks of at least 1,000 (whole writes)
    assert all(block.size < 1000 + 333 for block in blocks)


def test_blob_reader_streams_lines_and_pins_the_etag(container):
    blob = container.get_blob_client("lines.jsonl")
    blob.upload_blob(b"".join(b'{"n": %d}\n' % n for n in range(5000)))
    etag = blob.get_blob_properties().etag

    with storage.open_reader(blob, etag) as reader:
        lines = list(reader)

    assert len(lines) == 5000 and lines[-1] == b'{"n": 4999}\n'
    blob.upload_blob(b"changed", overwrite=True)
    from recobatch.errors import InputError
    with pytest.raises(InputError):
        storage.open_reader(blob, etag)


def test_ensure_current_passes_for_the_current_etag_only(container):
    blob = container.get_blob_client("v/in.json")
    old = str(blob.upload_blob(b"v1")["etag"])
    new = str(blob.upload_blob(b"v2", overwrite=True)["etag"]).strip('"')

    storage.ensure_current(blob, new)
    with pytest.raises(SupersededError) as raised:
        storage.ensure_current(blob, old)

    assert str(raised.value).startswith("Superseded: input blob v/in.json was replaced")
    assert blob.download_blob().readall() == b"v2"


def test_aborted_blob_writer_leaves_the_blob_as_it_was(container):
    blob = container.get_blob_client("v/out.json")
    blob.upload_blob(b"kept")
    writer = storage.BlobWriter(blob, "application/json")
    writer.write(b"x" * (storage.BLOCK_SIZE + 10))  # one block staged, the rest buffered

    writer.abort()
    del writer

    assert blob.download_blob().readall() == b"kept"


class _Recorded:
    """Stands in for an azure-identity credential (no managed identity endpoint runs here)."""

    def __init__(self, *args, **kwargs):
        self.kwargs = {"args": args, **kwargs} if args else kwargs

    def get_token(self, *scopes, **kwargs):
        raise AssertionError("no token is requested when the client is made")


@pytest.mark.parametrize(("extra", "kind", "kwargs"), [
    ({"AzureWebJobsStorage__credential": "managedidentity",
      "AzureWebJobsStorage__clientId": "1111-client"},
     "ManagedIdentityCredential", {"client_id": "1111-client"}),
    ({"AzureWebJobsStorage__credential": "managedidentity"},
     "ManagedIdentityCredential", {"client_id": None}),
    ({}, "DefaultAzureCredential", {}),
    ({"AzureWebJobsStorage__tenantId": "tenant-1", "AzureWebJobsStorage__clientId": "sp-1",
      "AzureWebJobsStorage__clientSecret": "sp-secret"},
     "ClientSecretCredential", {"args": ("tenant-1", "sp-1", "sp-secret")}),
])
def test_identity_client_gets_the_credential_the_settings_name(monkeypatch, extra, kind, kwargs):
    import azure.identity

    from recobatch.settings import load_settings

    for name in ("ManagedIdentityCredential", "DefaultAzureCredential", "ClientSecretCredential"):
        monkeypatch.setattr(azure.identity, name, type(name, (_Recorded,), {}))
    settings = load_settings({"AzureWebJobsStorage__accountName": "acct",
                              "RECO_ENDPOINT": "http://127.0.0.1:1/recommendations/v4.0",
                              "RECO_SUBSCRIPTION_KEY": "k", "RECO_MODEL_ID": "m", **extra})

    client = storage._make_client(settings)

    assert client.url == "https://acct.blob.core.windows.net/"
    assert type(client.credential).__name__ == kind
    assert client.credential.kwargs == kwargs


def test_read_ahead_blob_reader_gives_the_bytes_in_order_and_fails_on_a_replaced_blob(
        container):
    import io

    from recobatch.errors import InputError

    blob = container.get_blob_client("ahead.bin")
    data = bytes(range(256)) * 4099  # 1,049,344 bytes: several ranges, a short last one
    blob.upload_blob(data)

    with io.BufferedReader(storage.ReadAheadBlobReader(blob, ahead=3,
                                                       range_size=100_000)) as reader:
        assert reader.read() == data

    reader = storage.ReadAheadBlobReader(blob, ahead=2, range_size=100_000)
    blob.upload_blob(b"changed" * 100_000, overwrite=True)
    with pytest.raises(InputError) as info:
        reader.read(10)
    assert "changed while it was read" in str(info.value)
    reader.close()
