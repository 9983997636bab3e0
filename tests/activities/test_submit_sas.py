"""submit_chunk's SAS tokens: minted once per chunk and reused on busy retries, and alive as
long as the chunk's job may run (JOB_TIMEOUT_MINUTES plus a margin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from act_helpers import prepare, seed_file, submit, upload, wait_operation

from activities.cancel_operation import run as cancel_operation
from recobatch import storage


@pytest.fixture
def prepared(containers, demo_items):
    upload(containers, "s.json", seed_file([{"SeedItems": demo_items[:2]}]))
    return prepare(containers, "s.json", "rb-sas")


@pytest.fixture
def minted(monkeypatch) -> list[storage.BlobLocation]:
    """Every SAS location ``storage.sas_location`` makes (the real function still runs)."""
    made: list[storage.BlobLocation] = []
    real = storage.sas_location

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(storage, "sas_location", spy)
    return made


def _expiry(location: storage.BlobLocation) -> datetime:
    value = parse_qs(location.sas_token.lstrip("?"))["se"][0]
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_busy_retries_reuse_the_first_attempts_tokens(reco, prepared, minted):
    reco.set_faults([{"target": "submit", "action": "status", "status": 429, "count": 2}])

    answers = [submit("rb-sas", "chunk-00001", prepared["job"]) for _ in range(3)]

    assert [a["accepted"] for a in answers] == [False, False, True]
    assert len(minted) == 3  # input, output, error: once, not once per attempt
    wait_operation(answers[-1]["operationId"])  # the subscription's one job slot is free again


def test_a_new_submit_after_acceptance_mints_afresh(reco, prepared, minted):
    reco.set_faults([{"target": "job", "action": "stuck"}])
    first = submit("rb-sas", "chunk-00001", prepared["job"])

    second = submit("rb-sas", "chunk-00001", prepared["job"])

    cancel_operation({"operationId": first["operationId"]})
    wait_operation(first["operationId"])

    assert first["accepted"] is True and second["accepted"] is False
    assert len(minted) == 6  # the accepted job's tokens are never handed out again


def test_output_token_lives_the_job_timeout_plus_a_margin(reco, prepared, minted, set_env):
    set_env("JOB_TIMEOUT_MINUTES", "120")
    before = datetime.now(UTC)

    answer = submit("rb-sas", "chunk-00001", prepared["job"])
    wait_operation(answer["operationId"])

    output = next(m for m in minted if m.relative_location.endswith(".out.json"))
    assert _expiry(output) >= before + timedelta(minutes=120) + storage.SAS_MARGIN \
        - timedelta(seconds=1)


def test_tokens_are_not_reused_past_the_first_attempts_deadline():
    reuse = storage.SasReuse()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    mint_calls: list[int] = []

    def mint(expiry: datetime) -> tuple:
        mint_calls.append(1)
        return (expiry,)

    first = reuse.get(("k",), 60, mint, now=start)
    within = reuse.get(("k",), 60, mint, now=start + timedelta(minutes=59))
    after = reuse.get(("k",), 60, mint, now=start + timedelta(minutes=61))

    assert first == within and len(mint_calls) == 2
    # a token minted later still covers a job accepted at the last moment of its chunk
    assert after[0] >= start + timedelta(minutes=61 + 60)
