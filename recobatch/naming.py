"""Every name recobatch gives to a run, a blob or a sub-orchestration (one place each).

Work blobs live in ``BATCH_WORK_CONTAINER`` under ``<instanceId>/``; outputs live in
``BATCH_OUTPUT_CONTAINER`` under ``<input name>/`` (extension kept: ``report.json/``). Chunks
are numbered from 1 and named ``chunk-00001``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from recobatch.limits import MAX_BLOB_NAME_CHARS

INSTANCE_PREFIX = "rb-"
RESULTS_NAME = "results.json"
ERRORS_NAME = "errors.txt"
SUCCESS_MARKER = "_SUCCESS"
FAILED_MARKER = "_FAILED"
REJECTED_NAME = "rejected.jsonl"
CANCEL_FLAG = "_CANCEL"
PREPARED_NAME = "prepared.json"

_CHUNK_RE = re.compile(r"^chunk-(\d{5,})$")


def instance_id(container: str, name: str, etag: str) -> str:
    """Return the run's instance id: the same blob version always gives the same id.

    Parameters
    ----------
    container, name : str
        Where the requests file is.
    etag : str
        The blob's ETag, with or without its quotes.
    """
    bare_etag = etag.strip('"')
    digest = hashlib.sha256(f"{container}/{name}@{bare_etag}".encode()).hexdigest()
    return INSTANCE_PREFIX + digest[:32]


def blob_name_problem(name: object) -> str | None:
    """Why ``name`` is not a canonical blob name, or ``None`` when it is.

    Canonical: 1 to 1024 characters, NFC, no control characters or backslashes, no leading
    or trailing whitespace, and ``/``-separated segments that are neither empty nor ``.`` or
    ``..`` and do not end with a dot. Storage would keep ``a//b.json`` or ``a/./b.json`` as
    written while URLs, tools and readers resolve them to another name (and the output folder
    is named after the input).
    """
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > MAX_BLOB_NAME_CHARS:
        return f"is longer than {MAX_BLOB_NAME_CHARS} characters"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in name) or "\\" in name:
        return "must not contain control characters or backslashes"
    if name != name.strip():
        return "must not start or end with whitespace"
    if unicodedata.normalize("NFC", name) != name:
        return "must be in Unicode normal form C"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return "must not have empty, '.' or '..' path segments (or a leading/trailing /)"
        if segment.endswith("."):
            return "must not have a path segment ending with a dot"
    return None


def rerun_id(earlier: str) -> str:
    """The instance id of the re-run of run ``earlier``: one re-run per failed run (asking
    twice finds the same run); a re-run that fails again is re-run under its own id."""
    digest = hashlib.sha256(f"rerun:{earlier}".encode()).hexdigest()
    return INSTANCE_PREFIX + digest[:32]


def chunk_name(chunk: int | str | dict) -> str:
    """Return ``chunk-00001`` for chunk 1, accepting a number, a name or ``{"name": ...}``."""
    if isinstance(chunk, dict):
        chunk = chunk["name"]
    if isinstance(chunk, bool):
        raise ValueError(f"not a chunk: {chunk!r}")
    if isinstance(chunk, int):
        if chunk < 1:
            raise ValueError(f"chunk numbers start at 1, got {chunk}")
        return f"chunk-{chunk:05d}"
    if isinstance(chunk, str) and _CHUNK_RE.match(chunk):
        return chunk
    raise ValueError(f"not a chunk name: {chunk!r}")


def chunk_number(chunk: int | str | dict) -> int:
    """Return the 1-based number of a chunk."""
    return int(chunk_name(chunk).split("-", 1)[1])


def work_prefix(instance: str) -> str:
    """Folder of a run's work blobs in the work container."""
    return f"{instance}/"


def chunk_input_blob(instance: str, chunk: int | str | dict) -> str:
    """Chunk input in the seed format (what the batch job reads)."""
    return f"{instance}/{chunk_name(chunk)}.json"


def chunk_index_blob(instance: str, chunk: int | str | dict) -> str:
    """JSON list of the original request index of each request in the chunk."""
    return f"{instance}/{chunk_name(chunk)}.index.json"


def chunk_output_blob(instance: str, chunk: int | str | dict) -> str:
    """Where the batch job writes its output."""
    return f"{instance}/{chunk_name(chunk)}.out.json"


def chunk_error_blob(instance: str, chunk: int | str | dict) -> str:
    """Where the batch job writes its request-level errors."""
    return f"{instance}/{chunk_name(chunk)}.err.txt"


def rejected_blob(instance: str) -> str:
    """Requests rejected by validation, one ``{"index", "message"}`` JSON object a line."""
    return f"{instance}/{REJECTED_NAME}"


def prepared_blob(work: str) -> str:
    """What prepare found (``prepare_batch``'s output: chunks, counts, effective job), kept
    so a re-run can reuse the chunks without reading the input again."""
    return f"{work}/{PREPARED_NAME}"


def cancel_blob(instance: str) -> str:
    """Flag blob whose presence means "cancel this run"."""
    return f"{instance}/{CANCEL_FLAG}"


def chunk_orchestration_id(instance: str, chunk: int | str | dict) -> str:
    """Instance id of a chunk's sub-orchestration."""
    return f"{instance}:{chunk_name(chunk)}"


def output_prefix(input_name: str) -> str:
    """Output folder of a run: the input blob's whole name, plus ``/`` (``report.json/``).

    The extension stays: ``report.json``, ``report.jsonl`` and ``report`` are three inputs
    with three runs, and each owns its folder (one folder would let a run overwrite another
    input's results and delete its marker).
    """
    return f"{input_name}/"


RESULTS_NAMES = {"json": RESULTS_NAME, "jsonl": "results.jsonl", "csv": "results.csv"}


def results_blob(input_name: str, output_format: str = "json") -> str:
    """Merged results of a run in ``output_format`` (``results.json``, ``.jsonl``, ``.csv``)."""
    return output_prefix(input_name) + RESULTS_NAMES[output_format]


def errors_blob(input_name: str) -> str:
    """Request-level errors of a run, in original request numbering."""
    return output_prefix(input_name) + ERRORS_NAME


def success_marker_blob(input_name: str) -> str:
    """Marker written last when a run succeeded."""
    return output_prefix(input_name) + SUCCESS_MARKER


def failed_marker_blob(input_name: str) -> str:
    """Marker written last when a run failed."""
    return output_prefix(input_name) + FAILED_MARKER
