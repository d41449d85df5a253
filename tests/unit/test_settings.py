from __future__ import annotations

import pathlib

import pydantic
import pytest

from glint import settings


def test_defaults_are_the_embedded_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GLINT_CONFIG", "GLINT_DATA_DIR", "GLINT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    s = settings.load()
    assert (s.bind_host, s.bind_port) == ("127.0.0.1", 9292)
    assert (s.store, s.executor, s.notifier) == ("filesystem", "thread", "log")
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("data/glint.db")
    assert s.effective_store_path == pathlib.Path("data/images")
    assert s.task_time_to_live == 48


def test_environment_overrides_file(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "glint.toml"
    config.write_text('bind_port = 1111\nexecutor = "inline"\n'
                      'import_allowed_hosts = ["a.example"]\n')
    monkeypatch.setenv("GLINT_CONFIG", str(config))
    monkeypatch.setenv("GLINT_BIND_PORT", "2222")
    s = settings.load()
    assert s.bind_port == 2222
    assert s.executor == "inline"
    assert s.import_allowed_hosts == ("a.example",)


def test_unknown_and_invalid_settings_are_refused(tmp_path: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "glint.toml"
    config.write_text("no_such_setting = 1\n")
    monkeypatch.setenv("GLINT_CONFIG", str(config))
    with pytest.raises(pydantic.ValidationError, match="no_such_setting"):
        settings.load()
    monkeypatch.delenv("GLINT_CONFIG")
    with pytest.raises(pydantic.ValidationError, match="bind_port"):
        settings.load(bind_port=70000)


def test_settings_are_frozen() -> None:
    s = settings.load()
    with pytest.raises(pydantic.ValidationError):
        s.bind_port = 1  # type: ignore[misc]


def test_object_store_secrets_stay_out_of_reprs_and_dumps() -> None:
    configured = settings.Settings(swift_key="swift-secret", s3_secret_key="s3-secret")
    for shown in (repr(configured), str(configured), configured.model_dump_json()):
        assert "swift-secret" not in shown and "s3-secret" not in shown
    assert configured.swift_key is not None
    assert configured.swift_key.get_secret_value() == "swift-secret"


def test_several_object_stores_of_a_type_each_need_their_own_place() -> None:
    two = {"a": "swift", "b": "swift", "c": "s3", "d": "s3", "e": "filesystem"}
    with pytest.raises(pydantic.ValidationError, match="a and b are the same swift store"):
        settings.Settings(enabled_backends=two)
    configured = settings.Settings(
        enabled_backends=two, swift_key="top-secret", swift_segments_in_flight=4,
        backend_settings={"b": {"swift_container": "other", "swift_key": "b-secret"},
                          "d": {"s3_bucket": "other", "s3_parts_in_flight": "6"}})
    b, d = configured.for_backend("b"), configured.for_backend("d")
    assert (b.swift_container, b.swift_segments_in_flight) == ("other", 4)
    assert b.swift_key is not None and b.swift_key.get_secret_value() == "b-secret"
    assert (d.s3_bucket, d.s3_parts_in_flight) == ("other", 6)
    assert configured.for_backend("a") is configured
    for shown in (repr(configured), configured.model_dump_json(), repr(b)):
        assert "b-secret" not in shown and "top-secret" not in shown


@pytest.mark.parametrize(("overrides", "refusal"), [
    ({"a": {"s3_bucket": "x"}}, "backend_settings.a: s3_bucket is not a swift_"),
    ({"b": {"swift_nope": 1}}, "backend_settings.b: swift_nope is not a swift_"),
    ({"x": {"swift_container": "y"}}, "names a store not in enabled_backends: x"),
    ({"b": {"swift_segments_in_flight": 0}}, "backend_settings.b.swift_segments_in_flight: "
                                             "Input should be greater than or equal to 1"),
])
def test_backend_settings_are_checked(overrides: dict[str, dict[str, object]],
                                      refusal: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=refusal):
        settings.Settings(enabled_backends={"a": "swift", "b": "swift"},
                          backend_settings=overrides)


def test_s3_parts_are_at_least_5_mib() -> None:
    with pytest.raises(pydantic.ValidationError, match="s3_part_size"):
        settings.Settings(s3_part_size=1024 * 1024)
