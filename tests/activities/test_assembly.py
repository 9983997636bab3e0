"""results.json from blocks staged per chunk: the same bytes as one merge pass, on Azurite.

Chunk outputs are written straight into the work container (the upstream's side of the
contract), so the tests choose their shapes: dicts, non-dict results, unicode, floats, empty
and failed chunks, outputs spanning many blocks.
"""

from __future__ import annotations

import io
import json
import random

import pytest

from activities.merge_results import run as merge_results
from activities.verify_output import run as verify_output
from recobatch import assembly, naming
from recobatch.chunking import ChunkOutput, merge_outputs
from recobatch.errors import SupersededError
from tests.activities.act_helpers import upload

INSTANCE = "rb-assembly"


def _result(rng: random.Random, n: int) -> object:
    kind = rng.random()
    if kind < 0.1:
        return [n, "not a dict"]
    if kind < 0.15:
        return {}
    return {"request": {"seedItems": [f"item-{n}", "é✓"]},
            "recommendations": [{"items": [{"itemId": f"r{j}", "name": "Naïve \"quoted\""}],
                                 "rating": rng.random(), "reasoning": ["x" * rng.randint(0, 50)]}
                                for j in range(rng.randint(0, 4))]}


def _write_chunks(containers, statuses: list[str],
                  seed: int = 3) -> tuple[list[ChunkOutput], list[tuple[int, str]]]:
    """Index, output and error blobs of each chunk, and the rejected requests between them."""
    rng = random.Random(seed)
    work = containers["work"]
    if not work.exists():
        work.create_container()
    chunks, index, rejected = [], 0, []
    for number, status in enumerate(statuses, start=1):
        gap = rng.randint(0, 2)  # requests rejected by validation before this chunk's
        rejected.extend(range(index, index + gap))
        index += gap
        size = rng.choice([0, 1, 7, 300])
        indices = list(range(index, index + size))
        index += size
        name = naming.chunk_name(number)
        output = json.dumps({"results": [_result(rng, i) for i in indices]},
                            ensure_ascii=rng.random() < 0.5).encode()
        errors = f"{max(size - 1, 0)}: item not in catalog\n" if size else ""
        work.upload_blob(naming.chunk_index_blob(INSTANCE, name), json.dumps(indices))
        work.upload_blob(naming.chunk_output_blob(INSTANCE, name), output)
        work.upload_blob(naming.chunk_error_blob(INSTANCE, name), errors.encode())
        chunks.append(ChunkOutput(name=name, indices=indices, status=status, output=output,
                                  error_text=errors))
    rejected.append(index)  # one after the last chunk too
    work.upload_blob(naming.rejected_blob(INSTANCE), "\n".join(
        json.dumps({"index": i, "message": f"request {i}: no SeedItems"}) for i in rejected))
    return chunks, [(i, f"request {i}: no SeedItems") for i in rejected]


def _reference(written: tuple[list[ChunkOutput], list[tuple[int, str]]]) -> tuple[bytes, bytes]:
    """What one merge pass over the same outputs writes."""
    results, errors = io.BytesIO(), io.BytesIO()
    merge_outputs(*written, results, errors)
    return results.getvalue(), errors.getvalue()


def _merge(containers, etag: str, chunks: list[ChunkOutput], parts: dict) -> dict:
    return merge_results({"instanceId": INSTANCE, "container": containers["input"].container_name,
                          "inputName": "in.json", "etag": etag,
                          "chunks": [{"name": c.name, "status": c.status,
                                      **({"part": parts[c.name]} if c.name in parts else {})}
                                     for c in chunks]})


def _verify_all(chunks: list[ChunkOutput]) -> dict:
    parts = {}
    for chunk in chunks:
        if chunk.status == "Succeeded":
            found = verify_output({"instanceId": INSTANCE, "chunk": chunk.name,
                                   "inputName": "in.json"})
            assert found["valid"] is True, found
            parts[chunk.name] = found["part"]
    return parts


