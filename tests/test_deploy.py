"""The ``deploy/`` folder, checked without Docker (``docker compose`` cannot run on this machine):

- ``compose.yaml`` parsed: the services and how they are wired (replicas stateless on the port nginx
  sends to, the page cache on the ``redis`` service, the extractor URL on the ``vllm`` service and
  its ``--served-model-name``), every ``ZI_ISAG_*`` variable a real setting, and the settings the
  defaults make valid;
- ``nginx.conf`` names the same replicas and Host, and a real ``nginx -t`` accepts it (where nginx is
  installed; the replica tests also run it in front of real replicas);
- the Dockerfile copies what ``pyproject.toml`` packages and starts the stateless server.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.balancers import nginx_path, runnable_config

from zi_isag_tool.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
REPLICAS = ("mcp-1", "mcp-2")
SERVED_MODEL = "zi-isag-extractor"
NOT_SETTINGS = {"ZI_ISAG_MCP_TOKEN"}  # read by mcp_server itself
_DEFAULT = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def _defaults(value: object) -> str:
    """``${NAME:-default}`` as compose expands it with NAME unset."""
    return _DEFAULT.sub(lambda m: m.group(2) or "", str(value))


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "mcp-1", "mcp-2", "lb", "vllm"}
    assert services["vllm"]["profiles"] == ["vllm"]  # optional: only with --profile vllm
    assert all("profiles" not in services[name] for name in ("redis", "mcp-1", "mcp-2", "lb"))
    assert services["redis"]["healthcheck"]["test"][-1] == "ping"
    assert "--maxmemory-policy" in _command(services["redis"])  # a cache: evicts instead of failing writes


def test_replicas_are_stateless_and_share_the_redis_cache(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    for name in REPLICAS:
        replica = services[name]
        command = _command(replica)
        assert command[:3] == ["python", "-m", "mcp_server"]
        assert "--stateless" in command and _option(command, "--transport") == "http"
        assert _option(command, "--host") == "0.0.0.0" and _option(command, "--port") == "8765"
        assert _option(command, "--allowed-host") == "zi-isag"
        assert [str(p) for p in replica["expose"]] == ["8765"]
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        env = replica["environment"]
        assert _defaults(env["ZI_ISAG_CACHE_URL"]).startswith("redis://redis:6379/")
        # Every ZI_ISAG_* variable is a setting (a typo would be silently ignored), and the defaults
        # make valid settings.
        fields = {f"ZI_ISAG_{name.upper()}" for name in Settings.model_fields}
        unknown = {key for key in env if key.startswith("ZI_ISAG_")} - fields - NOT_SETTINGS
        assert not unknown, unknown
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, _defaults(value))
            settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.cache_url is not None and settings.extractor == "embedding"
        assert settings.openai_base_url == "http://vllm:8000/v1"
    assert services["mcp-1"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["mcp-2"]["image"] == services["mcp-1"]["image"]


def test_vllm_serves_the_name_the_replicas_use(compose: dict[str, Any]) -> None:
    vllm = compose["services"]["vllm"]
    command = _command(vllm)
    assert _option(command, "--served-model-name") == SERVED_MODEL
    assert "--enable-prefix-caching" in command
    assert _option(command, "--model").startswith("/models/")
    assert [str(p) for p in vllm["expose"]] == ["8000"]
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    guide = (DEPLOY / "README.md").read_text(encoding="utf-8")
    assert f"ZI_ISAG_EXTRACTOR=openai:{SERVED_MODEL}" in guide


def test_load_balancer_fronts_both_replicas(compose: dict[str, Any]) -> None:
    lb = compose["services"]["lb"]
    assert lb["ports"] == ["127.0.0.1:8080:8080"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert set(lb["depends_on"]) == set(REPLICAS)
    conf = (DEPLOY / "nginx.conf").read_text(encoding="utf-8")
    upstream = re.search(r"upstream zi_isag_mcp \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+?)[ ;]", upstream.group(1)) == [f"{name}:8765" for name in REPLICAS]
    assert "listen 8080;" in conf and "proxy_pass http://zi_isag_mcp;" in conf
    assert "proxy_set_header Host zi-isag;" in conf  # what --allowed-host accepts
    assert "proxy_buffering off;" in conf  # SSE progress streams through


@pytest.mark.skipif(
    nginx_path() is None, reason="nginx is not installed (apt-get install -y nginx; .ci/run installs it)"
)
def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    conf = runnable_config(
        (DEPLOY / "nginx.conf").read_text(encoding="utf-8"), ["127.0.0.1:1", "127.0.0.1:2"], 1, tmp_path
    )
    (tmp_path / "nginx.conf").write_text(conf, encoding="utf-8")
    main = f"pid {tmp_path}/nginx.pid; error_log stderr;"
    checked = subprocess.run(
        [str(nginx_path()), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", main],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_dockerfile_installs_the_packages() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text(encoding="utf-8")
    packages = re.search(r"include = \[(.*?)\]", pyproject)
    assert packages is not None
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert f"COPY {package} ./{package}" in dockerfile, package
        assert f"!{package}/" in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert "torch==2.13.0" in dockerfile
    assert '"--stateless"' in dockerfile.splitlines()[-1]
