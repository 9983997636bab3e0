"""Helpers for the recoservice route tests: a tiny, hand-checkable dataset and polling."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

# Six items, six users, one timestamp (no decay). Co-occurrence (users who used both):
# A-B 3, A-C 1, B-C 1, C-D 2; occurrences A 3, B 3, C 3, D 2, E 1, F 0.
# Jaccard with supportThreshold 1: A-B 1.0, A-C 0.2, B-C 0.2, C-D 2/3.
TINY_CATALOG = (
    "ITEM-A,Alpha,Cat1,First item,color=red\n"
    "ITEM-B,Bravo,Cat1\n"
    "ITEM-C,Charlie,Cat2\n"
    "ITEM-D,Delta,Cat2\n"
    "ITEM-E,Echo,Cat3\n"
    "ITEM-F,Foxtrot,Cat3\n"
)
_PAIRS = {"u1": "AB", "u2": "AB", "u3": "ABC", "u4": "CD", "u5": "CD", "u6": "E"}
TINY_USAGE = "".join(f"{user},ITEM-{item},2025-06-01T10:00:00Z,Purchase\n"
                     for user, items in _PAIRS.items() for item in items)
TINY_SAR = {"supportThreshold": 1, "similarityFunction": "jaccard"}


@dataclass
class TinyModel:
    """A model on the shared service built from the tiny dataset."""

    id: str
    build_id: int
    url: str


def wait_operation(url: str, headers: dict[str, str], timeout: float = 60) -> dict:
    """Poll an operation until it is terminal; return its last body."""
    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(url, headers=headers, timeout=10).json()
        if body["status"] in ("Succeeded", "Failed", "Cancelled") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def create_model(reco, name: str = "tiny") -> str:
    resp = requests.post(f"{reco.base_url}/models", json={"modelName": name, "description": "t"},
                         headers=reco.headers(), timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def upload(reco, model_id: str, kind: str, text: str) -> requests.Response:
    return requests.post(f"{reco.base_url}/models/{model_id}/{kind}", data=text.encode(),
                         headers={**reco.headers(), "Content-Type": "application/octet-stream"},
                         timeout=60)


def build(reco, model_id: str, body: dict | None = None) -> tuple[requests.Response, dict]:
    """Start a build and wait for it; return the 202 response and the final operation."""
    body = body if body is not None else {"buildType": "sar",
                                          "buildParameters": {"sar": TINY_SAR}}
    resp = requests.post(f"{reco.base_url}/models/{model_id}/builds", json=body,
                         headers=reco.headers(), timeout=10)
    assert resp.status_code == 202, resp.text
    return resp, wait_operation(resp.headers["Operation-Location"], reco.headers())


