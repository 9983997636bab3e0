"""Activity ``submit_chunk``: submit one chunk as a batch job.

Input ``{instanceId, chunk, job, workId?}`` (``workId``: whose work folder holds the chunk,
the run's own when absent; a re-run submits the earlier run's chunk blobs); output
``{accepted: true, operationId, batchId}`` or, when the service is busy (409, 429; also 503),
``{accepted: false, retryAfterSeconds, reason}``.
The SAS tokens are made here, at a chunk's first submit, reused by its busy retries until one
is accepted (in this process's memory), and never returned or logged.
"""

from __future__ import annotations

from datetime import datetime

from activities._payload import optional, required
from activities.blueprint import bp
from recobatch import naming, storage
from recobatch.client import client_for
from recobatch.errors import BusyError, TransientError
from recobatch.jobspec import JobSettings
from recobatch.settings import get_settings

NAME = "submit_chunk"
# Busy retries of a chunk reuse its first attempt's tokens (see recobatch.storage.SasReuse).
_TOKENS = storage.SasReuse()


def run(payload: dict) -> dict:
    """Do the work of ``submit_chunk`` (plain, no Functions host needed)."""
    instance = optional(payload, NAME, "workId", str) or required(payload, NAME, "instanceId")
    chunk = naming.chunk_name(required(payload, NAME, "chunk", (str, int, dict)))
    job = JobSettings.from_dict(required(payload, NAME, "job", dict)).submit_body()
    settings = get_settings()
    service = storage.service_client(settings)
    work = service.get_container_client(settings.work_container)
    input_blob = work.get_blob_client(naming.chunk_input_blob(instance, chunk))
    output_blob = work.get_blob_client(naming.chunk_output_blob(instance, chunk))
    error_blob = work.get_blob_client(naming.chunk_error_blob(instance, chunk))
    # An output left by an earlier attempt must not pass for this job's output.
    for stale in (output_blob, error_blob):
        storage.delete_if_exists(stale)
    client = client_for(settings.reco_endpoint, settings.reco_subscription_key)

    def mint(expiry: datetime) -> tuple[storage.BlobLocation, ...]:
        return (storage.sas_location(input_blob, "r", expiry, service),
                storage.sas_location(output_blob, "cw", expiry, service),
                storage.sas_location(error_blob, "cw", expiry, service))

    key = (input_blob.url, output_blob.url, error_blob.url)
    locations = _TOKENS.get(key, settings.job_timeout_minutes, mint)
    try:
        submission = client.submit_batch(*locations, job)
    except (BusyError, TransientError) as exc:
        if isinstance(exc, BusyError) or exc.status == 503:
            retry = getattr(exc, "retry_after", None)
            return {"accepted": False,
                    "retryAfterSeconds": retry if retry is not None
                    else settings.poll_initial_seconds,
                    "reason": str(exc)}
        raise
    _TOKENS.forget(key)
    return {"accepted": True, "operationId": submission.operation_id,
            "batchId": submission.batch_id}


@bp.activity_trigger(input_name="payload")
def submit_chunk(payload: dict) -> dict:
    """Registered activity: calls :func:`run`."""
    return run(payload)
