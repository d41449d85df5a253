"""Typed settings, built once from a TOML file and ``GLINT_*`` environment variables.

Precedence: keyword arguments > environment > settings file > defaults. Only the composition root
(``glint.app``) and the CLI build a :class:`Settings`; everything else receives what it needs.
"""

from __future__ import annotations

import functools
import os
import pathlib
from typing import Annotated, Any, Literal

import pydantic
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from glint import addresses

GiB = 1024**3
# Stores whose bytes are on this node already: the image cache is off in front of them by default.
LOCAL_STORES = ("filesystem", "memory")
CONFIG_ENV = "GLINT_CONFIG"

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")


class Settings(BaseSettings):
    """Every setting glint reads. The README lists them with their environment names."""

    model_config = SettingsConfigDict(env_prefix="GLINT_", extra="forbid", frozen=True)

    # Server
    bind_host: str = "127.0.0.1"
    bind_port: int = pydantic.Field(9292, ge=0, le=65535)
    public_endpoint: str | None = None
    # Operators: a file whose presence makes /healthcheck answer 503 "DISABLED BY FILE"
    # (oslo.middleware's disable_by_file), and the log line format.
    healthcheck_disable_file: pathlib.Path | None = None
    log_format: Literal["text", "json"] = "text"
    # Processes `glint serve` serves the API from (Glance's `workers`); --workers overrides.
    api_workers: int = pydantic.Field(1, ge=1, le=64)

    # Where the embedded defaults keep their files.
    data_dir: pathlib.Path = pathlib.Path("data")
    database_url: str | None = None  # default: sqlite under data_dir

    # Plugins, chosen by name (stevedore namespaces glint.stores / executors / notifiers).
    store: str = "filesystem"
    store_path: pathlib.Path | None = None  # default: data_dir / "images"
    # Multi-store (Glance's enabled_backends): store id → store type (a glint.stores name).
    # Empty: the one store above. With backends, image data lives in any of them.
    enabled_backends: dict[str, str] = pydantic.Field(default_factory=dict)
    default_backend: str | None = None  # default: the first of enabled_backends
    # Directory of each filesystem backend (default: data_dir / "images" / <store id>).
    backend_paths: dict[str, pathlib.Path] = pydantic.Field(default_factory=dict)
    # Per backend, the swift_* or s3_* settings that differ from the top-level ones (Glance's
    # per-backend sections): store id → {setting: value}. Several swift (or s3) backends
    # need them, each naming its own container or bucket at least. Values are kept as secrets
    # (a key or password may be among them: reprs and dumps show none).
    backend_settings: dict[str, dict[str, pydantic.Secret[str | int | float | bool]]] = (
        pydantic.Field(default_factory=dict))
    # The swift store (Glance's swift_store_*): Keystone v3 (auth_version "3") or Swift's v1
    # tempauth ("1"). The key is a secret: kept out of repr, logs and messages.
    swift_auth_url: str | None = None
    swift_auth_version: Literal["1", "3"] = "3"
    swift_user: str | None = None
    swift_key: pydantic.SecretStr | None = None
    swift_project_name: str | None = None
    swift_project_domain_name: str = "Default"
    swift_user_domain_name: str = "Default"
    swift_region_name: str | None = None
    swift_interface: Literal["public", "internal", "admin"] = "public"
    swift_storage_url: str | None = None  # the account URL, instead of the catalog's
    swift_container: str = pydantic.Field("glint", min_length=1, pattern=r"^[^/]+$")
    swift_create_container: bool = False
    swift_segment_size: int = pydantic.Field(8 * 1024**2, ge=1024**2, le=5 * GiB)
    swift_segments_in_flight: int = pydantic.Field(3, ge=1, le=64)
    swift_retries: int = pydantic.Field(5, ge=0)
    swift_ca_file: str | None = None
    swift_insecure: bool = False
    # The s3 store (Glance's s3_store_*). Swift's s3api takes path-style addressing only.
    s3_endpoint: str | None = None  # none: AWS's endpoint for s3_region
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: pydantic.SecretStr | None = None
    s3_bucket: str = pydantic.Field("glint", min_length=3)
    s3_addressing_style: Literal["path", "virtual", "auto"] = "path"
    s3_create_bucket: bool = False
    s3_part_size: int = pydantic.Field(8 * 1024**2, ge=5 * 1024**2, le=5 * GiB)
    s3_parts_in_flight: int = pydantic.Field(3, ge=1, le=64)
    s3_retries: int = pydantic.Field(5, ge=0)
    s3_ca_file: str | None = None
    s3_insecure: bool = False
    executor: str = "thread"
    executor_threads: int = pydantic.Field(8, ge=1, le=256)
    # Task type → executor name, for types that should not run on ``executor``.
    executor_routes: dict[str, str] = pydantic.Field(default_factory=dict)
    notifier: str = "log"
    disabled_notifications: tuple[str, ...] = ()

    # Tasks
    task_time_to_live: int = pydantic.Field(48, ge=1, description="hours")
    # Leases: a running task's lease lasts task_lease seconds and is renewed every
    # task_heartbeat seconds (and on every progress report); see docs/tasks.md.
    task_lease: float = pydantic.Field(90.0, gt=0, description="seconds")
    task_heartbeat: float = pydantic.Field(30.0, gt=0, description="seconds")
    task_max_attempts: int = pydantic.Field(3, ge=1)  # runs a task gets when workers are lost
    task_retry_limit: int = pydantic.Field(3, ge=0)  # re-runs after a TransientError
    # A script running longer is asked to stop (should_cancel()); one that has not stopped
    # task_time_limit_grace seconds later is failed without it (its thread is abandoned).
    task_time_limit: float = pydantic.Field(21600.0, gt=0, description="seconds")
    task_time_limit_grace: float = pydantic.Field(60.0, ge=0, description="seconds")
    task_retry_backoff: float = pydantic.Field(2.0, ge=0, description="seconds, doubling")
    task_retry_backoff_max: float = pydantic.Field(300.0, ge=0, description="seconds")
    reaper_interval: float = pydantic.Field(15.0, ge=0, description="seconds; 0: no reaper")
    task_republish_after: float = pydantic.Field(300.0, gt=0, description="seconds pending")
    # The reaper removes unfinished filesystem-store writes untouched for this long; it must
    # outlast task_time_limit + task_time_limit_grace (a run may hold a write that long).
    store_tmp_max_age: float = pydantic.Field(86400.0, gt=0, description="seconds")

    # The image cache (glint.cache): each API node's copy of the images it served, in front of
    # the stores. None: on when some store is remote (not filesystem or memory), and then
    # filled only from remote stores; true: filled from every store; false: off.
    image_cache_enabled: bool | None = None
    image_cache_dir: pathlib.Path | None = None  # default: data_dir / "image-cache"
    image_cache_max_size: int = pydantic.Field(10 * GiB, ge=0, description="bytes")
    # A fill that has not written a byte for this long is abandoned (the next one restarts it).
    image_cache_stall_time: float = pydantic.Field(600.0, gt=0, description="seconds")

    # Remote workers (the ``celery`` executor, ``glint worker``)
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    broker_visibility_timeout: int = pydantic.Field(7200, ge=1, description="seconds (Redis)")
    broker_publish_timeout: float = pydantic.Field(5.0, gt=0, description="seconds")
    broker_quorum_queues: bool = True  # RabbitMQ only
    broker_consumer_timeout: int | None = pydantic.Field(None, ge=60000, description="ms")
    task_default_queue: str = "glint"
    task_queues: dict[str, str] = pydantic.Field(default_factory=dict)  # task type → queue

    # The ``messaging`` notifier (oslo.messaging's notification envelope on a topic exchange)
    messaging_url: str | None = None  # default: broker_url
    messaging_exchange: str = "glance"

    # Images
    image_size_cap: int = pydantic.Field(1024 * GiB, ge=1)
    hashing_algorithm: Literal["sha512", "sha384", "sha256", "sha1", "md5"] = "sha512"
    disk_formats: tuple[str, ...] = DISK_FORMATS
    container_formats: tuple[str, ...] = CONTAINER_FORMATS
    # Glance's count quotas; a negative value means unlimited, as in Glance.
    image_property_quota: int = 128
    image_tag_quota: int = 128
    image_member_quota: int = 128
    # Advertised in the ``OpenStack-image-import-methods`` header of ``POST /v2/images``.
    # copy-image (copy an active image's data to more stores) needs enabled_backends.
    enabled_import_methods: tuple[Literal["glance-direct", "web-download", "copy-image",
                                          "glance-download"], ...] = (
        "glance-direct", "web-download")
    # glance-download: the source image's properties with these prefixes are copied (Glance's
    # [glance_download_properties] extra_properties).
    glance_download_properties: tuple[str, ...] = (
        "hw_", "trait:", "os_distro", "os_secure_boot", "os_type")
    # Where ``PUT /v2/images/{id}/stage`` keeps data until its import (default: data_dir/staging).
    staging_path: pathlib.Path | None = None

    # API
    limit_param_default: int = pydantic.Field(25, ge=1)
    api_limit_max: int = pydantic.Field(1000, ge=1)

    # Identity. "headers": trust X-User-Id/X-Project-Id/X-Roles (behind an authenticating proxy
    # only; the embedded default). "keystone": validate X-Auth-Token with keystonemiddleware's
    # auth_token, configured by the [keystone_authtoken] table (its own option names).
    auth_mode: Literal["headers", "keystone"] = "headers"
    keystone_authtoken: dict[str, str | int | float | bool] = pydantic.Field(
        default_factory=dict)
    # Keystone mode: tokens validated with Keystone at once (each in a thread of its own, not
    # one of those requests are served from), and requests that may wait for one of those
    # slots; past both, a request with a token glint has not cached gets 503 at once.
    token_validations: int = pydantic.Field(16, ge=1, le=256)
    token_validation_backlog: int = pydantic.Field(64, ge=0, le=10000)
    # How long a token Keystone refused is refused again without asking (0: not remembered).
    invalid_token_cache_time: float = pydantic.Field(30.0, ge=0, description="seconds")
    # Header mode only: the caller when a request names no project (empty: 401 instead).
    default_project_id: str | None = "demo"
    default_user_id: str | None = "demo"
    default_roles: tuple[str, ...] = ("member", "reader")

    # Import reachability
    import_allowed_schemes: tuple[str, ...] = ("http", "https")
    import_allowed_hosts: tuple[str, ...] = ()
    import_disallowed_hosts: tuple[str, ...] = ()
    # Ports a URL not on import_allowed_hosts may use (its explicit port, or the scheme's).
    import_allowed_ports: tuple[int, ...] = (80, 443)
    import_timeout: float = pydantic.Field(60.0, gt=0)
    import_max_redirects: int = pydantic.Field(5, ge=0)

    # Import data: format checks, decompression, conversion (docs/security.md)
    vmdk_allowed_types: tuple[str, ...] = ("streamOptimized", "monolithicSparse")
    import_decompress: bool = False  # gunzip / unxz / unzstd compressed import data
    # Decompressed bytes allowed per import (default: image_size_cap); more fails the task.
    import_decompressed_size_cap: int | None = pydantic.Field(None, ge=1)
    # Convert imported data to this disk format (qemu-img); None: store it as it comes.
    import_conversion_format: Literal["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi"] | None = None

    # Scripts
    work_dir: pathlib.Path | None = None  # scratch space (format conversion); default data_dir/work
    export_allowed_dirs: tuple[pathlib.Path, ...] = ()  # empty: exports to files are refused

    # Policy (glint.policy, docs/policy.md): a YAML/JSON file of rules overriding the defaults.
    policy_file: pathlib.Path | None = None
    # Uploads (PUT /v2/images/{id}/file): refuse data that is not in the image's disk_format.
    require_image_format_match: bool = True

    @pydantic.field_validator("default_project_id", "default_user_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # An empty value (GLINT_DEFAULT_PROJECT_ID=) turns the anonymous default off.
        return None if value == "" else value

    @pydantic.field_validator("import_allowed_hosts", "import_disallowed_hosts")
    @classmethod
    def _host_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:  # name, address or network, with an optional :port
            addresses.HostPattern.parse(entry)
        return value

    @pydantic.model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> Settings:
        if self.task_heartbeat >= self.task_lease:
            raise ValueError(f"task_heartbeat ({self.task_heartbeat:g} s) must be shorter than "
                             f"task_lease ({self.task_lease:g} s); a third of it is usual")
        return self

    @pydantic.model_validator(mode="after")
    def _sweep_after_time_limit(self) -> Settings:
        longest = self.task_time_limit + self.task_time_limit_grace
        if self.store_tmp_max_age <= longest:
            raise ValueError(f"store_tmp_max_age ({self.store_tmp_max_age:g} s) must be longer "
                             f"than task_time_limit + task_time_limit_grace ({longest:g} s)")
        return self

    @pydantic.model_validator(mode="after")
    def _api_workers_share(self) -> Settings:
        stores = tuple(self.enabled_backends.values()) or (self.store,)
        url = self.effective_database_url
        if self.api_workers > 1 and ("memory" in stores or ":memory:" in url
                                     or url.rstrip("/") == "sqlite:"):
            raise ValueError("api_workers > 1 needs a database and a store the processes share, "
                             "not an in-memory one")
        return self

    @pydantic.model_validator(mode="after")
    def _backends(self) -> Settings:
        backends = self.enabled_backends
        if "copy-image" in self.enabled_import_methods and not backends:
            raise ValueError("enabled_import_methods: copy-image copies data between stores, "
                             "so it needs enabled_backends")
        if self.default_backend is not None and self.default_backend not in backends:
            raise ValueError(f"default_backend {self.default_backend!r} is not one of "
                             f"enabled_backends ({', '.join(backends) or 'none'})")
        unknown = sorted(set(self.backend_paths) - set(backends))
        if unknown:
            raise ValueError(f"backend_paths names stores not in enabled_backends: "
                             f"{', '.join(unknown)}")
        for store_id, overrides in self.backend_settings.items():
            kind = backends.get(store_id)
            if kind is None:
                raise ValueError(f"backend_settings names a store not in enabled_backends: "
                                 f"{store_id}")
            foreign = sorted(k for k in overrides
                             if not k.startswith(f"{kind}_") or k not in type(self).model_fields)
            if foreign:
                raise ValueError(f"backend_settings.{store_id}: {', '.join(foreign)} "
                                 f"{'is not a' if len(foreign) == 1 else 'are not'} {kind}_* "
                                 f"setting{'s' if len(foreign) > 1 else ''} ({store_id} is a "
                                 f"{kind} store)")
        for kind, where in (("swift", ("swift_auth_url", "swift_storage_url", "swift_container")),
                            ("s3", ("s3_endpoint", "s3_region", "s3_bucket"))):
            seen: dict[tuple[object, ...], str] = {}
            for store_id in (i for i, k in backends.items() if k == kind):
                own = self.for_backend(store_id)
                place = tuple(getattr(own, name) for name in where)
                if place in seen:
                    raise ValueError(
                        f"enabled_backends: {seen[place]} and {store_id} are the same {kind} "
                        f"store ({', '.join(where)}); give one its own in backend_settings")
                seen[place] = store_id
        bad = sorted(i for i in backends if not i or "," in i or i.startswith("os_glance_"))
        if bad:
            raise ValueError(f"enabled_backends: invalid store ids {bad} (no commas, not empty, "
                             "os_glance_ is reserved)")
        return self

    @property
    def effective_default_backend(self) -> str | None:
        """The store new data goes to without a choice; None without multi-store."""
        return self.default_backend or next(iter(self.enabled_backends), None)

    def for_backend(self, store_id: str) -> Settings:
        """These settings as backend ``store_id`` sees them: with its ``backend_settings``,
        each value checked as the top-level setting of the same name is."""
        overrides = self.backend_settings.get(store_id)
        if not overrides:
            return self
        values = {}
        for name, value in overrides.items():
            try:
                values[name] = _setting(name).validate_python(value.get_secret_value())
            except pydantic.ValidationError as exc:
                raise ValueError(f"backend_settings.{store_id}.{name}: "
                                 f"{exc.errors()[0]['msg']}") from None
        return self.model_copy(update=values)

    def effective_backend_path(self, store_id: str) -> pathlib.Path:
        path = self.backend_paths.get(store_id)
        return path if path is not None else self.effective_store_path / store_id

    @property
    def effective_decompressed_size_cap(self) -> int:
        if self.import_decompressed_size_cap is not None:
            return self.import_decompressed_size_cap
        return self.image_size_cap

    @property
    def effective_messaging_url(self) -> str:
        return self.messaging_url or self.broker_url

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'glint.db').resolve()}"

    @property
    def effective_store_path(self) -> pathlib.Path:
        return self.store_path if self.store_path is not None else self.data_dir / "images"

    @property
    def effective_image_cache_enabled(self) -> bool:
        if self.image_cache_enabled is not None:
            return self.image_cache_enabled
        return any(kind not in LOCAL_STORES
                   for kind in (tuple(self.enabled_backends.values()) or (self.store,)))

    @property
    def effective_image_cache_dir(self) -> pathlib.Path:
        return (self.image_cache_dir if self.image_cache_dir is not None
                else self.data_dir / "image-cache")

    @property
    def effective_work_dir(self) -> pathlib.Path:
        return self.work_dir if self.work_dir is not None else self.data_dir / "work"

    @property
    def effective_staging_path(self) -> pathlib.Path:
        return self.staging_path if self.staging_path is not None else self.data_dir / "staging"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load(**overrides: Any) -> Settings:
    """Build the settings from the environment (and ``$GLINT_CONFIG``), with overrides on top."""
    return Settings(**overrides)


@functools.cache
def _setting(name: str) -> pydantic.TypeAdapter[Any]:
    """A validator of values for setting ``name`` (its type and constraints)."""
    field = Settings.model_fields[name]
    checked: Any = Annotated[field.annotation, field]  # the field's type with its constraints
    return pydantic.TypeAdapter(checked)
