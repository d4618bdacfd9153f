"""Every setting of voxfarm, in one place, with its default and why.

Values come from, in order of precedence: keyword arguments (the CLI),
``VOXFARM_*`` environment variables, the TOML file named by
``VOXFARM_CONFIG`` (optional), then the defaults below. The defaults work on
one machine with nothing configured.

List settings accept JSON in the environment, e.g.
``VOXFARM_BUCKET_EDGES='[32, 64, 128]'``.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.errors import ConfigError

CONFIG_ENV = "VOXFARM_CONFIG"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_ENGINE = "piper-onnx"


def default_data_dir() -> Path:
    """Where one machine keeps rendered segments between runs (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "voxfarm"


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the optional file named by VOXFARM_CONFIG; a missing or broken file is an error."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get(CONFIG_ENV)
        self._values: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as handle:
                    loaded = tomllib.load(handle)
            except FileNotFoundError as exc:
                raise ConfigError(f"{CONFIG_ENV}={path}: no such file; fix the path or unset it") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{CONFIG_ENV}={path}: not valid TOML ({exc})") from exc
            section = loaded.get("voxfarm", loaded)
            self._values = {str(k).replace("-", "_"): v for k, v in section.items()}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._values.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    """Typed settings shared by the producer, the workers and the control service."""

    model_config = SettingsConfigDict(env_prefix="VOXFARM_", extra="ignore", frozen=True)

    # --- where things live -------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Broker and job ledger. Unset: `voxfarm render` starts a private "
        "Redis for the run; other commands use redis://127.0.0.1:6379/0.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Password for Redis AUTH, kept out of the URL (e.g. from a Kubernetes Secret).",
    )
    redis_tls_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that verifies a rediss:// server's certificate (unset: the system's CAs). "
        "Certificates are always verified.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Where segments, plans and books are stored: s3://bucket/prefix or "
        "file:///dir. Unset: file://<XDG data home>/voxfarm.",
    )
    s3_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint for MinIO, SeaweedFS, Ceph RGW or OBS; unset for AWS."
    )
    s3_region: str = Field(default="us-east-1", description="S3 region name sent to the endpoint.")
    voices_dir: Path | None = Field(
        default=None, description="Extra Piper voices (<id>.onnx + <id>.onnx.json) beside the default."
    )
    models_dir: Path | None = Field(
        default=None,
        description="Local Qwen3-TTS checkpoints, one folder per model name (<dir>/<name>/config.json ...); "
        "looked up before models/<name>/ in storage.",
    )

    # --- what to render ----------------------------------------------------
    voice: str = Field(default="en_US-joe-medium", description="Voice used when --voice is not given.")
    engine: str | None = Field(
        default=None,
        description="Engine used when --engine is not given. Unset: submissions use piper-onnx, and a "
        "worker uses its device family's default (piper-onnx on CPU, piper-torch on accelerators).",
    )

    # --- queues and batching ----------------------------------------------
    bucket_edges: list[int] = Field(
        default=[32, 64, 128, 256, 512],
        description="Length buckets in tokens; one queue per model and edge. Longer "
        "segments are split by the frontend.",
    )
    max_batch_items: int = Field(default=16, ge=1, description="Largest batch a worker forms.")
    batch_tuning: Literal["auto", "measure", "off"] = Field(
        default="auto",
        description="How a worker picks its batch size per bucket: 'measure' times candidate sizes on the card "
        "at warm-up (cached per device model and engine version); 'off' uses max_batch_items within "
        "max_batch_tokens; 'auto' measures on accelerators and uses 1 on a CPU, where batching was measured "
        "slower than one item at a time (see `voxfarm bench`).",
    )
    max_batch_tokens: int = Field(
        default=8192, ge=32, description="Largest padded token count (items x edge) of one batch."
    )
    frame_sort_batches: int = Field(
        default=8,
        ge=1,
        description="Engines with a separate duration stage (piper-torch) take up to this many batches' worth "
        "of one bucket per call, run the duration stage on all of them, and decode them in batches sorted by "
        "frame count, so a decoded batch holds items of nearly the same length (1 = off).",
    )
    max_wait_ms: int = Field(
        default=50, ge=0, description="Longest an item waits for its batch to fill before it is released."
    )
    fold_fraction: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="A bucket released on its deadline while filled below this fraction may join its larger "
        "neighbour's batch (0 = never fold).",
    )
    interactive_wait_ms: int = Field(default=5, ge=0, description="Batch wait of the interactive priority lane.")
    visibility_timeout_s: int = Field(
        default=3600,
        ge=5,
        description="Unacknowledged messages are redelivered after this long; keep it above "
        "the worst delivery-to-ack time of a batch.",
    )
    batch_time_limit_s: float = Field(
        default=300.0, gt=0, description="A batch running longer than this is failed and the worker exits."
    )
    max_retries: int = Field(default=3, ge=0, description="Retries of a segment before it is dead-lettered.")
    retry_backoff_s: float = Field(default=2.0, ge=0, description="First retry delay; doubles each attempt.")
    reconcile_interval_s: float = Field(
        default=30.0, gt=0, description="How often the control service looks for stalled or orphaned jobs."
    )
    reconcile_stall_s: float = Field(
        default=900.0,
        gt=0,
        description="A job with no finished segment for this long is resumed by the control service "
        "(segments sent within the visibility timeout are left to their workers).",
    )
    max_message_bytes: int = Field(default=64 * 1024, ge=1024, description="Largest accepted queue message.")

    # --- scheduling ----------------------------------------------------------
    dispatch_interval_s: float = Field(
        default=0.1, gt=0, description="How often the dispatcher tops the bucket queues up (one dispatch cycle)."
    )
    dispatch_window: int = Field(
        default=8,
        ge=1,
        description="Messages kept in a bucket queue while no worker of its model has published its batch sizes; "
        "otherwise the window is twice the sum of the live workers' items per engine call for that bucket.",
    )
    dispatch_unit_segments: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Segments of one job and bucket carried by one message (a work unit), acknowledged once "
        "every one of them is stored: fewer messages and Redis calls per segment on fast cards.",
    )
    lease_ttl_s: float = Field(
        default=5.0, gt=0, description="The dispatcher lease: a replica that cannot renew it within this stops."
    )
    priority_aging_s: float = Field(
        default=60.0,
        gt=0,
        description="A job waiting without dispatch gains one priority point per this many seconds, so a low "
        "class never starves for ever.",
    )
    default_tenant_weight: float = Field(
        default=1.0, gt=0, description="Share weight of a tenant that has not been configured."
    )
    tenants: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='Tenants seeded at start when Redis has none, e.g. {"studio": {"weight": 3, "quota": 200}} '
        "(quota: segments in flight, optional).",
    )

    # --- worker process -----------------------------------------------------
    metrics_port: int = Field(
        default=9300, ge=0, le=65535, description="First metrics port; a pool gives card i port + i. 0 = off."
    )
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics endpoint binds to.")
    log_level: str = Field(
        default="INFO", description="DEBUG, INFO, WARNING or ERROR; DEBUG adds a line per segment (--log-level wins)."
    )
    log_format: str = Field(
        default="text", description="json: one JSON object per line, for log collectors; anything else: text."
    )
    cache_dir: Path | None = Field(
        default=None, description="Compile and tuning caches. Unset: <XDG cache home>/voxfarm."
    )
    ort_threads: int = Field(
        default=1, ge=0, description="onnxruntime intra-op threads per worker (0 = onnxruntime decides)."
    )
    upload_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Processes that check, encode and store a worker's takes, off its own interpreter (a fast card "
        "needs more CPU for them than one interpreter has); 0: threads of the worker itself.",
    )
    cost_report_dir: Path | None = Field(
        default=None,
        description="A worker writes its CPU seconds per part (message, ledger, storage, quality, encoding, ...) "
        "into this folder twice a second; `voxfarm bench --engine-standin` sets it. Unset: not written.",
    )

    # --- assembly ------------------------------------------------------------
    sentence_pause_ms: int = Field(default=250, ge=0, description="Silence between sentences.")
    paragraph_pause_ms: int = Field(default=600, ge=0, description="Silence between paragraphs.")
    chapter_pause_ms: int = Field(default=1500, ge=0, description="Silence at the end of each chapter file.")
    chapter_lead_ms: int = Field(default=0, ge=0, description="Silence at the start of each chapter file.")
    chapter_format: Literal["flac", "wav", "mp3", "opus"] = Field(
        default="flac", description="Format of the chapter files: lossless FLAC or WAV, or MP3 or Opus."
    )
    book_format: Literal["m4b", "none"] = Field(
        default="m4b", description="The whole book in one file: M4B (AAC) with chapter marks, cover and tags."
    )
    loudness_target_lufs: float = Field(
        default=-18.0,
        ge=-40.0,
        le=-5.0,
        description="Integrated loudness of every chapter (EBU R128 / ITU-R BS.1770 measurement), in LUFS.",
    )
    true_peak_dbtp: float = Field(
        default=-1.0,
        ge=-20.0,
        le=0.0,
        description="True-peak ceiling (4x oversampled), in dBTP; peaks above it are limited.",
    )
    subtitles: Literal["none", "srt", "vtt", "both"] = Field(
        default="none", description="Subtitles per chapter from the segment timings: SRT, WebVTT or both."
    )
    audio_bitrate_kbps: int = Field(
        default=64, ge=16, le=320, description="Bitrate of MP3 and Opus chapter files and of the M4B (mono speech)."
    )

    # --- HTTP API ------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1", description="Address `voxfarm api` listens on (0.0.0.0 in a pod).")
    api_port: int = Field(default=8080, ge=0, le=65535, description="Port of `voxfarm api` (0 = any free port).")
    api_max_upload_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="Largest request body (an uploaded book) for a token that sets no limit of its own.",
    )
    api_rate_per_minute: int = Field(
        default=600, ge=1, description="Requests per minute per token, for a token that sets no rate of its own."
    )
    api_speech_max_chars: int = Field(
        default=4096, ge=1, description="Longest `input` of POST /v1/audio/speech (the OpenAI limit)."
    )
    api_max_priority: int = Field(
        default=50,
        ge=0,
        le=100,
        description="Highest priority a token without the admin scope may give its jobs. Priority classes rank "
        "before tenant weights, so by default a tenant can only lower its own jobs below the others' 50; raise "
        "it for tenants the farm trusts. Admin tokens may use 0-100 and the interactive lane.",
    )
    api_open_requests_per_token: int = Field(
        default=8,
        ge=1,
        description="Event streams and speech requests one token may hold open at once in one API process "
        "(each polls Redis while open); one more answers 429.",
    )
    api_speech_timeout_s: float = Field(
        default=120.0, gt=0, description="How long POST /v1/audio/speech waits for its audio before a 504."
    )
    api_upload_idle_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="An upload that sends nothing for this long is cut off with a 408 (a slow or stalled client).",
    )
    api_upload_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest time one request body may take to arrive, however steady."
    )
    api_bootstrap_token: SecretStr | None = Field(
        default=None,
        description="A token (vfk_<16 hex>_<43 characters>) that `voxfarm api` registers at start as an admin "
        "token of the default tenant, so a fresh install can be signed in to (the Helm chart's token Secret).",
    )
    api_forwarded_allow_ips: str | None = Field(
        default=None,
        description="Proxies (comma-separated addresses, or *) whose X-Forwarded-Proto and -For `voxfarm api` "
        "believes, so the console's cookie is marked Secure behind a TLS-terminating ingress; unset: none.",
    )
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser page served elsewhere; empty (the default) "
        "allows none: the console is served by the API itself.",
    )

    # --- input limits ------------------------------------------------------
    max_book_chars: int = Field(
        default=20_000_000,
        ge=1,
        description="Longest book text (characters) one job takes, checked before phonemising; about six "
        "times War and Peace.",
    )
    max_source_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="Largest book file accepted (bytes, compressed)."
    )
    plan_inline_chars: int = Field(
        default=100_000,
        ge=0,
        description="Books up to this many characters are planned by `voxfarm submit` itself (about a second); "
        "longer ones are stored as a request and planned by the control service, so submit returns at once.",
    )

    @field_validator("bucket_edges")
    @classmethod
    def _edges_ascending(cls, edges: list[int]) -> list[int]:
        if not edges or any(e <= 0 for e in edges) or sorted(set(edges)) != edges:
            raise ValueError("bucket_edges must be positive and strictly ascending, e.g. [32, 64, 128]")
        return edges

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    # --- derived -----------------------------------------------------------
    @property
    def broker_url(self) -> str:
        """The Redis URL with the password from ``redis_password`` filled in, if one is set."""
        url = self.redis_url or DEFAULT_REDIS_URL
        if self.redis_password is None:
            return url
        parsed = urlsplit(url)
        if parsed.password:
            return url
        user = quote(parsed.username or "", safe="")
        secret = quote(self.redis_password.get_secret_value(), safe="")
        return urlunsplit(parsed._replace(netloc=f"{user}:{secret}@{parsed.hostname}:{parsed.port or 6379}"))

    @property
    def redis_ssl_options(self) -> dict[str, Any]:
        """redis-py keyword arguments for a rediss:// URL: verify the server, against our CA if one is set."""
        if not self.broker_url.startswith("rediss://"):
            return {}
        options: dict[str, Any] = {"ssl_cert_reqs": "required"}
        if self.redis_tls_ca_file is not None:
            options["ssl_ca_certs"] = str(self.redis_tls_ca_file)
        return options

    @property
    def submit_engine(self) -> str:
        return self.engine or DEFAULT_ENGINE

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or default_data_dir().as_uri()

    @property
    def effective_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "voxfarm"


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation failures into a ConfigError the CLI can print."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems} (check VOXFARM_* variables and {CONFIG_ENV})") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
