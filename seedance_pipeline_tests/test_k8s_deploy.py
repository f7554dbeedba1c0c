"""deploy/k8s/values.yaml and the Dockerfile, checked without a cluster, helm or a docker engine.

There is no helm binary in this environment, so the values are validated with ``jsonschema`` against the
parts of the official chart's ``helm/dagster/values.schema.json`` (dagster-io/dagster, Apache-2.0) that they
touch: the definitions below are transcribed from it (the file itself is not vendored), with the chart's
``required`` and ``additionalProperties: false`` where it has them. Then the instance config the chart
renders from these values (its configmap-instance template: run coordinator, sensors, telemetry, plus
``additionalInstanceConfig`` appended verbatim) is rebuilt here and checked with Dagster's own instance
schema and against deploy/dagster.yaml, section by section.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from seedance_pipeline.providers import ADAPTER_CLASSES, PROVIDERS
from seedance_pipeline_tests.test_deploy_config import DEPLOY_YAML

REPO = Path(__file__).resolve().parents[1]
VALUES = REPO / "deploy" / "k8s" / "values.yaml"
K8S_README = REPO / "deploy" / "k8s" / "README.md"
DOCKERFILE = REPO / "Dockerfile"

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object"}
_NAMED = {"type": "object", "properties": {"name": _STR}, "required": ["name"]}  # SecretEnvSource / ConfigMapEnvSource
PULL_POLICY = {"enum": ["Always", "IfNotPresent", "Never"], "type": "string"}
IMAGE = {
    "type": "object",
    "properties": {"repository": _STR, "tag": {"type": ["string", "integer", "null"]}, "pullPolicy": PULL_POLICY},
    "required": ["repository", "pullPolicy"],
}
ENV = {"anyOf": [{"type": "object", "additionalProperties": _STR}, {"type": "array", "items": _OBJ}]}

CHART_SUBSCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "global": {
            "type": "object",
            "properties": {
                "postgresqlSecretName": _STR,
                "dagsterHome": _STR,
                "serviceAccountName": _STR,
                "celeryConfigSecretName": _STR,
            },
        },
        "generatePostgresqlPasswordSecret": _BOOL,
        "dagster-user-deployments": {
            "type": "object",
            "properties": {
                "enabled": _BOOL,
                "enableSubchart": _BOOL,
                "imagePullSecrets": {"type": "array"},
                "deployments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": _STR,
                            "image": IMAGE,
                            "dagsterApiGrpcArgs": {"type": "array", "items": _STR},
                            "codeServerArgs": {"type": "array", "items": _STR},
                            "includeConfigInLaunchedRuns": {
                                "type": "object",
                                "properties": {"enabled": _BOOL},
                                "required": ["enabled"],
                            },
                            "deploymentNamespace": _STR,
                            "port": _INT,
                            "env": ENV,
                            "envConfigMaps": {"type": "array", "items": _NAMED},
                            "envSecrets": {"type": "array", "items": _NAMED},
                            "annotations": _OBJ,
                            "nodeSelector": _OBJ,
                            "affinity": _OBJ,
                            "tolerations": {"type": "array"},
                            "podSecurityContext": _OBJ,
                            "securityContext": _OBJ,
                            "resources": _OBJ,
                            "livenessProbe": _OBJ,
                            "readinessProbe": _OBJ,
                            "startupProbe": _OBJ,
                            "labels": {"type": "object", "additionalProperties": _STR},
                            "volumeMounts": {"type": "array"},
                            "volumes": {"type": "array"},
                            "schedulerName": _STR,
                            "initContainers": {"type": "array"},
                            "sidecarContainers": {"type": "array"},
                        },
                        "required": ["name", "image", "port"],
                    },
                },
            },
        },
        "runLauncher": {
            "type": "object",
            "properties": {
                "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
                "config": {
                    "type": "object",
                    "properties": {
                        "k8sRunLauncher": {
                            "type": "object",
                            "properties": {
                                "image": {"anyOf": [IMAGE, {"type": "null"}]},
                                "imagePullPolicy": PULL_POLICY,
                                "jobNamespace": {"type": ["string", "null"]},
                                "loadInclusterConfig": _BOOL,
                                "kubeconfigFile": {"type": ["string", "null"]},
                                "envConfigMaps": {"type": "array", "items": _NAMED},
                                "envSecrets": {"type": "array", "items": _NAMED},
                                "envVars": {"type": "array", "items": _STR},
                                "volumeMounts": {"type": "array"},
                                "volumes": {"type": "array"},
                                "labels": {"type": ["object", "null"]},
                                "failPodOnRunFailure": {"type": ["boolean", "null"]},
                                "resources": {"type": ["object", "null"]},
                                "schedulerName": {"type": ["string", "null"]},
                                "securityContext": {"type": ["object", "null"]},
                                "runK8sConfig": {"type": ["object", "null"]},
                            },
                            "required": [
                                "imagePullPolicy",
                                "loadInclusterConfig",
                                "envConfigMaps",
                                "envSecrets",
                                "envVars",
                                "volumeMounts",
                                "volumes",
                            ],
                            "additionalProperties": False,
                        }
                    },
                },
            },
            "required": ["type", "config"],
            "additionalProperties": False,
            "if": {"properties": {"type": {"const": "K8sRunLauncher"}}},
            "then": {"properties": {"config": {"required": ["k8sRunLauncher"]}}},
        },
        "postgresql": {
            "type": "object",
            "properties": {
                "image": _OBJ,
                "enabled": _BOOL,
                "postgresqlHost": _STR,
                "postgresqlUsername": _STR,
                "postgresqlPassword": _STR,
                "postgresqlDatabase": _STR,
                "postgresqlParams": _OBJ,
                "postgresqlScheme": _STR,
                "service": {"type": "object", "properties": {"port": _INT}, "required": ["port"]},
            },
        },
        "dagsterDaemon": {
            "type": "object",
            "properties": {
                "enabled": _BOOL,
                "image": IMAGE,
                "heartbeatTolerance": _INT,
                "env": ENV,
                "envConfigMaps": {"type": "array"},
                "envSecrets": {"type": "array"},
                "deploymentLabels": _OBJ,
                "labels": _OBJ,
                "nodeSelector": _OBJ,
                "affinity": _OBJ,
                "tolerations": {"type": "array"},
                "podSecurityContext": _OBJ,
                "securityContext": _OBJ,
                "resources": _OBJ,
                "livenessProbe": _OBJ,
                "readinessProbe": _OBJ,
                "startupProbe": _OBJ,
                "annotations": _OBJ,
                "runMonitoring": _OBJ,
                "runRetries": _OBJ,
                "schedulerName": {"type": ["string", "null"]},
                "volumeMounts": {"type": ["array", "null"]},
                "volumes": {"type": ["array", "null"]},
                "initContainerResources": {"type": ["object", "null"]},
                "sensors": {
                    "type": "object",
                    "properties": {
                        "useThreads": _BOOL,
                        "numWorkers": {"type": ["integer", "null"]},
                        "numSubmitWorkers": {"type": ["integer", "null"]},
                    },
                    "required": ["useThreads"],
                },
                "schedules": {"type": "object", "required": ["useThreads"]},
                "runCoordinator": {
                    "type": "object",
                    "properties": {
                        "enabled": _BOOL,
                        "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                        "config": {
                            "type": "object",
                            "properties": {
                                "queuedRunCoordinator": {
                                    "type": "object",
                                    "properties": {
                                        "maxConcurrentRuns": {"type": ["integer", "object", "null"]},
                                        "tagConcurrencyLimits": {"type": ["array", "null"]},
                                        "dequeueIntervalSeconds": {"type": ["integer", "object", "null"]},
                                        "dequeueNumWorkers": {"type": ["integer", "object", "null"]},
                                        "dequeueUseThreads": {"type": ["boolean", "null"]},
                                        "blockOpConcurrencyLimitedRuns": {"type": ["object", "null"]},
                                    },
                                    "additionalProperties": False,
                                }
                            },
                        },
                    },
                    "required": ["enabled", "type", "config"],
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        "telemetry": {
            "type": "object",
            "properties": {"enabled": _BOOL},
            "required": ["enabled"],
            "additionalProperties": False,
        },
        "additionalInstanceConfig": _OBJ,
    },
}

# The top-level keys the chart's instance template writes itself, given these values (so additionalInstanceConfig
# must not repeat them: YAML would carry the key twice).
CHART_RENDERED = {
    "scheduler",
    "schedule_storage",
    "run_launcher",
    "run_storage",
    "event_log_storage",
    "run_coordinator",
    "compute_logs",
    "python_logs",
    "telemetry",
}


def _values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def _deploy() -> dict:
    return yaml.safe_load(DEPLOY_YAML.read_text())


def test_values_validate_against_the_charts_schema():
    jsonschema.Draft7Validator.check_schema(CHART_SUBSCHEMA)
    jsonschema.validate(_values(), CHART_SUBSCHEMA)


@pytest.mark.parametrize(
    "path, bad",
    [
        (("runLauncher", "type"), "K8sLauncher"),
        (("runLauncher", "config", "k8sRunLauncher", "envSecrets"), "seedance-provider-keys"),
        (("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "tagLimits"), []),
        (("dagster-user-deployments", "deployments", 0, "port"), "3030"),
    ],
)
def test_schema_check_catches_a_broken_copy(path, bad):
    values = copy.deepcopy(_values())
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, CHART_SUBSCHEMA)


def _rendered_instance(values: dict) -> dict:
    """What the chart's configmap-instance template makes of the parts these values set (storage aside)."""
    daemon = values["dagsterDaemon"]
    qrc = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    names = {
        "maxConcurrentRuns": "max_concurrent_runs",
        "tagConcurrencyLimits": "tag_concurrency_limits",
        "dequeueIntervalSeconds": "dequeue_interval_seconds",
        "dequeueUseThreads": "dequeue_use_threads",
        "dequeueNumWorkers": "dequeue_num_workers",
    }
    rendered = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {names[k]: v for k, v in qrc.items()},
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    if daemon["sensors"]["useThreads"]:
        rendered["sensors"] = {"use_threads": True, "num_workers": daemon["sensors"]["numWorkers"]}
    extra = values["additionalInstanceConfig"]
    duplicated = set(extra) & (CHART_RENDERED | set(rendered))
    assert not duplicated, f"additionalInstanceConfig repeats keys the chart renders: {duplicated}"
    if daemon["runMonitoring"]["enabled"]:
        assert "run_monitoring" not in extra
    if daemon["runRetries"]["enabled"]:
        assert "run_retries" not in extra
    return {**rendered, **extra}