def _outputs(containers) -> tuple[bytes, bytes]:
    out = containers["output"]
    return (out.get_blob_client("in.json/results.json").download_blob().readall(),
            out.get_blob_client("in.json/errors.txt").download_blob().readall())


STATUSES = [
    ["Succeeded"] * 5,
    ["Failed", "Succeeded", "Cancelled", "Succeeded", "TimedOut"],
    ["Failed", "Failed"],
    ["Succeeded"],
]


@pytest.mark.parametrize("statuses", STATUSES, ids=lambda s: "-".join(x[0] for x in s))
def test_parts_staged_by_verify_commit_to_the_bytes_of_one_merge_pass(containers, statuses):
    etag = upload(containers, "in.json", b'{"requests": []}')
    written = _write_chunks(containers, statuses)
    chunks = written[0]
    expected_results, expected_errors = _reference(written)

    merged = _merge(containers, etag, chunks, _verify_all(chunks))

    results, errors = _outputs(containers)
    assert results == expected_results
    assert errors == expected_errors
    assert merged["results"]["size"] == len(results)
    assert merged["counts"]["results"] == sum(len(c.indices) for c in chunks
                                              if c.status == "Succeeded")


def test_small_blocks_split_a_part_and_still_join_exactly(containers, monkeypatch):
    monkeypatch.setattr(assembly, "BLOCK_BYTES", 1000)
    etag = upload(containers, "in.json", b'{"requests": []}')
    written = _write_chunks(containers, ["Succeeded"] * 4, seed=11)
    chunks = written[0]

    parts = _verify_all(chunks)
    merged = _merge(containers, etag, chunks, parts)

    assert max(p["blocks"] for p in parts.values()) > 5
    assert _outputs(containers)[0] == _reference(written)[0]
    assert merged["results"]["parts"] == 4


def test_chunks_not_staged_by_verify_are_staged_by_the_merge(containers):
    etag = upload(containers, "in.json", b'{"requests": []}')
    written = _write_chunks(containers, ["Succeeded", "Failed", "Succeeded"], seed=5)
    chunks = written[0]

    _merge(containers, etag, chunks, parts={})

    assert _outputs(containers) == _reference(written)


def test_parts_dropped_by_another_writers_commit_are_staged_again(containers, monkeypatch):
    missing = []
    commit = assembly.commit_results

    def spy(*args, **kwargs):
        try:
            return commit(*args, **kwargs)
        except assembly.MissingBlocks as exc:
            missing.append(exc)
            raise

    monkeypatch.setattr(assembly, "commit_results", spy)
    etag = upload(containers, "in.json", b'{"requests": []}')
    written = _write_chunks(containers, ["Succeeded"] * 3, seed=7)
    chunks = written[0]
    parts = _verify_all(chunks)
    # Another run commits the same blob: every uncommitted block of ours is dropped.
    other = containers["output"].get_blob_client("in.json/results.json")
    other.stage_block(assembly.block_id("0123456789", "c00001", 0), b"someone else")
    other.commit_block_list([assembly.block_id("0123456789", "c00001", 0)])

    _merge(containers, etag, chunks, parts)

    assert len(missing) == 1  # the first commit found its parts gone
    assert _outputs(containers)[0] == _reference(written)[0]


def test_a_superseded_run_commits_nothing_and_leaves_the_newer_results(containers):
    etag = upload(containers, "in.json", b'{"requests": []}')
    written = _write_chunks(containers, ["Succeeded"] * 2, seed=9)
    chunks = written[0]
    parts = _verify_all(chunks)
    newer = containers["output"].get_blob_client("in.json/results.json")
    newer.upload_blob(b'{"results":["newer"]}', overwrite=True)
    upload(containers, "in.json", b'{"requests": [{"SeedItems": ["x"]}]}')  # a new version

    with pytest.raises(SupersededError):
        _merge(containers, etag, chunks, parts)

    assert newer.download_blob().readall() == b'{"results":["newer"]}'
