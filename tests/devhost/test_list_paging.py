"""The instance list pages like the Durable extension's HttpApiHandler: ``top`` is the page size
(100 by default), the next page's token comes back in the ``x-ms-continuation-token`` response
header and is sent back in the same request header."""

from __future__ import annotations

import uuid

import requests
from devhost_testkit import DevHost

TOKEN = "x-ms-continuation-token"


def _page(devhost: DevHost, token: str | None, **params) -> requests.Response:
    headers = {TOKEN: token} if token else {}
    return requests.get(f"{devhost.base}/durabletask/instances/", params=params,
                        headers=headers, timeout=10)


def test_pages_of_top_follow_the_continuation_token_to_every_instance(devhost: DevHost):
    prefix = "page-" + uuid.uuid4().hex[:8]
    started = {devhost.start("sequence", ["p"], instance_id=f"{prefix}-{i}") for i in range(5)}

    seen: list[str] = []
    token, pages = None, 0
    while True:
        resp = _page(devhost, token, top="2", instanceIdPrefix=prefix, showInput="false")
        assert resp.status_code == 200 and len(resp.json()) <= 2
        seen += [item["instanceId"] for item in resp.json()]
        pages += 1
        token = resp.headers.get(TOKEN)
        if not token:
            break

    assert pages == 3
    assert sorted(seen) == sorted(started)  # each once, none skipped


def test_without_top_a_page_holds_at_most_100(devhost: DevHost):
    prefix = "many-" + uuid.uuid4().hex[:8]
    for i in range(101):
        requests.post(f"{devhost.base}/durabletask/orchestrators/sequence/{prefix}-{i}",
                      json=["m"], timeout=10).raise_for_status()

    first = _page(devhost, None, instanceIdPrefix=prefix)
    second = _page(devhost, first.headers[TOKEN], instanceIdPrefix=prefix)

    assert len(first.json()) == 100 and len(second.json()) == 1
    assert not second.headers.get(TOKEN)


def test_a_token_that_devhost_never_issued_is_400(devhost: DevHost):
    assert _page(devhost, "not-a-token").status_code == 400
