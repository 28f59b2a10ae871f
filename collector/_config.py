"""Settings: value objects with documented defaults, read from one TOML file and
``INTERLOCK_*`` environment variables, validated on start.

Every field of every section can be set by ``INTERLOCK_<SECTION>_<FIELD>``
(``INTERLOCK_API_PORT=7500``); ``INTERLOCK_KAFKA_BOOTSTRAP`` is accepted as the
short form of ``INTERLOCK_BUS_KAFKA_BOOTSTRAP``. An invalid value raises
:class:`tracing.ConfigError` naming the setting. Nothing is read at import time.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_origin

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from tracing import ConfigError

__all__ = [
    "AlertsSettings",
    "ApiSettings",
    "BusSettings",
    "DashboardSettings",
    "DemoSettings",
    "LineageSettings",
    "ReplaySettings",
    "RetrySettings",
    "Settings",
    "load_settings",
]

_ENV_PREFIX = "INTERLOCK_"
_ENV_ALIASES = {"INTERLOCK_KAFKA_BOOTSTRAP": ("bus", "kafka_bootstrap")}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiSettings(_Section):
    host: str = Field("127.0.0.1", description="address the control API binds")
    port: int = Field(7400, ge=0, le=65535, description="control API port (0: any free port)")
    require_auth_for_reads: bool = Field(
        True,
        description="reads need a viewer token too (the demo landscape hands its dashboard "
        "the printed demo-viewer token)",
    )
    tokens_file: str = Field(
        "var/tokens.json",
        description="token store file of `interlock tokens create` (hashes only; read again "
        "when it changes)",
    )


class DashboardSettings(_Section):
    enabled: bool = True
    port: int = Field(8501, ge=0, le=65535)


class LineageSettings(_Section):
    path: str = Field("var/lineage.duckdb", description="DuckDB file, or ':memory:'")
    batch_size: int = Field(1000, ge=1)
    flush_interval: float = Field(0.2, gt=0)
    memory_limit: str | None = Field(
        None,
        description="DuckDB memory limit (e.g. '384MB'); the writer checkpoints early and "
        "shrinks batches to stay under it; it must exceed the indexes DuckDB cannot evict "
        "(~25 B per stored event), see docs/performance.md",
    )
    threads: int | None = Field(None, ge=1, description="DuckDB worker threads")
    lake_path: str = Field(
        "var/lake",
        description="the lineage lake's Parquet data folder (local, or shared between "
        "machines), written by lake collectors (docs/lineage-lake.md)",
    )
    catalog: str | None = Field(
        None,
        pattern=r"^postgres:",
        description="the lake's DuckLake catalog: 'postgres:dbname=… host=… user=…' for "
        "many collector processes (INTERLOCK_LINEAGE_CATALOG); unset, a DuckDB catalog "
        "file in lake_path (one process only)",
    )


class BusSettings(_Section):
    kind: Literal["embedded", "kafka"] = "embedded"
    kafka_bootstrap: str | None = Field(None, description="host:port; setting it selects Kafka")
    partitions: int = Field(8, ge=1)
    journal: bool = Field(
        True,
        description="embedded bus: fsync each event to a journal before acknowledging it, "
        "so an acknowledged event survives a crash (kept beside the lineage file)",
    )
    events_topic: str = "interlock.events"
    dead_letter_topic: str = "interlock.dead-letters"
    stall_after: float = Field(
        300.0,
        gt=0,
        description="Kafka: seconds without a committed batch, while messages wait, before "
        "/healthz reports the bus as stalled",
    )


class RetrySettings(_Section):
    max_attempts: int = Field(5, ge=1)
    base_delay: float = Field(0.5, ge=0)
    max_delay: float = Field(20.0, ge=0)
    max_retry_after: float = Field(60.0, ge=0)


class ReplaySettings(_Section):
    rate_per_second: float = Field(20.0, gt=0, description="re-deliveries per second at most")
    concurrency: int = Field(4, ge=1, description="re-deliveries in flight at once")
    audit_head: str = Field(
        "var/audit-head.json",
        description="where the audit trail's head is kept, outside the lineage file, so "
        "removing the newest audit entries is detected",
    )


class AlertsSettings(_Section):
    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL (http://host:9093); unset: alerts are not sent"
    )
    resend_interval: float = Field(30.0, gt=0, description="seconds between resends")
    silence_hours: float = Field(4.0, gt=0, description="length of a silence made by an ack")
    dashboard_url: str | None = Field(
        None, description="public dashboard URL for links in alerts (default: the local one)"
    )


class DemoSettings(_Section):
    enabled: bool = Field(True, description="start the demo landscape and traffic generator")
    rate_per_minute: float = Field(30.0, gt=0, description="opportunities closed won per minute")
    faults: bool = Field(True, description="inject outages, 429 storms, bad data, duplicates")
    seed: int | None = None
    workdir: str = Field("var/demo", description="where the landscape keeps its state")


class Settings(_Section):
    api: ApiSettings = ApiSettings()
    dashboard: DashboardSettings = DashboardSettings()
    lineage: LineageSettings = LineageSettings()
    bus: BusSettings = BusSettings()
    retry: RetrySettings = RetrySettings()
    replay: ReplaySettings = ReplaySettings()
    alerts: AlertsSettings = AlertsSettings()
    demo: DemoSettings = DemoSettings()
    #: API tokens: ``[[tokens]] name=…, role=…, token_hash="sha256:…"``.
    tokens: list[dict[str, str]] = Field(default_factory=list)
    #: The plug-ins' own sections (``[erp]``, ``[billing]`` …), validated at load by
    #: the models the plug-ins declare; read with :meth:`section`.
    extensions: dict[str, Any] = Field(default_factory=dict)

    @property
    def use_kafka(self) -> bool:
        return self.bus.kind == "kafka" or bool(self.bus.kafka_bootstrap)

    def section(self, name: str, model: type[M]) -> M:
        """The plug-in section ``[name]`` as ``model`` (its defaults when not set)."""
        value = self.extensions.get(name)
        if isinstance(value, model):
            return value
        data = value.model_dump() if isinstance(value, BaseModel) else (value or {})
        return _validate(model, data, prefix=name)

    def with_section(self, name: str, value: BaseModel) -> Settings:
        """These settings with section ``[name]`` replaced (the demo landscape points
        the systems at itself this way)."""
        return self.model_copy(update={"extensions": {**self.extensions, name: value}})


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: Any, *, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        setting = ".".join([*filter(None, [prefix]), *(str(part) for part in first["loc"])])
        raise ConfigError(setting, first["msg"]) from exc


def _host_sections() -> dict[str, type[BaseModel]]:
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
    }


def _env_overrides(
    env: Mapping[str, str], sections: Mapping[str, type[BaseModel]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    # Longest names first, so a section named like another's prefix is matched right.
    sections = dict(sorted(sections.items(), key=lambda item: -len(item[0])))
    for key, value in env.items():
        if not key.startswith(_ENV_PREFIX):
            continue
        if key in _ENV_ALIASES:
            section, field = _ENV_ALIASES[key]
            out.setdefault(section, {})[field] = value
            continue
        rest = key[len(_ENV_PREFIX) :].lower()
        for section, model in sections.items():
            if rest.startswith(section + "_"):
                field = rest[len(section) + 1 :]
                if field in model.model_fields:
                    if get_origin(model.model_fields[field].annotation) is list:
                        out.setdefault(section, {})[field] = [
                            s for s in value.split(",") if s.strip()
                        ]
                    else:
                        out.setdefault(section, {})[field] = value
                break
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: Path | str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    sections: Mapping[str, type[BaseModel]] | None = None,
) -> Settings:
    """Settings from ``path`` (or ``$INTERLOCK_CONFIG``, or none), then the environment.

    ``sections`` are the plug-ins' own sections and their models (default: those of
    the installed plug-ins); each is validated here, so a bad ``[erp]`` value fails
    at load with its name. A section no plug-in owns is an error too.

    >>> load_settings(env={"INTERLOCK_API_PORT": "7500"}).api.port
    7500
    """
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = path or env.get("INTERLOCK_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError("INTERLOCK_CONFIG", f"no such file: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    if sections is None:
        from ._plugins import discover, plugin_sections

        sections = plugin_sections(discover())
    host = _host_sections()
    data = _merge(data, _env_overrides(env, {**host, **sections}))
    extensions: dict[str, Any] = {}
    for name in list(data):
        if name in host or name == "tokens":
            continue
        if name not in sections:
            known = ", ".join(sorted([*host, *sections]))
            raise ConfigError(name, f"is not a settings section (sections: {known})")
        extensions[name] = _validate(sections[name], data.pop(name), prefix=name)
    for name, model in sections.items():
        extensions.setdefault(name, _validate(model, {}, prefix=name))
    settings = _validate(Settings, data)
    return settings.model_copy(update={"extensions": extensions})
