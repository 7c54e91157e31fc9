"""deploy/: every manifest parses and has the fields its consumer requires (KubeRay, the Dagster Helm chart,
Docker), and everything it names inside Forge exists: modules, CLI commands and options, settings, pinned
versions, files the Dockerfile copies. (No schema validator: the KubeRay CRDs and the chart's values schema are
not available offline.)"""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from forge_pipeline.settings import DAGSTER_YAML

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
RAY_EXTRA = PYPROJECT["project"]["optional-dependencies"]["ray"]
RAY_VERSION = next(p.split("==")[1] for p in RAY_EXTRA if p.startswith("ray["))
MANIFESTS = sorted(DEPLOY.rglob("*.yaml"))


def _documents(path: Path) -> list:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _objects(kind: str) -> list[dict]:
    return [doc for path in MANIFESTS for doc in _documents(path) if isinstance(doc, dict) and doc.get("kind") == kind]


def _module_defines(module: str, name: str) -> bool:
    """`module` is a file of this repository defining `name` (read, not imported: Ray is an optional extra)."""
    path = REPO / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = REPO / module.replace(".", "/") / "__init__.py"
    if not path.is_file():
        return False
    tree = ast.parse(path.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    return name in defined


def _forge_setting(variable: str) -> None:
    """FORGE_SECTION__FIELD (or FORGE_FIELD) names a real setting."""
    from forge_pipeline.settings import ForgeSettings

    parts = variable.removeprefix("FORGE_").lower().split("__")
    model = ForgeSettings
    for part in parts:
        assert part in model.model_fields, f"{variable}: no setting {part!r}"
        model = model.model_fields[part].annotation
    return None


def _env_names(node) -> set[str]:
    """Every FORGE_* variable a manifest sets: env lists, K=V strings, env_vars maps, serveConfigV2 text."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("FORGE_"):
                found.add(key)
            if key == "name" and isinstance(value, str) and value.startswith("FORGE_"):
                found.add(value)
            found |= _env_names(value)
    elif isinstance(node, list):
        for item in node:
            found |= _env_names(item)
    elif isinstance(node, str):
        found |= set(re.findall(r"\b(FORGE_[A-Z_]+)\s*[=:]", node))
    return found


def _pod_specs(node) -> list[dict]:
    """Every pod template spec (a dict with `containers`) anywhere in a manifest."""
    if isinstance(node, dict):
        own = [node] if "containers" in node else []
        return own + [spec for value in node.values() for spec in _pod_specs(value)]
    if isinstance(node, list):
        return [spec for item in node for spec in _pod_specs(item)]
    return []


def _check_ray_cluster_spec(spec: dict, where: str) -> None:
    assert spec["rayVersion"] == RAY_VERSION, f"{where}: rayVersion {spec['rayVersion']} != the `ray` extra's pin"
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert head["template"]["spec"]["containers"][0]["image"]
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and isinstance(group["rayStartParams"], dict)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], f"{where}: {group['groupName']}"
        assert group["template"]["spec"]["containers"][0]["image"]


def _check_serve_config(config: dict, where: str) -> None:
    assert config["applications"], where
    for app in config["applications"]:
        assert app["name"] and app["route_prefix"].startswith("/")
        module, _, attribute = app["import_path"].partition(":")
        assert _module_defines(module, attribute), f"{where}: import_path {app['import_path']} does not exist"


def test_every_manifest_parses_and_the_expected_ones_exist():
    names = {p.relative_to(DEPLOY).as_posix() for p in MANIFESTS}
    assert {
        "helm/dagster-values.yaml",
        "ray/rayservice.yaml",
        "ray/raycluster.yaml",
        "ray/rayjob-train.yaml",
        "ray/serve_config.yaml",
        "storage.yaml",
    } <= names
    for path in MANIFESTS:
        documents = _documents(path)
        assert documents, path
        for doc in documents:
            if "kind" in doc:  # a Kubernetes object
                assert doc["apiVersion"] and doc["metadata"]["name"] and doc["metadata"]["namespace"], path


def test_kuberay_manifests_have_their_required_fields():
    services, clusters, jobs = _objects("RayService"), _objects("RayCluster"), _objects("RayJob")
    assert services and clusters and jobs
    for service in services:
        assert service["apiVersion"] == "ray.io/v1"
        _check_serve_config(yaml.safe_load(service["spec"]["serveConfigV2"]), "RayService serveConfigV2")
        _check_ray_cluster_spec(service["spec"]["rayClusterConfig"], "RayService")
    for cluster in clusters:
        assert cluster["apiVersion"] == "ray.io/v1"
        _check_ray_cluster_spec(cluster["spec"], "RayCluster")
        gpu = [g for g in cluster["spec"]["workerGroupSpecs"] if "nvidia.com/gpu" in str(g)]
        assert gpu and all(g["maxReplicas"] == 1 for g in gpu)  # one training at a time
    for job in jobs:
        assert job["apiVersion"] == "ray.io/v1"
        _check_ray_cluster_spec(job["spec"]["rayClusterSpec"], "RayJob")
        yaml.safe_load(job["spec"]["runtimeEnvYAML"])
        _check_forge_command(job["spec"]["entrypoint"])


def _check_forge_command(entrypoint: str) -> None:
    """The entrypoint is a `forge` command with options that command has; the shared options (`--data-root`,
    `--config`) come before the command, each with its value."""
    import typer.main

    from forge_pipeline.cli import app

    words = shlex.split(entrypoint)
    assert words[0] == "forge", entrypoint
    group = typer.main.get_command(app)
    with_value = {opt for param in group.params if not getattr(param, "is_flag", False) for opt in param.opts}
    rest = words[1:]
    while rest and rest[0] in with_value:
        rest = rest[2:]  # a shared option and its value
    assert rest, f"{entrypoint}: no command"
    command = group.commands.get(rest[0])
    assert command is not None, f"{entrypoint}: no `forge {rest[0]}` command"
    options = {opt for param in command.params for opt in param.opts}
    for word in rest[1:]:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{entrypoint}: `forge {rest[0]}` has no option {word}"


def test_serve_config_file_names_a_real_application_builder():
    (config,) = _documents(DEPLOY / "ray" / "serve_config.yaml")
    _check_serve_config(config, "serve_config.yaml")
    assert config["http_options"]["port"]


def test_dagster_helm_values_for_the_official_chart():
    (values,) = _documents(DEPLOY / "helm" / "dagster-values.yaml")
    user_code = values["dagster-user-deployments"]
    assert user_code["enabled"] is True
    for deployment in user_code["deployments"]:
        assert deployment["name"] and deployment["image"]["repository"] and deployment["image"]["tag"]
        assert isinstance(deployment["port"], int)
        args = deployment["dagsterApiGrpcArgs"]
        module = args[args.index("-m") + 1]
        assert module == PYPROJECT["tool"]["dagster"]["module_name"] and _module_defines(module, "defs")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    # One training at a time: the training assets' pool gets one slot, at op granularity (as in dagster.yaml).
    local = yaml.safe_load(DAGSTER_YAML.read_text())["concurrency"]["pools"]
    assert values["concurrency"]["pools"] == {
        "defaultLimit": local["default_limit"],
        "granularity": local["granularity"],
    }
    assert 'pool="forge/training"' in (REPO / "forge_pipeline" / "defs" / "train" / "assets.py").read_text()


def test_every_volume_claim_and_forge_setting_named_exists():
    claims = {pvc["metadata"]["name"] for pvc in _objects("PersistentVolumeClaim")}
    for pvc in _objects("PersistentVolumeClaim"):
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["resources"]["requests"]["storage"]
    variables = set()
    for path in MANIFESTS:
        for doc in _documents(path):
            variables |= _env_names(doc)
            for spec in _pod_specs(doc):
                for volume in spec.get("volumes", []):
                    if "persistentVolumeClaim" in volume:
                        assert volume["persistentVolumeClaim"]["claimName"] in claims, path
    assert "FORGE_RUNTIME__ENGINE" in variables and "FORGE_RUNTIME__SERVE_MAX_REPLICAS" in variables
    for variable in sorted(variables):
        _forge_setting(variable)


def test_dockerfile_copies_real_paths_and_installs_the_ray_extra():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _target = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    assert '".[ray]"' in text and "ray" in PYPROJECT["project"]["optional-dependencies"]
    dagster_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("dagster=="))
    patch = dagster_pin.rsplit(".", 1)[1]
    for library in re.findall(r"dagster-(?:k8s|postgres)==(\S+)", text):
        assert library.rsplit(".", 1)[1] == patch, "Dagster libraries are released with the core's patch number"
    command = yaml.safe_load(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert (
        command[:3] == ["dagster", "api", "grpc"] and command[command.index("-m") + 1] == "forge_pipeline.definitions"
    )


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_no_machine_specific_paths(path):
    text = path.read_text()
    # A developer's checkout, home or scratch folder: paths that exist only on the machine that wrote the file.
    assert not re.search(r"/(?:work|home|tmp)/", text), re.search(r"/(?:work|home|tmp)/", text)
