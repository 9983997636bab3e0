"""Identity-based storage against a real Azurite in OAuth mode: a token credential, no account
key, user-delegation SAS.

Azurite runs with ``--oauth basic`` over HTTPS (a self-signed certificate made here). In basic
mode it checks a bearer token's lifetime, issuer and audience but not its signature, so the
credential below hands out a JWT built locally. It stands in for ``ManagedIdentityCredential``
(no managed identity endpoint runs here); everything else is the app's code path:
``AzureWebJobsStorage__blobServiceUri`` + ``__queueServiceUri`` + ``__tableServiceUri``,
``__credential=managedidentity``, ``__clientId`` → ``storage.service_client`` → bearer requests
→ ``get_user_delegation_key`` → user-delegation SAS that a key-less client uses.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

from devhost.services import AZURITE_ACCOUNT, Service, _spawn, azurite_binary, free_port
from devhost.services import wait_for_port as _wait_for_port
from recobatch import storage
from recobatch.settings import load_settings

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def azurite_oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    workdir = tmp_path_factory.mktemp("azurite-oauth")
    cert, key = _self_signed(workdir)
    blob, queue, table = free_port(), free_port(), free_port()
    cmd = [azurite_binary(), "--silent", "--location", str(workdir / "data"),
           "--blobHost", "127.0.0.1", "--blobPort", str(blob),
           "--queueHost", "127.0.0.1", "--queuePort", str(queue),
           "--tableHost", "127.0.0.1", "--tablePort", str(table),
           "--skipApiVersionCheck", "--loose", "--oauth", "basic",
           "--cert", str(cert), "--key", str(key)]
    svc = _spawn("azurite-oauth", cmd, workdir, port=blob)
    for port in (blob, queue, table):
        _wait_for_port(port, svc.proc, 60, svc.log)
    svc.extra["ports"] = {"blob": blob, "queue": queue, "table": table}
    yield svc, cert
    svc.stop()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class LocalJwtCredential:
    """A managed identity's token as Azurite's basic OAuth mode accepts it (unsigned)."""

    made: list[LocalJwtCredential] = []

    def __init__(self, client_id: str | None = None, **_kwargs: object) -> None:
        self.client_id = client_id
        self.scopes: list[str] = []
        LocalJwtCredential.made.append(self)

    def get_token(self, *scopes: str, **_kwargs: object) -> AccessToken:
        self.scopes.extend(scopes)
        now = int(time.time())
        claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/",
                  "iat": now - 60, "nbf": now - 60, "exp": now + 3600, "tid": TENANT,
                  # a user-assigned identity's token carries its ids
                  "oid": self.client_id or "system-assigned", "appid": self.client_id}
        return AccessToken(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.x", now + 3600)


@pytest.fixture
def identity_settings(azurite_oauth, monkeypatch):
    svc, cert = azurite_oauth
    import azure.identity

    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", LocalJwtCredential)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust Azurite's self-signed cert
    LocalJwtCredential.made.clear()
    ports = svc.extra["ports"]
    settings = load_settings({
        **{f"AzureWebJobsStorage__{kind}ServiceUri":
           f"https://127.0.0.1:{port}/{AZURITE_ACCOUNT}" for kind, port in ports.items()},
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "5e1ec7ed-0000-4000-8000-00000000c1d0",
        "RECO_ENDPOINT": "http://127.0.0.1:1/recommendations/v4.0",
        "RECO_SUBSCRIPTION_KEY": "k", "RECO_MODEL_ID": "m", "JOB_TIMEOUT_MINUTES": "60"})
    return settings


def test_identity_client_works_with_bearer_tokens_of_the_user_assigned_identity(
        identity_settings):
    service = storage._make_client(identity_settings)
    container = storage.ensure_container(service, f"id{uuid.uuid4().hex[:12]}")

    container.upload_blob("in.json", b'{"requests": []}')

    assert container.get_blob_client("in.json").download_blob().readall() == \
        b'{"requests": []}'
    assert [c.client_id for c in LocalJwtCredential.made] == [
        "5e1ec7ed-0000-4000-8000-00000000c1d0"]
    assert "https://storage.azure.com/.default" in LocalJwtCredential.made[0].scopes
    assert getattr(service.credential, "account_key", None) is None  # no key anywhere


def _azurite_version() -> tuple[int, ...]:
    for folder in Path(azurite_binary()).resolve().parents:
        package = folder / "package.json"
        if package.exists() and json.loads(package.read_text()).get("name") == "azurite":
            return tuple(int(p) for p in json.loads(package.read_text())["version"].split("."))
    raise AssertionError("Azurite's package.json not found")


def _sdk_sas_version() -> str:
    from azure.storage.blob._shared.constants import X_MS_VERSION

    return str(X_MS_VERSION)


def _locations(settings):
    service = storage._make_client(settings)
    container = storage.ensure_container(service, f"id{uuid.uuid4().hex[:12]}")
    blob = container.get_blob_client("a/in.json")
    blob.upload_blob(b"input")
    container.get_blob_client("a/other.json").upload_blob(b"other")
    expiry = storage.sas_expiry(settings.job_timeout_minutes)
    read = storage.sas_location(blob, "r", expiry, service)
    write = storage.sas_location(container.get_blob_client("a/out.json"), "cw", expiry, service)
    return container, read, write


def test_sas_in_identity_mode_are_user_delegation_sas_of_the_identity(identity_settings):
    _container, read, write = _locations(identity_settings)

    query = parse_qs(read.sas_token.lstrip("?"))
    # signed with a user-delegation key Azurite issued to this identity (skoid/sktid), no
    # account key; https only; one blob
    assert query["skoid"] == ["5e1ec7ed-0000-4000-8000-00000000c1d0"]
    assert query["sktid"] == [TENANT] and query["spr"] == ["https"] and query["sr"] == ["b"]
    assert query["sp"] == ["r"] and parse_qs(write.sas_token.lstrip("?"))["sp"] == ["cw"]


def test_user_delegation_sas_work_for_their_blob_only(identity_settings):
    # azure-storage-blob signs SAS of version 2026-04-06 and later with two more fields
    # (signed request headers and query parameters); Azurite checks them from 3.37.0 on.
    if _sdk_sas_version() >= "2026-04-06" and _azurite_version() < (3, 37, 0):
        pytest.fail(f"Azurite {'.'.join(map(str, _azurite_version()))} cannot check "
                    f"user-delegation SAS of version {_sdk_sas_version()} (needs 3.37.0)")
    container, read, write = _locations(identity_settings)

    def keyless(location: storage.BlobLocation, name: str | None = None) -> BlobClient:
        relative = location.relative_location if name is None else \
            location.relative_location.rsplit("/", 1)[0] + "/" + name
        return BlobClient.from_blob_url(location.base_location + relative + location.sas_token,
                                        retry_total=0)

    assert keyless(read).download_blob().readall() == b"input"
    keyless(write).upload_blob(b"written", overwrite=True)
    assert container.get_blob_client("a/out.json").download_blob().readall() == b"written"
    for denied in (lambda: keyless(read).upload_blob(b"x", overwrite=True),
                   lambda: keyless(read, "other.json").download_blob().readall(),
                   lambda: keyless(write).download_blob().readall()):
        with pytest.raises(HttpResponseError) as refused:
            denied()
        assert refused.value.status_code == 403


def test_the_cache_table_uses_the_identitys_table_endpoint_and_bearer_tokens(identity_settings):
    from recobatch import cache

    service = cache._make_service(identity_settings)
    table = cache.table_client(service, "id" + uuid.uuid4().hex[:12], create=True)
    report = cache.fill(table, [{"SeedItems": ["B", "A"]}],
                        [{"recommendations": [{"items": [{"itemId": "X"}], "rating": 0.5}]}],
                        partition="m.active", api_name="ItemRecommend", instance_id="rb-i",
                        metadata=False)

    assert report.as_dict() == {"rows": 1, "failed": 0}
    row = cache.lookup(table, "m.active", cache.item_key(["A", "B"]))
    assert row is not None and cache.answer(row)["recommendedItems"][0]["items"] == [{"id": "X"}]
    assert service.url.startswith(identity_settings.storage_identity.table_service_uri)
    assert LocalJwtCredential.made and "https://storage.azure.com/.default" in \
        LocalJwtCredential.made[0].scopes
