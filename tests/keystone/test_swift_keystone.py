"""The swift store with Keystone v3 auth (``swift_auth_version = "3"``), on a real Keystone and
a real Swift proxy that takes Keystone tokens.

The one-node Swift of start-swift answers tempauth only. Here a second proxy runs beside it on
the same rings and servers, with Swift's own Keystone pipeline (``authtoken`` from
keystonemiddleware, then ``keystoneauth``), as a Keystone-backed Swift is deployed. Swift runs
on the system's Python; keystonemiddleware comes from the Keystone the conformance script
installs (its virtualenv's Python, with the system's Swift packages after its own). The
catalog gets an ``object-store`` endpoint in a region of the test's own, so glint has to pick
it by region and interface, as it would among several.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator

import pytest

from glint import errors
from glint.stores.swift import SwiftStore
from tests.integration.conftest import swift_env  # noqa: F401 - the local Swift, a fixture
from tests.keystone.conftest import SERVICE_PASSWORD, Keystone
from tests.tools import unavailable

MiB = 1024 * 1024
KS_VENV = pathlib.Path(os.environ.get(
    "GLINT_KEYSTONE_VENV", pathlib.Path(tempfile.gettempdir()) / "glint-conformance/ks-venv"))

PROXY_CONF = """\
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
swift_dir = {swift_dir}
log_name = glint-keystone-proxy

[pipeline:main]
pipeline = catch_errors healthcheck cache authtoken keystoneauth slo proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
error_suppression_interval = 0
node_timeout = 30

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = {keystone}/v3
auth_url = {keystone}/v3
auth_type = password
username = glance
password = {service_password}
project_name = service
user_domain_id = default
project_domain_id = default
delay_auth_decision = true

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached}

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:slo]
use = egg:swift#slo
"""

RUN_PROXY = """\
import sys
sys.path.append(sys.argv.pop(1))  # Swift's packages, after keystonemiddleware's libraries
from swift.common.utils import parse_options
from swift.common.wsgi import run_wsgi
conf_file, options = parse_options()
sys.exit(run_wsgi(conf_file, "proxy-server", **options))
"""


def _swift_packages() -> str | None:
    """Where the system's Swift (the one start-swift runs) is installed."""
    server = shutil.which("swift-proxy-server")
    if server is None:
        return None
    interpreter = pathlib.Path(server).read_text().splitlines()[0].removeprefix("#!").split()
    found = subprocess.run([*interpreter, "-c", "import os, swift; "
                            "print(os.path.dirname(os.path.dirname(swift.__file__)))"],
                           capture_output=True, text=True, timeout=60, check=False)
    return found.stdout.strip() or None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def keystone_proxy(swift_env: dict[str, str], keystone: Keystone,  # noqa: F811
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Swift proxy with Keystone auth on the local Swift's servers; its base URL."""
    python = KS_VENV / "bin/python"
    packages = _swift_packages()
    if not python.is_file() or packages is None:
        unavailable(f"no Keystone virtualenv at {KS_VENV} (set GLINT_KEYSTONE_VENV) or no "
                     "system Swift")
    tmp = tmp_path_factory.mktemp("keystone-proxy")
    port = _free_port()
    conf = tmp / "proxy-server.conf"
    conf.write_text(PROXY_CONF.format(
        port=port, swift_dir=pathlib.Path(swift_env["GLINT_SWIFT_DIR"]) / "etc",
        keystone=keystone.url, service_password=SERVICE_PASSWORD,
        memcached=int(swift_env["GLINT_SWIFT_PORT"]) + 4))
    (tmp / "run.py").write_text(RUN_PROXY)
    url = f"http://127.0.0.1:{port}"
    with (tmp / "proxy.log").open("wb") as log:
        proxy = subprocess.Popen([str(python), str(tmp / "run.py"), packages, str(conf)],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proxy.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/healthcheck", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            unavailable("the Keystone Swift proxy did not start: "
                         + (tmp / "proxy.log").read_text()[-2000:])
        yield url
    finally:
        proxy.terminate()
        proxy.wait(10)


@pytest.fixture(scope="module")
def region(keystone: Keystone, keystone_proxy: str) -> Iterator[str]:
    """A region of its own whose ``object-store`` endpoint is the Keystone proxy."""
    tag = secrets.token_hex(4)
    admin, base = keystone.admin, f"{keystone.url}/v3"
    region_id = f"glint-swift-{tag}"
    admin.post(f"{base}/regions", json={"region": {"id": region_id}})
    service = admin.post(f"{base}/services", json={"service": {
        "type": "object-store", "name": f"glint-swift-{tag}"}}).json()["service"]["id"]
    endpoint = admin.post(f"{base}/endpoints", json={"endpoint": {
        "service_id": service, "interface": "public", "region_id": region_id,
        "url": f"{keystone_proxy}/v1/AUTH_$(project_id)s"}}).json()["endpoint"]["id"]
    try:
        yield region_id
    finally:
        admin.delete(f"{base}/endpoints/{endpoint}", raise_exc=False)
        admin.delete(f"{base}/services/{service}", raise_exc=False)
        admin.delete(f"{base}/regions/{region_id}", raise_exc=False)


def _store(keystone: Keystone, region: str, container: str, password: str | None = None,
           create: bool = True) -> SwiftStore:
    member = keystone.personas["member"]
    return SwiftStore(auth_url=f"{keystone.url}/v3", auth_version="3", user=member.username,
                      key=member.password if password is None else password,
                      project_name=member.project_name, region_name=region,
                      container=container, create_container=create, segment_size=MiB,
                      retries=1)


def test_images_go_to_the_project_account_the_keystone_catalog_names(
        keystone: Keystone, region: str, keystone_proxy: str) -> None:
    container = f"glint-ks-{secrets.token_hex(4)}"
    store = _store(keystone, region, container)
    data = os.urandom(2 * MiB + 11)  # three segments: an SLO through the Keystone pipeline
    with store.writer("img-ks") as writer:
        writer.write(data)
        location = writer.commit()
    assert b"".join(store.read(location)) == data
    with store.connection() as conn:
        # The catalog's endpoint of the test's region, for the member's own project account.
        storage_url, _ = conn.get_auth()
        assert storage_url == f"{keystone_proxy}/v1/AUTH_{keystone.personas['member'].project_id}"
        assert [entry["name"] for entry in conn.get_container(container)[1]] == ["img-ks"]
    store.delete(location)
    assert list(store.locations()) == [] and store.remove_temporary_files() == 0
    with store.connection() as conn:
        for name in (container, f"{container}_segments"):
            conn.delete_container(name)


def test_a_wrong_password_stops_glint_at_start_up_without_showing_it(
        keystone: Keystone, region: str) -> None:
    wrong = f"not-{secrets.token_hex(8)}"
    with pytest.raises(errors.ConfigurationError) as refused:
        _store(keystone, region, "glint-ks-never", password=wrong)
    message = str(refused.value)
    assert "authentication failed" in message and "127.0.0.1:5000" in message
    assert wrong not in message
