"""The Kubernetes manifests (deploy/kubernetes): rendered by `kubectl kustomize` as an
operator would, validated against the Kubernetes schemas offline (kubernetes-validate), and
read for the settings that matter: probes, security, graceful shutdown, the environment the
service's configuration really reads, and the network policy."""

from __future__ import annotations

from datetime import date

import base64
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import requests
import yaml

from service.cli import build_parser, example
from service.config import ConfigError, Settings, load_settings
from tests.servers import start_service, wait_healthy

ROOT = Path(__file__).parent.parent
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
FIELDS = {f"RPL_{name.upper()}" for name in Settings.model_fields}
# An older minor that a hospital's cluster may still run (1.31: the fields used here are all
# stable there, e.g. PodDisruptionBudget policy/v1, HPA autoscaling/v2), and the newest the
# validator knows: the manifests must hold for both.
KUBERNETES_VERSIONS = ("1.31", kubernetes_validate.utils.latest_version())
MIB = 1024 * 1024


def _kubectl() -> str:
    """kubectl from PATH; installed with apt-get when missing (CI runs as root)."""
    found = shutil.which("kubectl")
    problem = "apt-get is not available or this is not root"
    if not found and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600, check=False)
        done = subprocess.run(["apt-get", "install", "-y", "-qq", "kubectl"], env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        problem = (done.stderr or done.stdout)[-2000:]
        found = shutil.which("kubectl")
    if not found:
        pytest.fail(f"rendering the manifests needs kubectl (its built-in kustomize), and none could be installed:\n{problem}")
    return found


def render(folder: Path) -> list[dict]:
    done = subprocess.run([_kubectl(), "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(KUSTOMIZE / "base")


@pytest.fixture(scope="module")
def overlay() -> list[dict]:
    return render(KUSTOMIZE / "overlays" / "example")


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_spec(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def container(docs: list[dict]) -> dict:
    (only,) = pod_spec(docs)["containers"]
    return only


def serve_args(docs: list[dict]):
    command = container(docs)["command"] + container(docs).get("args", [])
    assert command[:2] == ["rpl-cds", "serve"], command
    return build_parser().parse_args(command[1:])  # exits (fails the test) on an unknown option


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # only what this test understands
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# -- rendering and schemas -------------------------------------------------------------
@pytest.mark.parametrize("which", ["base", "overlay"])
def test_rendered_manifests_validate_against_the_kubernetes_schemas(which, request):
    docs = request.getfixturevalue(which)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "ConfigMap", "ServiceAccount"} <= kinds
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            try:  # strict: a misspelt or misplaced field is an error, not silently dropped
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{which}: {doc['kind']}/{doc['metadata']['name']} is not valid for Kubernetes {version}: "
                            f"{exc.message} at {'/'.join(map(str, exc.path))}")


def test_every_configmap_and_secret_the_pods_use_is_rendered(overlay):
    names = {(d["kind"], d["metadata"]["name"]) for d in overlay}
    spec = pod_spec(overlay)
    used = {("ConfigMap", s["configMapRef"]["name"]) for s in container(overlay).get("envFrom", []) if "configMapRef" in s}
    used |= {("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container(overlay)["env"]
             if "secretKeyRef" in e.get("valueFrom", {})}
    used |= {("ConfigMap", v["configMap"]["name"]) for v in spec["volumes"] if "configMap" in v}
    assert used and used <= names, used - names
    assert any(kind == "Secret" for kind, _ in used)


def test_the_overlay_puts_everything_in_its_namespace_and_image(overlay):
    assert one(overlay, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in overlay:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "rpl-cds", doc["metadata"]["name"]
    assert container(overlay)["image"] == "registry.hospital.example/rpl-cds:0.1.0"


# -- the Deployment ----------------------------------------------------------------------
def test_probes_use_the_service_health_endpoints(base):
    main = container(base)
    port = main["ports"][0]
    assert port == {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    assert serve_args(base).port == 8080 and serve_args(base).host == "0.0.0.0"
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30  # a slow start is not killed


def test_pods_run_unprivileged_with_a_read_only_root(base):
    spec, main = pod_spec(base), container(base)
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"--uid {spec['securityContext']['runAsUser']} " in dockerfile  # the image's own user
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    assert one(base, "ServiceAccount")["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == one(base, "ServiceAccount")["metadata"]["name"]
    context = main["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # The one writable place: gunicorn's worker heartbeat files go to the temporary folder.
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    tmp = next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"]["name"])
    assert "emptyDir" in tmp and not mounts["/tmp"].get("readOnly")
    assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")


def test_the_server_writes_only_to_the_temporary_folder(base, tmp_path):
    """readOnlyRootFilesystem: `rpl-cds serve` as the container runs it (its home and working
    folder on the read-only root, TMPDIR the emptyDir) writes nothing but there, calls answered."""
    home, workdir, tmp = tmp_path / "home", tmp_path / "workdir", tmp_path / "tmp"
    for folder in (home, workdir, tmp):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RPL_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(tmp), RPL_AUTH_ENABLED="false",
               RPL_DATABASE_URL=f"sqlite:///{tmp_path / 'db' / 'feedback.sqlite3'}")  # PostgreSQL in the pods
    (tmp_path / "db").mkdir()
    args = serve_args(base)
    instance = start_service(env, tmp_path / "logs", workers=args.workers, cwd=workdir,
                             extra_args=("--threads", str(args.threads), "--graceful-timeout", str(args.graceful_timeout)))
    try:
        wait_healthy(instance)
        response = requests.post(f"{instance.url}/cds-services/rpl-patient-view", json=example("patient-view", date.today()), timeout=30)
        assert response.status_code == 200
    finally:
        instance.stop()
    assert list(home.iterdir()) == [] and list(workdir.iterdir()) == []
    assert "Read-only file system" not in instance.stderr.read_text() and "Control server" not in instance.stderr.read_text()


def test_no_service_link_variables_mix_with_the_settings(base):
    """Kubernetes would inject RPL_CDS_SERVICE_HOST etc. for the Service 'rpl-cds': RPL_ names
    the service's settings do not know."""
    assert one(base, "Service")["metadata"]["name"].upper().replace("-", "_").startswith("RPL_")
    assert pod_spec(base)["enableServiceLinks"] is False


def test_the_environment_holds_only_real_settings(overlay):
    main = container(overlay)
    names = {e["name"] for e in main["env"]}
    configmaps = {d["metadata"]["name"]: d for d in overlay if d["kind"] == "ConfigMap"}
    for source in main["envFrom"]:
        names |= set(configmaps[source["configMapRef"]["name"]]["data"])
    settings = {n for n in names if n.startswith("RPL_")}
    assert settings <= FIELDS, settings - FIELDS
    assert names - settings == {"TMPDIR"}
    secret_keys = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in main["env"] if "valueFrom" in e}
    assert secret_keys == {"RPL_DATABASE_URL": "RPL_DATABASE_URL", "RPL_REPLAY_CACHE_URL": "RPL_REPLAY_CACHE_URL"}
    assert {"RPL_PUBLIC_BASE_URL", "RPL_AUTH_ISSUERS_FILE", "RPL_FHIR_SERVER_ALLOWLIST"} <= settings


def _environment(docs: list[dict], tmp_path: Path) -> dict[str, str]:
    """What the container's process gets, with the mounted issuer file copied to tmp_path."""
    main, spec = container(docs), pod_spec(docs)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    env: dict[str, str] = {}
    for source in main["envFrom"]:
        env.update(by_name["ConfigMap", source["configMapRef"]["name"]]["data"])
    for item in main["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            secret = by_name["Secret", ref["name"]]
            assert secret["type"] == "Opaque"
            env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    for volume in spec["volumes"]:
        if "configMap" in volume:
            configmap = by_name["ConfigMap", volume["configMap"]["name"]]
            for item in volume["configMap"]["items"]:
                mounted = f"{mounts[volume['name']]}/{item['path']}"
                local = tmp_path / item["path"]
                local.write_text(configmap["data"][item["key"]], encoding="utf-8")
                env = {k: (str(local) if v == mounted else v) for k, v in env.items()}
    return env


def test_the_overlay_configuration_passes_the_service_checks(overlay, tmp_path, monkeypatch):
    env = _environment(overlay, tmp_path)
    assert Path(env["RPL_AUTH_ISSUERS_FILE"]).parent == tmp_path, "the issuer file is the one mounted"
    for key in list(os.environ):
        if key.startswith("RPL_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        settings = load_settings()
    except ConfigError as exc:
        pytest.fail(f"the example overlay gives an invalid configuration:\n{exc}")
    assert settings.auth_enabled is True and settings.trusted_issuers
    assert settings.public_base_url.startswith("https://")
    assert settings.database_url.startswith("postgresql+psycopg://")
    # Several pods (and 2 workers each) must share one memory of the JWT ids already used.
    assert settings.replay_cache_url.startswith("redis://")
    assert serve_args(overlay).workers >= 2
    if "fhir_max_calls_per_worker" in Settings.model_fields:  # calls waiting on FHIR servers leave threads free
        assert serve_args(overlay).threads > settings.fhir_max_calls_per_worker


def test_graceful_shutdown_fits_the_termination_grace_period(base):
    spec, main = pod_spec(base), container(base)
    pause = main["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    graceful = serve_args(base).graceful_timeout
    # Kubernetes: preStop, then SIGTERM; SIGKILL when the grace period (counted from the
    # start of preStop) is over. gunicorn must finish its calls before that.
    assert int(pause[1]) + graceful < spec["terminationGracePeriodSeconds"]
    assert int(pause[1]) >= 5  # time for the endpoints to be removed from the Service and ingress
    strategy = one(base, "Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_resources_fit_the_measured_memory(base):
    """README: about 90 MiB per worker in the benchmark, full caches at most 22 MiB + 32 MB more,
    the gunicorn master about 90 MiB (it imports the service); the worst case measured is about
    550 MiB per worker (8 concurrent calls with 4.9 MB bodies, Security, "Memory per worker")."""
    resources = container(base)["resources"]
    args = serve_args(base)
    limit = _quantity(resources["limits"]["memory"])
    request = _quantity(resources["requests"]["memory"])
    assert (90 + args.workers * (90 + 22 + 32)) * MIB <= request <= limit
    worst_per_worker = 550 * args.threads / 8  # the measurement was with 8 threads, each holding a 4.9 MB body
    assert limit >= (90 + args.workers * worst_per_worker) * MIB, "a worker at its worst must not be OOM-killed"
    assert _quantity(resources["requests"]["cpu"]) <= _quantity(resources["limits"]["cpu"])
    assert _quantity(resources["limits"]["cpu"]) >= args.workers  # each worker can use its core


def _quantity(value: str | int) -> float:
    value = str(value)
    units = {"Mi": MIB, "Gi": 1024 * MIB, "m": 0.001}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


# -- scaling and availability ----------------------------------------------------------------
def test_three_replicas_spread_and_autoscaled_on_cpu(base):
    deployment = one(base, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    hpa = one(base, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert hpa["minReplicas"] == 3 and hpa["maxReplicas"] > 3
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in container(base)["resources"]["requests"]  # Utilization is a share of the request
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"], labels)
    (spread,) = pod_spec(base)["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and selects(spread["labelSelector"], labels)


def test_service_and_disruption_budget_select_the_pods(base):
    labels = one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(base, "Service")["spec"]
    assert all(labels.get(k) == v for k, v in service["selector"].items())
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    pdb = one(base, "PodDisruptionBudget")["spec"]
    assert selects(pdb["selector"], labels)
    assert pdb["maxUnavailable"] == 1


# -- the network ------------------------------------------------------------------------------
def test_network_policy_lets_in_only_the_ingress_controller(base):
    labels = one(base, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policy = one(base, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"], labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}  # not the pods' own labels
    assert rule["ports"] == [{"protocol": "TCP", "port": "http"}]
    (dns,) = policy["egress"]  # the base may only resolve names
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}


def test_overlay_opens_egress_to_postgres_redis_fhir_and_the_issuers(overlay):
    labels = one(overlay, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policies = [d["spec"] for d in overlay if d["kind"] == "NetworkPolicy"]
    assert all(selects(p["podSelector"], labels) for p in policies)
    ports = {port["port"] for p in policies for rule in p.get("egress", []) for port in rule.get("ports", [])}
    assert {53, 5432, 6379, 443} <= ports
    for policy in policies:
        for rule in policy.get("egress", []):
            assert rule.get("to") and rule.get("ports"), "every egress rule names its peer and port"


def test_ingress_terminates_tls_and_accepts_the_largest_request(overlay):
    ingress = one(overlay, "Ingress")
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    settings_map = next(d for d in overlay if d["kind"] == "ConfigMap" and "RPL_PUBLIC_BASE_URL" in d.get("data", {}))
    assert settings_map["data"]["RPL_PUBLIC_BASE_URL"] == f"https://{host}"  # the JWT audience is what the EHR calls
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert _quantity(size.replace("m", "Mi")) >= Settings.model_fields["max_body_bytes"].default
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"] == {"name": one(overlay, "Service")["metadata"]["name"], "port": {"name": "http"}}
    # Only the CDS Hooks endpoints are public: /metrics has no credential, /admin/ is internal.
    assert (path["path"], path["pathType"]) == ("/cds-services", "Prefix")


def test_readme_deploy_commands_name_real_folders():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = readme.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", deploy, flags=re.DOTALL)
    commands = [shlex.split(line, comments=True) for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    kubectl = [argv for argv in commands if argv and argv[0] == "kubectl"]
    folders = {word.split("=", 1)[-1] for argv in kubectl for word in argv if "deploy/kubernetes" in word}
    assert {"kustomize", "apply"} <= {argv[1] for argv in kubectl}, "the README shows how to render and apply"
    for folder in folders:
        assert (ROOT / folder / "kustomization.yaml").is_file(), folder
    assert "deploy/kubernetes/overlays/example" in folders
