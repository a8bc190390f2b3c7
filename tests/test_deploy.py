"""The deployment files: the container image (deploy/Dockerfile), the Kubernetes manifests
(deploy/kubernetes/) and the load balancer (deploy/haproxy/haproxy.cfg). No container engine or
cluster runs here: their linters check them (hadolint, kubernetes-validate with the schemas of
Kubernetes 1.28, `haproxy -c`), and these tests keep them in step with the process layout the
launcher starts and the suite tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from bot import balancer
from bot.launcher import ALL
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
BIN = Path(sys.executable).parent
# The demo page is the embedded profile's stand-in for the company's own site: not deployed.
DEPLOYED = set(ALL) - {"site"}
# the health URL path the launcher waits on for each process (bot.launcher.services)
HEALTH = {"rasa": "/", "actions": "/health", "desk": "/health"}


def _documents() -> list[dict]:
    return [d for f in MANIFESTS for d in yaml.safe_load_all(f.read_text()) if d]


def _deployments() -> dict[str, dict]:
    """Process name (the `python -m bot` command) -> its container."""
    out = {}
    for d in _documents():
        if d["kind"] == "Deployment":
            container = d["spec"]["template"]["spec"]["containers"][0]
            assert container["command"][:3] == ["python", "-m", "bot"], container["command"]
            out[container["command"][3]] = container
    return out


def test_the_dockerfile_passes_hadolint():
    result = subprocess.run([str(BIN / "hadolint"), str(ROOT / "deploy" / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_manifests_pass_kubernetes_validate():
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "--quiet",
                             "--kubernetes-version", "1.28", *map(str, MANIFESTS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_manifests_run_the_tested_process_layout():
    deployments = _deployments()
    assert set(deployments) == DEPLOYED
    # the settings' default ports (not the environment's: a test stack may have set it)
    defaults = {name: Settings.__fields__[f"{name}_url"].default for name in ("rasa", "desk")}
    defaults["actions"] = Settings.__fields__["action_server_url"].default
    ports = {name: urlparse(url).port for name, url in defaults.items()}
    for name, container in deployments.items():
        assert "readinessProbe" in container and "livenessProbe" in container, name
        if name == "worker":  # no port: the heartbeat's age
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["exec"]["command"] == [
                    "python", "-m", "bot", "worker-alive"]
            continue
        port = container["ports"][0]["containerPort"]
        assert port == ports[name], name
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == HEALTH[name], (name, probe)
        # secrets only from the environment, never in the manifests
        assert {"configMapRef": {"name": "sportello"}} in container["envFrom"]
        assert {"secretRef": {"name": "sportello-secrets"}} in container["envFrom"]
    replicated = {d["metadata"]["name"]: d["spec"]["replicas"] for d in _documents()
                  if d["kind"] == "Deployment"}
    assert replicated["sportello-rasa"] >= 2 and replicated["sportello-actions"] >= 2
    assert replicated["sportello-desk"] >= 2  # as tests/integration/test_replicas.py runs it


def test_the_manifests_and_the_image_set_only_real_settings():
    fields = {env.upper() for f in Settings.__fields__.values()
              for env in f.field_info.extra["env_names"]}
    config = next(d for d in _documents() if d["kind"] == "ConfigMap")
    assert set(config["data"]) <= fields, set(config["data"]) - fields
    assert not {"CUSTOMER_TOKEN_SECRET", "RASA_TOKEN", "ACTION_SERVER_TOKEN",
                "SPORTELLO_SECRET_KEY", "PG_PASSWORD", "RABBITMQ_PASSWORD",
                "DATABASE_URL"} & set(config["data"])
    assert config["data"]["SPORTELLO_PROFILE"] == "production"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for name in ("SPORTELLO_PROFILE", "SPORTELLO_VAR_DIR", "RASA_HOST", "ACTION_SERVER_HOST",
                 "DESK_HOST"):
        assert f"{name}=" in dockerfile and name in fields, name


def test_the_commands_of_the_manifests_exist():
    result = subprocess.run([sys.executable, "-m", "bot", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    commands = {c["command"][3] for c in _deployments().values()} | {"worker-alive", "migrate"}
    for command in commands:
        assert command in result.stdout, command


@pytest.mark.parametrize("replicas", [1, 3])
def test_the_balancer_configuration_is_valid_for_any_number_of_replicas(tmp_path, replicas):
    ports = tuple(range(20000, 20000 + replicas))
    layout = balancer.Layout(18000, 18001, 18002, ports, tuple(p + 100 for p in ports),
                             (18003,), 18004)
    config = balancer.write(layout, tmp_path / "haproxy.cfg")  # `haproxy -c` accepts it
    text = config.read_text()
    settings = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in settings if "$" in line]  # every placeholder filled
    for i, port in enumerate(ports, 1):
        assert f"server rasa{i} 127.0.0.1:{port} check" in text
        assert f"server actions{i} 127.0.0.1:{port + 100} check" in text
    assert balancer.stats_url(config) == "http://127.0.0.1:18004/stats;csv"


def test_an_invalid_balancer_configuration_is_refused(tmp_path, monkeypatch):
    broken = tmp_path / "template.cfg"
    broken.write_text(balancer.CONFIG.read_text().replace("balance roundrobin",
                                                         "balance no-such-algorithm", 1))
    monkeypatch.setattr(balancer, "CONFIG", broken)
    with pytest.raises(ValueError, match="HAProxy refuses"):
        balancer.write(balancer.Layout(18000, 18001, 18002, (20000,), (20100,), (18003,),
                                       18004), tmp_path / "haproxy.cfg")
