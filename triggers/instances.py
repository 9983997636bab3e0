"""Every instance of the task hub, page by page, from the Durable management API.

``DurableOrchestrationClient.get_status_all`` asks for one page and drops the continuation
token, and the host pages its instance list (``top``, 100 by default): past 100 instances
(runs and their chunk sub-orchestrations) runs went missing from ``GET /api/batches``. This
follows the token the way the extension's HttpApiHandler hands it out: the
``x-ms-continuation-token`` response header, sent back as the same request header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import azure.durable_functions as df
from azure.durable_functions.models.DurableOrchestrationStatus import (
    DurableOrchestrationStatus as Status,
)

CONTINUATION_HEADER = "x-ms-continuation-token"
PAGE_SIZE = 100
MAX_PAGES = 10_000  # a host that kept handing out tokens must not loop forever
TIMEOUT = aiohttp.ClientTimeout(total=30)


class ManagementError(Exception):
    """The management API answered something other than a page of instances."""


def _rpc_base_url(client: df.DurableOrchestrationClient) -> str:
    # The client binding's rpcBaseUrl (the host's local, loopback-only management endpoint);
    # the SDK keeps it on its bindings object and has no public accessor for it.
    bindings = client._orchestration_bindings  # noqa: SLF001
    return str(bindings.rpc_base_url).rstrip("/") + "/"


async def all_instances(client: df.DurableOrchestrationClient,
                        page_size: int = PAGE_SIZE) -> AsyncIterator[Status]:
    """Yield the status of every instance (inputs left out), following continuation tokens.

    Raises
    ------
    ManagementError
        On an answer other than 200 with a JSON list.
    """
    url = f"{_rpc_base_url(client)}instances/"
    params = {"top": str(page_size), "showInput": "false"}
    token: str | None = None
    seen_tokens: set[str] = set()
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for _ in range(MAX_PAGES):
            headers = {CONTINUATION_HEADER: token} if token else {}
            async with session.get(url, params=params, headers=headers) as resp:
                if resp.status != 200:
                    raise ManagementError(f"listing instances answered {resp.status}")
                page: Any = await resp.json(content_type=None)
                token = resp.headers.get(CONTINUATION_HEADER)
            if not isinstance(page, list):
                raise ManagementError("listing instances answered no JSON list")
            for item in page:
                yield Status.from_json(item)
            if not token or token == "null" or token in seen_tokens:
                return
            seen_tokens.add(token)
