"""The one blueprint the blob trigger and the HTTP API register on (``triggers.bp``)."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
