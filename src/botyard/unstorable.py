"""The characters neither store keeps in text, for the API and the store alike.

PostgreSQL refuses NUL (U+0000) in ``text`` and ``jsonb``; a lone UTF-16 surrogate (half of an
emoji, as JavaScript sends a string cut inside one) is stored by SQLite, but no answer holding it
can be encoded. The API refuses both (``orchestrator.input_rules``); the store replaces them in
what a job reports about itself (``store.tables.Reported``, ``store.engine``).
"""

from __future__ import annotations

import re

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
