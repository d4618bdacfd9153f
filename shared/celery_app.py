"""The Celery application shared by producers, workers and the control service.

Settings that protect the farm live here: JSON only (pickle would let anyone
who can write to Redis run code on the workers), late acknowledgement with a
prefetch of one per slot so a crash loses nothing, and a visibility timeout
above the worst delivery-to-ack time of a batch.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.buckets import CONTROL_QUEUE
from shared.settings import Settings

SYNTHESIZE_TASK = "voxfarm.synthesize"
ASSEMBLE_TASK = "voxfarm.assemble"
PLAN_TASK = "voxfarm.plan"


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    return {
        "visibility_timeout": settings.visibility_timeout_s,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "health_check_interval": 30,
        "retry_on_timeout": True,
    }


def create_app(settings: Settings) -> Celery:
    app = Celery("voxfarm", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        broker_transport="shared.broker_transport:Transport",
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_acks_on_failure_or_timeout=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=CONTROL_QUEUE,
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=broker_transport_options(settings),
        broker_pool_limit=32,
        task_routes={f"voxfarm.{name}": {"queue": CONTROL_QUEUE} for name in ("assemble", "plan", "reconcile")},
        enable_utc=True,
    )
    if settings.broker_url.startswith("rediss://"):
        import ssl

        # kombu would connect without checking the certificate unless told to.
        tls: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if settings.redis_tls_ca_file is not None:
            tls["ssl_ca_certs"] = str(settings.redis_tls_ca_file)
        app.conf.broker_use_ssl = tls
    return app
