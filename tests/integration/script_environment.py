"""A script automation that reports its environment's names and its own credential."""

import json
import os
from pathlib import Path

Path(os.environ["BOTYARD_RESULT_FILE"]).write_text(
    json.dumps({"names": sorted(os.environ), "credential": os.environ.get("BOTYARD_JOB_TOKEN")})
)
