"""Keystone mode's configuration checks, and paths Glance answers 404 (no Keystone needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from glint import errors
from glint.api.keystone import CACHE_KEY, IDENTITY_HEADERS, KEYSTONE_TIMEOUT, build_auth_protocol
from tests.unit.api.support import TestClient

OPTIONS = {"www_authenticate_uri": "http://127.0.0.1:5000/v3",
           "auth_url": "http://127.0.0.1:5000/v3", "auth_type": "password",
           "username": "glance", "password": "pw", "project_name": "service",
           "user_domain_id": "default", "project_domain_id": "default"}


@pytest.mark.parametrize("missing", ["www_authenticate_uri", "auth_url"])
def test_keystone_mode_needs_where_tokens_come_from(missing: str) -> None:
    options = {k: v for k, v in OPTIONS.items() if k != missing}
    with pytest.raises(errors.ConfigurationError, match="www_authenticate_uri"):
        build_auth_protocol(options)


def test_unknown_authtoken_option_is_named() -> None:
    with pytest.raises(errors.ConfigurationError, match="passwrod"):
        build_auth_protocol({**OPTIONS, "passwrod": "typo"})


def test_options_reach_auth_token_not_the_global_config() -> None:
    from oslo_config import cfg

    protocol = build_auth_protocol({**OPTIONS, "token_cache_time": 42})
    assert protocol._conf.get("token_cache_time") == 42
    assert protocol._conf.oslo_conf_obj is not cfg.CONF
    assert protocol.www_authenticate_uri == OPTIONS["www_authenticate_uri"]


def test_keystone_calls_time_out_unless_told_otherwise() -> None:
    assert build_auth_protocol(OPTIONS)._conf.get("http_connect_timeout") == KEYSTONE_TIMEOUT
    told = build_auth_protocol({**OPTIONS, "http_connect_timeout": 3})
    assert told._conf.get("http_connect_timeout") == 3


def test_tokens_are_cached_in_glints_own_cache_unless_memcached_is_set() -> None:
    assert build_auth_protocol(OPTIONS)._conf.get("cache") == CACHE_KEY
    memcached = build_auth_protocol({**OPTIONS, "memcached_servers": "127.0.0.1:11211"})
    assert memcached._conf.get("cache") is None


def test_identity_headers_cover_what_clients_could_spoof() -> None:
    for name in ("x-roles", "x-project-id", "x-user-id", "x-identity-status", "x-tenant-id",
                 "x-service-roles", "x-is-admin-project", "openstack-system-scope"):
        assert name in IDENTITY_HEADERS
    assert "x-auth-token" not in IDENTITY_HEADERS


def test_keystone_mode_refuses_requests_without_a_token(
        make_client: Callable[..., TestClient]) -> None:
    client = make_client(auth_mode="keystone", keystone_authtoken=OPTIONS)
    response = client.get("/v2/images", headers={"X-Project-Id": "p", "X-Roles": "admin"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Keystone uri="http://127.0.0.1:5000/v3"'
    assert client.get("/versions").status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_empty_image_id_is_404(client: TestClient, method: str) -> None:
    assert client.request(method, "/v2/images/").status_code == 404
