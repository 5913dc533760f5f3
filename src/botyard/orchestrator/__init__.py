"""The orchestrator: the HTTP API, the job service behind it, and its maintenance jobs."""
