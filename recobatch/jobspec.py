"""The ``job`` object of a batch job submit body: effective settings, overrides, validation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from recobatch.errors import InputError
from recobatch.limits import bounded
from recobatch.settings import API_NAMES, OUTPUT_FORMATS, Settings

MAX_NUMBER_OF_RESULTS = 100


@dataclass(frozen=True)
class JobSettings:
    """What a batch job scores with (no secrets: safe in histories and markers).

    Attribute names follow Python; :meth:`to_dict` gives the camelCase v4 ``job`` object.
    """

    api_name: str
    model_id: str
    build_id: int | None = None
    number_of_results: int = 10
    include_metadata: bool = False
    minimal_score: float = 0.0
    output_format: str = "json"
    cache: bool | None = None  # the file's choice; None: the app's (on when a table is set)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobSettings:
        """The job settings the app settings define."""
        return cls(api_name=settings.reco_api_name, model_id=settings.reco_model_id,
                   build_id=settings.reco_build_id,
                   number_of_results=settings.reco_number_of_results,
                   include_metadata=settings.reco_include_metadata,
                   minimal_score=settings.reco_minimal_score,
                   output_format=settings.output_format)

    @classmethod
    def from_dict(cls, job: Mapping[str, Any]) -> JobSettings:
        """Rebuild from :meth:`to_dict` output (validated like overrides)."""
        if "apiName" not in job or "modelId" not in job:
            raise InputError("job must name apiName and modelId.")
        base = cls(api_name=str(job["apiName"]), model_id=str(job["modelId"]))
        return base.with_overrides(job)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> JobSettings:
        """Return a copy with the camelCase fields of ``overrides`` applied.

        Raises
        ------
        InputError
            Naming the field when a key is unknown or a value has the wrong type or range.
        """
        if overrides is None:
            return self
        if not isinstance(overrides, Mapping):
            raise InputError("job must be a JSON object.")
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in _FIELDS:
                raise InputError(f"job.{bounded(str(key), 60)} is not a known job setting "
                                 f"(known: {', '.join(_FIELDS)}).")
            attr, check = _FIELDS[key]
            changes[attr] = check(key, value)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The effective job settings (markers, histories): :meth:`submit_body`,
        ``outputFormat`` and, when the file or caller chose, ``cache``."""
        body = {**self.submit_body(), "outputFormat": self.output_format}
        if self.cache is not None:
            body["cache"] = self.cache
        return body

    def submit_body(self) -> dict[str, Any]:
        """The v4 submit body's ``job`` object (``buildId`` left out when unset)."""
        body: dict[str, Any] = {"apiName": self.api_name, "modelId": self.model_id}
        if self.build_id is not None:
            body["buildId"] = self.build_id
        body.update(numberOfResults=self.number_of_results,
                    includeMetadata=self.include_metadata, minimalScore=self.minimal_score)
        return body


def _api_name(key: str, value: Any) -> str:
    if value not in API_NAMES:
        raise InputError(f"job.{key} must be one of {', '.join(API_NAMES)}.")
    return str(value)


def _model_id(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"job.{key} must be a non-empty string.")
    return value.strip()


def _build_id(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputError(f"job.{key} must be an integer.")
    try:
        return int(value)
    except ValueError:
        raise InputError(f"job.{key} must be an integer.") from None


def _number_of_results(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_NUMBER_OF_RESULTS:
        raise InputError(f"job.{key} must be an integer from 1 to {MAX_NUMBER_OF_RESULTS}.")
    return value


def _include_metadata(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"job.{key} must be true or false.")
    return value


def _minimal_score(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise InputError(f"job.{key} must be a finite number.")
    return float(value)


def _cache(key: str, value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise InputError(f"job.{key} must be true or false.")
    return value


def _output_format(key: str, value: Any) -> str:
    if value not in OUTPUT_FORMATS:
        raise InputError(f"job.{key} must be one of {', '.join(OUTPUT_FORMATS)}.")
    return str(value)


_FIELDS = {
    "apiName": ("api_name", _api_name),
    "modelId": ("model_id", _model_id),
    "buildId": ("build_id", _build_id),
    "numberOfResults": ("number_of_results", _number_of_results),
    "includeMetadata": ("include_metadata", _include_metadata),
    "minimalScore": ("minimal_score", _minimal_score),
    "outputFormat": ("output_format", _output_format),
    "cache": ("cache", _cache),
}
