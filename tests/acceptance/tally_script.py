"""A script automation whose side effect is done by a grandchild (see grandchild_automations)."""

import json
import os
from pathlib import Path

from grandchild_automations import start_writer, wait_for_line

payload = json.loads(Path(os.environ["BOTYARD_PAYLOAD_FILE"]).read_text())
line = f"{os.environ['BOTYARD_JOB_ID']} {os.environ['BOTYARD_ATTEMPT']}"
marker = Path(payload["marker_dir"], line.replace(" ", "-"))
marker.with_suffix(".job").write_text(str(os.getpid()))
start_writer(
    payload["tally"], line, payload["delay"], str(marker.with_suffix(".grandchild")), daemon=False
)
wait_for_line(payload["tally"], line, payload["delay"] + 20)
