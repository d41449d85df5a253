"""Typed settings, built once from a TOML file and ``GLINT_*`` environment variables.

Precedence: keyword arguments > environment > settings file > defaults. Only the composition root
(``glint.app``) and the CLI build a :class:`Settings`; everything else receives what it needs.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Literal

import pydantic
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

GiB = 1024**3
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

    # Where the embedded defaults keep their files.
    data_dir: pathlib.Path = pathlib.Path("data")
    database_url: str | None = None  # default: sqlite under data_dir

    # Plugins, chosen by name (stevedore namespaces glint.stores / executors / notifiers).
    store: str = "filesystem"
    store_path: pathlib.Path | None = None  # default: data_dir / "images"
    executor: str = "thread"
    executor_threads: int = pydantic.Field(8, ge=1, le=256)
    notifier: str = "log"
    disabled_notifications: tuple[str, ...] = ()

    # Tasks
    task_time_to_live: int = pydantic.Field(48, ge=1, description="hours")

    # Images
    image_size_cap: int = pydantic.Field(1024 * GiB, ge=1)
    hashing_algorithm: Literal["sha512", "sha384", "sha256", "sha1", "md5"] = "sha512"
    disk_formats: tuple[str, ...] = DISK_FORMATS
    container_formats: tuple[str, ...] = CONTAINER_FORMATS

    # API
    limit_param_default: int = pydantic.Field(25, ge=1)
    api_limit_max: int = pydantic.Field(1000, ge=1)

    # Identity (header mode: behind a trusted proxy only)
    default_project_id: str | None = "demo"
    default_user_id: str | None = "demo"
    default_roles: tuple[str, ...] = ("member", "reader")

    # Import reachability
    import_allowed_schemes: tuple[str, ...] = ("http", "https")
    import_allowed_hosts: tuple[str, ...] = ()
    import_disallowed_hosts: tuple[str, ...] = ()
    import_timeout: float = pydantic.Field(60.0, gt=0)
    import_max_redirects: int = pydantic.Field(5, ge=0)

    @pydantic.field_validator("default_project_id", "default_user_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # An empty value (GLINT_DEFAULT_PROJECT_ID=) turns the anonymous default off.
        return None if value == "" else value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'glint.db').resolve()}"

    @property
    def effective_store_path(self) -> pathlib.Path:
        return self.store_path if self.store_path is not None else self.data_dir / "images"

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
