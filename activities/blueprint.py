"""The one Durable blueprint every activity registers on (exported as ``activities.bp``)."""

from __future__ import annotations

import azure.durable_functions as df

bp = df.Blueprint()
