"""The v4 batch output, encoded from pre-encoded pieces instead of per-result dicts.

A job's output is ``{"results": [<result>, ...]}`` with, per request::

    {"request": {"seedItems": [...]}, "recommendations": [
        {"items": [{"itemId": "...", "name": "...", "metadata": "..."}], "rating": 0.5,
         "reasoning": ["..."]}, ...]}

byte for byte what ``json.dumps(result, ensure_ascii=False)`` writes (the tests compare
against that). Building and dumping ~10 dicts per request was most of a job's time; here each
item's ``{"items": [...], "rating": `` head and the escaped reasoning pieces are encoded once
per build (names and reasoning repeat across requests), and a result is a join of strings.
JSON escaping works character by character, so escaped pieces concatenate into the escaping
of the whole reasoning sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recoservice.scoring import (
    NONE_KNOWN,
    SEVERAL,
    SEVERAL_SEEDS,
    USER,
    USER_REASON,
    LoadedBuild,
    RawScores,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _escaped(text: str) -> str:
    """``text`` escaped for the inside of a JSON string (no quotes)."""
    return _dumps(text)[1:-1]


@dataclass
class ItemPieces:
    """Pre-encoded pieces of one build's items (one set per ``include_metadata``)."""

    head: list[str]       # '{"items": [{"itemId": .., "name": .., "metadata": ..}], "rating": '
    quoted: list[str]     # escaped " '<name>'" (end of a "People who like ..." reasoning)
    popular: list[str]    # escaped "'<name>' is popular"
    because: dict[int, str]  # escaped "People who like '<seed name>' also like", by seed

    @classmethod
    def of(cls, built: LoadedBuild, include_metadata: bool) -> ItemPieces:
        """The pieces of ``built`` (cached on it: built once per build and flag)."""
        key = ("batch_output", include_metadata)
        pieces = built.encoded.get(key)
        if pieces is None:
            head = [
                f'{{"items": [{{"itemId": {_dumps(item)}, "name": {_dumps(name)}, '
                f'"metadata": {_dumps((meta or "") if include_metadata else "")}}}], '
                '"rating": '
                for item, name, meta in zip(built.item_ids, built.names, built.metadata,
                                            strict=True)]
            pieces = cls(head, [_escaped(q) for q in built.quoted],
                         [_escaped(p) for p in built.popular_reason], {})
            built.encoded[key] = pieces
        return pieces

    def because_of(self, built: LoadedBuild, why: int) -> str:
        """The escaped reasoning start for a request's ``reason`` code."""
        if why == SEVERAL:
            return _SEVERAL
        if why == USER:
            return _USER
        text = self.because.get(why)
        if text is None:
            text = self.because[why] = _escaped(f"People who like '{built.names[why]}' also like")
        return text


_SEVERAL = _escaped(SEVERAL_SEEDS)
_USER = _escaped(USER_REASON)


def encode_results(raw: RawScores | None, rows: Sequence[int], echoes: Sequence[Any],
                   include_metadata: bool) -> list[str]:
    """The encoded result of every request, in order.

    Parameters
    ----------
    raw
        Scores of the scored requests (``None`` when none was scored).
    rows
        For each request, its row in ``raw``, or -1 when it was not scored (no
        recommendations).
    echoes
        For each request, the ``request`` object the output echoes (``{"seedItems": [...]}``
        or ``{"userId": ...}``).
    include_metadata
        Whether items carry their catalog metadata.
    """
    if raw is None:
        return [f'{{"request": {_dumps(echo)}, "recommendations": []}}' for echo in echoes]
    built = raw.built
    pieces = ItemPieces.of(built, include_metadata)
    head, quoted, popular = pieces.head, pieces.quoted, pieces.popular
    out = []
    for row, echo in zip(rows, echoes, strict=True):
        start = '{"request": ' + _echo(echo) + ', "recommendations": ['
        why = raw.reason[row] if row >= 0 else NONE_KNOWN
        if why == NONE_KNOWN:
            out.append(start + "]}")
            continue
        because = pieces.because_of(built, why)
        # Padding (-1) only follows the results, so filtering it equals stopping there.
        recs = ", ".join([
            f'{head[item]}{rating!r}, "reasoning": ["'
            f'{popular[item] if backfilled else because + quoted[item]}"]}}'
            for item, rating, backfilled in zip(raw.idx[row], raw.score[row], raw.fill[row],
                                                strict=True) if item >= 0])
        out.append(start + recs + "]}")
    return out


# What json.dumps(ensure_ascii=False) escapes in a string; anything else is copied as is.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _echo(echo: Any) -> str:
    """``json.dumps(echo, ensure_ascii=False)``, fast for the usual ``{"seedItems": [str]}``."""
    seeds = echo.get("seedItems") if len(echo) == 1 else None
    if type(seeds) is list and all(type(s) is str and not _NEEDS_ESCAPE.search(s)
                                   for s in seeds):
        return '{"seedItems": [' + ", ".join(['"' + s + '"' for s in seeds]) + "]}"
    return _dumps(echo)