def test_chart_renders_the_same_instance_settings_as_deploy_yaml(tmp_path):
    rendered = _rendered_instance(_values())
    deploy = _deploy()
    for section in ("concurrency", "run_retries", "run_monitoring", "sensors", "backfills", "telemetry"):
        assert rendered[section] == deploy[section], section
    assert rendered["run_coordinator"]["config"] == deploy["run_coordinator"]["config"]
    # And Dagster's own schema accepts the rendered instance, with the storage the chart renders: dagster-postgres'
    # own three classes (the chart has no setting for the event log's class, so on Kubernetes the event log is
    # the stock one, not deploy/dagster.yaml's pooled one: deploy/k8s/README.md says so).
    db = deploy["run_storage"]["config"]
    for part, module, cls in (
        ("run_storage", "run_storage", "PostgresRunStorage"),
        ("event_log_storage", "event_log", "PostgresEventLogStorage"),
        ("schedule_storage", "schedule_storage", "PostgresScheduleStorage"),
    ):
        rendered[part] = {"module": f"dagster_postgres.{module}", "class": cls, "config": db}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["runs"]["tag_concurrency_limits"][0]["key"] == "seedance/provider"


def test_values_keep_secrets_in_kubernetes_secrets():
    values = _values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    secret_like = re.compile(r"KEY|SECRET|PASSWORD|TOKEN", re.I)
    assert not [k for k in deployment["env"] if secret_like.search(k)]
    assert values["postgresql"]["postgresqlPassword"] == ""
    assert values["generatePostgresqlPasswordSecret"] is False and values["global"]["postgresqlSecretName"]
    secrets = {s["name"] for s in deployment["envSecrets"]}
    assert secrets == {s["name"] for s in values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    # The README tells how to create each secret with the variable names the code reads.
    readme = K8S_README.read_text()
    for name in secrets | {values["global"]["postgresqlSecretName"]}:
        assert f"create secret generic {name}" in readme, name
    for provider in PROVIDERS:
        assert f"--from-literal={ADAPTER_CLASSES[provider].env_key}=" in readme
    assert "--from-literal=postgresql-password=" in readme
    assert deployment["env"]["SEEDANCE_STORAGE_URL"].startswith("s3://")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlScheme"] == _deploy()["run_storage"]["config"]["postgres_db"]["scheme"]


# -- Dockerfile ---------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def test_dockerfile_builds_the_code_server_image():
    ins = _instructions()
    ops = [op for op, _ in ins]
    assert ins[0] == ("FROM", "python:3.11-slim")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    module = pyproject["tool"]["dagster"]["module_name"]
    # Installs the package with what runs on Kubernetes need (instance storage + run launcher).
    installs = [rest for op, rest in ins if op == "RUN" and "pip install" in rest]
    assert any("'.[k8s]'" in r for r in installs), installs
    # The locked dependencies install in a layer of their own, before any source is copied; the simulator's
    # and the webserver's extras are not in the image.
    lock_install = next(
        i for i, (op, rest) in enumerate(ins) if op == "RUN" and "uv.lock" not in rest and "-r " in rest
    )
    assert "--frozen" in ins[lock_install][1] and "--extra k8s" in ins[lock_install][1]
    before = " ".join(rest for op, rest in ins[:lock_install] if op == "COPY")
    assert "uv.lock" in before and "pyproject.toml" in before and "seedance_pipeline" not in before
    assert not re.search(r"--extra (simulator|ui)\b|\[.*(simulator|ui).*\]", " ".join(installs))
    extras = pyproject["project"]["optional-dependencies"]
    dagster_pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("dagster=="))
    assert dagster_pin == "dagster==1.13.27"
    assert "dagster-k8s==0.29.27" in extras["k8s"] and "dagster-postgres==0.29.27" in extras["postgres"]
    # Everything the package's install needs is copied before it (pyproject names README.md as the readme).
    package_install = next(i for i, (op, rest) in enumerate(ins) if op == "RUN" and "'.[k8s]'" in rest)
    copied = " ".join(rest for op, rest in ins[:package_install] if op == "COPY")
    for needed in ("pyproject.toml", "README.md", "seedance_pipeline"):
        assert needed in copied, needed
    # Runs as an unprivileged user from the first USER on, and no RUN after it.
    user_at = ops.index("USER")
    assert ins[user_at][1] not in ("root", "0") and "RUN" not in ops[user_at:]
    # The gRPC code server on 0.0.0.0:3030, exec form, as the Helm values expect.
    cmd = yaml.safe_load(next(rest for op, rest in ins if op == "CMD"))
    assert cmd == ["dagster", "code-server", "start", "-m", module, "-h", "0.0.0.0", "-p", "3030"]
    assert ("EXPOSE", "3030") in ins
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    assert deployment["port"] == 3030 and deployment["codeServerArgs"] == ["-m", module]
    # No secret in the image.
    env_names = [w.split("=")[0] for op, rest in ins if op == "ENV" for w in shlex.split(rest) if "=" in w]
    assert env_names and not [n for n in env_names if re.search(r"KEY|SECRET|PASSWORD|TOKEN", n)]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
