"""The starters: the blob trigger, the HTTP API and its status page, all on :data:`bp`."""

from __future__ import annotations

from triggers.blob_start import start_batch_from_blob
from triggers.blueprint import bp
from triggers.http_batches import get_batch, list_batches, start_batch
from triggers.http_cancel import cancel_batch
from triggers.http_recommendations import get_recommendations
from triggers.http_rerun import rerun_batch
from triggers.http_ui import status_page

__all__ = ["bp", "start_batch_from_blob", "start_batch", "get_batch", "list_batches",
           "cancel_batch", "rerun_batch", "status_page", "get_recommendations"]
