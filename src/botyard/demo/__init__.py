"""The bundled demo: automations that show retries, needs_review and business errors."""
