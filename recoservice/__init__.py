"""recoservice: a self-hostable service compatible with the Recommendations API v4.0.

Models, catalog and usage import, SAR builds, item-to-item and user-to-item recommendations,
batch jobs and operations, all under ``/recommendations/v4.0``. Start it with
``python -m recoservice serve --port PORT --state-dir DIR --key KEY [--demo]``.
"""

from __future__ import annotations

API_PREFIX = "/recommendations/v4.0"
