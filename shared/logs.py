"""Logging setup: human-readable on a terminal, JSON lines in a cluster.

JSON records carry ``job`` and ``segment`` when the call site passes them
(``log.info(..., extra={"job": ..., "segment": ...})``), so one segment can
be followed from submit to storage across processes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from shared.errors import ConfigError
from shared.settings import Settings, load_settings

_CONTEXT_FIELDS = ("job", "segment", "key", "status", "bucket", "worker", "batch")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(
    level: str | None = None, json_logs: bool | None = None, settings: Settings | None = None
) -> None:
    """Set up the root logger; what the arguments leave unset comes from settings (VOXFARM_LOG_LEVEL, _FORMAT)."""
    if level is None or json_logs is None:
        configured = settings or _settings_or_defaults()
        level = level or configured.log_level or "INFO"
        if json_logs is None:
            json_logs = configured.log_format.lower() == "json"
    level_name = (level or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "kombu", "celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _settings_or_defaults() -> Settings:
    """Settings that fail to load still get logging set up with the defaults; the caller reports the error."""
    try:
        return load_settings()
    except ConfigError:
        return Settings.model_construct()
