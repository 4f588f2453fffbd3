#!/usr/bin/env python3
"""Checks the deployment files without a cluster or a container engine:

- deploy/kubernetes/*.yaml: every object against a schema of the fields it may have (apiVersion
  and kind, required and known fields, types), then across objects: Deployment selectors match
  their pod labels, Services select a workload and target a named container port, probes name a
  port the container has, ConfigMaps and Secrets referenced exist, PodDisruptionBudgets and the
  HorizontalPodAutoscaler point at a Deployment, every container requests CPU and memory, runs as
  non-root, and runs a real `aisaas` subcommand; the kustomization lists files that exist.
- deploy/compose.yaml: services, depends_on, secrets and volumes refer to what is defined; the
  platform's services run a real subcommand and have a health check.
- Dockerfile: multi-stage, a static Swift runtime, a non-root user, a HEALTHCHECK, `aisaas` as
  entry point, and every COPY source exists.

Exits 1 listing every problem.
"""
import glob
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBCOMMANDS = {"all", "gateway", "user-service", "ai-service", "migrate", "seed", "registry", "probe"}
problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


# A schema is a dict of field -> (type or nested schema, required). `list_of(schema)` for lists.
class ListOf:
    def __init__(self, item):
        self.item = item


ANY = object()
LABELS = object()  # a map of names to strings
RESOURCES = {"requests": (dict, True), "limits": (dict, False)}
PROBE = {
    "grpc": ({"port": (int, True), "service": (str, False)}, False),
    "httpGet": ({"path": (str, True), "port": (ANY, True), "scheme": (str, False)}, False),
    "tcpSocket": ({"port": (ANY, True)}, False),
    "exec": ({"command": (ListOf(str), True)}, False),
    "initialDelaySeconds": (int, False), "periodSeconds": (int, False), "timeoutSeconds": (int, False),
    "failureThreshold": (int, False), "successThreshold": (int, False),
}
CONTAINER = {
    "name": (str, True), "image": (str, True), "args": (ListOf(str), False), "command": (ListOf(str), False),
    "envFrom": (ListOf({"configMapRef": ({"name": (str, True)}, False), "secretRef": ({"name": (str, True)}, False)}), False),
    "env": (ListOf({"name": (str, True), "value": (str, False), "valueFrom": (dict, False)}), False),
    "ports": (ListOf({"name": (str, False), "containerPort": (int, True), "protocol": (str, False)}), False),
    "readinessProbe": (PROBE, False), "livenessProbe": (PROBE, False), "startupProbe": (PROBE, False),
    "volumeMounts": (ListOf({"name": (str, True), "mountPath": (str, True), "readOnly": (bool, False)}), False),
    "resources": (RESOURCES, True),
}
POD_SPEC = {
    "containers": (ListOf(CONTAINER), True),
    "restartPolicy": (str, False), "terminationGracePeriodSeconds": (int, False),
    "securityContext": ({"runAsNonRoot": (bool, False), "runAsUser": (int, False), "fsGroup": (int, False)}, False),
    "volumes": (ListOf({"name": (str, True), "secret": ({"secretName": (str, True)}, False),
                        "configMap": ({"name": (str, True)}, False), "emptyDir": (dict, False)}), False),
}
TEMPLATE = {"metadata": ({"labels": (LABELS, True)}, True), "spec": (POD_SPEC, True)}
SELECTOR = {"matchLabels": (LABELS, True)}
METADATA = {"name": (str, True), "namespace": (str, False), "labels": (LABELS, False), "annotations": (LABELS, False)}
KINDS = {
    ("v1", "Namespace"): {},
    ("v1", "ConfigMap"): {"data": (LABELS, True)},
    ("v1", "Secret"): {"type": (str, False), "stringData": (LABELS, False), "data": (LABELS, False)},
    ("v1", "Service"): {"spec": ({
        "clusterIP": (str, False), "type": (str, False), "selector": (LABELS, True),
        "ports": (ListOf({"name": (str, False), "port": (int, True), "targetPort": (ANY, False), "protocol": (str, False)}), True),
    }, True)},
    ("apps/v1", "Deployment"): {"spec": ({
        "replicas": (int, False), "selector": (SELECTOR, True), "template": (TEMPLATE, True), "strategy": (dict, False),
    }, True)},
    ("batch/v1", "Job"): {"spec": ({
        "backoffLimit": (int, False), "ttlSecondsAfterFinished": (int, False), "template": (TEMPLATE, True),
    }, True)},
    ("policy/v1", "PodDisruptionBudget"): {"spec": ({
        "minAvailable": (ANY, False), "maxUnavailable": (ANY, False), "selector": (SELECTOR, True),
    }, True)},
    ("autoscaling/v2", "HorizontalPodAutoscaler"): {"spec": ({
        "scaleTargetRef": ({"apiVersion": (str, True), "kind": (str, True), "name": (str, True)}, True),
        "minReplicas": (int, False), "maxReplicas": (int, True), "metrics": (ListOf(dict), False), "behavior": (dict, False),
    }, True)},
}


def check(value, schema, where):
    if schema is ANY:
        return
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return problem(where, f"must be a list, is {type(value).__name__}")
        for index, item in enumerate(value):
            check(item, schema.item, f"{where}[{index}]")
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return problem(where, f"must be a map, is {type(value).__name__}")
        for key in value:
            if key not in schema:
                problem(where, f"unknown field {key!r}")
        for key, (sub, required) in schema.items():
            if key in value:
                check(value[key], sub, f"{where}.{key}")
            elif required:
                problem(where, f"missing {key!r}")
        return
    if schema is LABELS:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            problem(where, "must map names to strings (quote numbers)")
        return
    if not isinstance(value, schema) or (schema is int and isinstance(value, bool)):
        problem(where, f"must be {schema.__name__}, is {type(value).__name__}")


def check_kubernetes():
    directory = os.path.join(ROOT, "deploy", "kubernetes")
    objects = []
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        name = os.path.relpath(path, ROOT)
        with open(path) as file:
            for document in yaml.safe_load_all(file):
                if document is not None:
                    objects.append((name, document))
    if not objects:
        problem("deploy/kubernetes", "no manifests")
    workloads, services, config_maps, secrets, deployments = [], [], set(), set(), {}
    config_map_data = {}
    for name, obj in objects:
        kind = obj.get("kind")
        if kind == "Kustomization":
            for resource in obj.get("resources", []):
                if not os.path.exists(os.path.join(directory, resource)):
                    problem(name, f"kustomization lists {resource}, which does not exist")
            continue
        key = (obj.get("apiVersion"), kind)
        where = f"{name} {kind}/{obj.get('metadata', {}).get('name', '?')}"
        if key not in KINDS:
            problem(where, f"unknown apiVersion/kind {key}")
            continue
        check(obj, {"apiVersion": (str, True), "kind": (str, True), "metadata": (METADATA, True), **KINDS[key]}, where)
        object_name = obj.get("metadata", {}).get("name", "")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", object_name):
            problem(where, "metadata.name is not a DNS-1123 label")
        if kind != "Namespace" and obj.get("metadata", {}).get("namespace") != "aisaas":
            problem(where, "not in the aisaas namespace")
        if kind == "ConfigMap":
            config_maps.add(object_name)
            config_map_data[object_name] = obj.get("data", {}) or {}
            for data_key, text in config_map_data[object_name].items():
                if data_key.endswith((".yaml", ".yml")):
                    try:
                        yaml.safe_load(text)
                    except yaml.YAMLError as error:
                        problem(where, f"data {data_key} is not YAML: {error}")
        elif kind == "Secret":
            secrets.add(object_name)
        elif kind == "Service":
            services.append((where, obj))
        elif kind in ("Deployment", "Job"):
            workloads.append((where, obj))
            if kind == "Deployment":
                deployments[object_name] = obj
    pod_labels = []
    for where, obj in workloads:
        template = obj.get("spec", {}).get("template", {})
        labels = template.get("metadata", {}).get("labels", {})
        selector = obj.get("spec", {}).get("selector", {}).get("matchLabels")
        if selector is not None and any(labels.get(k) != v for k, v in selector.items()):
            problem(where, "selector.matchLabels does not match the pod template's labels")
        pod = template.get("spec", {})
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            problem(where, "pods must run as non-root (securityContext.runAsNonRoot)")
        volumes = {v.get("name"): v for v in pod.get("volumes", [])}
        for volume in volumes.values():
            if "secret" in volume and volume["secret"].get("secretName") not in secrets:
                problem(where, f"volume {volume.get('name')} names Secret {volume['secret'].get('secretName')}, which no manifest defines")
            if "configMap" in volume and volume["configMap"].get("name") not in config_maps:
                problem(where, f"volume {volume.get('name')} names ConfigMap {volume['configMap'].get('name')}, which no manifest defines")
        ports = {}
        for container in pod.get("containers", []):
            cwhere = f"{where} container {container.get('name')}"
            args = container.get("args", [])
            if not args or args[0] not in SUBCOMMANDS:
                problem(cwhere, f"args must start with an aisaas subcommand, got {args}")
            requests = container.get("resources", {}).get("requests", {})
            if "cpu" not in requests or "memory" not in requests:
                problem(cwhere, "resources.requests needs cpu and memory")
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"].get("name") not in config_maps:
                    problem(cwhere, f"envFrom names ConfigMap {source['configMapRef'].get('name')}, which does not exist")
            for mount in container.get("volumeMounts", []):
                if mount.get("name") not in volumes:
                    problem(cwhere, f"mounts volume {mount.get('name')}, which the pod does not have")
            # CONFIG_FILE must be a file the pod mounts from a ConfigMap that has that key.
            for source in container.get("envFrom", []):
                config_file = config_map_data.get(source.get("configMapRef", {}).get("name"), {}).get("CONFIG_FILE")
                if not config_file:
                    continue
                found = False
                for mount in container.get("volumeMounts", []):
                    volume = volumes.get(mount.get("name"), {})
                    data = config_map_data.get(volume.get("configMap", {}).get("name"), {})
                    prefix = mount.get("mountPath", "").rstrip("/") + "/"
                    if config_file.startswith(prefix) and config_file[len(prefix):] in data:
                        found = True
                if not found:
                    problem(cwhere, f"CONFIG_FILE {config_file} is not a key of a ConfigMap the container mounts")
            named = {p.get("name"): p.get("containerPort") for p in container.get("ports", []) if p.get("name")}
            numbers = {p.get("containerPort") for p in container.get("ports", [])}
            ports.update(named)
            for probe_name in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(probe_name)
                if not probe:
                    continue
                for handler in ("grpc", "httpGet", "tcpSocket"):
                    if handler in probe:
                        port = probe[handler].get("port")
                        if (isinstance(port, str) and port not in named) or (isinstance(port, int) and port not in numbers):
                            problem(cwhere, f"{probe_name} uses port {port!r}, which the container does not declare")
            if obj.get("kind") == "Deployment" and not container.get("readinessProbe"):
                problem(cwhere, "a Deployment's container needs a readinessProbe")
        pod_labels.append((labels, ports))
    for where, obj in services:
        spec = obj.get("spec", {})
        selector = spec.get("selector", {})
        matches = [ports for labels, ports in pod_labels if all(labels.get(k) == v for k, v in selector.items())]
        if not matches:
            problem(where, f"selector {selector} matches no workload's pods")
            continue
        for port in spec.get("ports", []):
            target = port.get("targetPort", port.get("port"))
            if isinstance(target, str) and not any(target in ports for ports in matches):
                problem(where, f"targetPort {target!r} is no named port of the selected pods")
    for name, obj in objects:
        kind = obj.get("kind")
        if kind == "PodDisruptionBudget":
            selector = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
            if not any(all(labels.get(k) == v for k, v in selector.items()) for labels, _ in pod_labels):
                problem(f"{name} PodDisruptionBudget", "selects no workload's pods")
        if kind == "HorizontalPodAutoscaler":
            target = obj.get("spec", {}).get("scaleTargetRef", {})
            if target.get("kind") != "Deployment" or target.get("name") not in deployments:
                problem(f"{name} HorizontalPodAutoscaler", f"scales {target}, which is no Deployment here")
    kinds = {obj.get("kind") for _, obj in objects}
    for required in ("Deployment", "Service", "ConfigMap", "Job", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        if required not in kinds:
            problem("deploy/kubernetes", f"no {required}")
    print(f"kubernetes: {len(objects)} objects checked")


def check_compose():
    path = os.path.join(ROOT, "deploy", "compose.yaml")
    with open(path) as file:
        compose = yaml.safe_load(file)
    services = compose.get("services", {})
    secrets = set(compose.get("secrets", {}))
    volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        where = f"deploy/compose.yaml service {name}"
        if "image" not in service:
            problem(where, "no image")
        depends = service.get("depends_on", {})
        for dependency in (depends if isinstance(depends, (dict, list)) else []):
            if dependency not in services:
                problem(where, f"depends on {dependency}, which is not a service")
        for secret in service.get("secrets", []):
            secret_name = secret if isinstance(secret, str) else secret.get("source")
            if secret_name not in secrets:
                problem(where, f"uses secret {secret_name}, which is not defined")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
            if source.startswith("."):
                if not os.path.exists(os.path.join(ROOT, "deploy", source)):
                    problem(where, f"mounts {source}, which does not exist")
            elif source not in volumes:
                problem(where, f"mounts volume {source}, which is not defined")
        if "aisaas" in str(service.get("image", "")):
            command = service.get("command", ["all"])
            if not command or command[0] not in SUBCOMMANDS:
                problem(where, f"command must be an aisaas subcommand, got {command}")
            if command[0] in ("gateway", "user-service", "ai-service") and "healthcheck" not in service:
                problem(where, "no healthcheck")
    for name, secret in compose.get("secrets", {}).items():
        if "file" not in secret and "environment" not in secret:
            problem(f"deploy/compose.yaml secret {name}", "neither file nor environment")
    counts = {role: sum(1 for s in services.values() if s.get("command", [None])[0] == role) for role in ("gateway", "user-service", "ai-service", "migrate")}
    for role, expected in (("gateway", 2), ("user-service", 2), ("ai-service", 2), ("migrate", 1)):
        if counts[role] != expected:
            problem("deploy/compose.yaml", f"{counts[role]} {role} services, expected {expected}")
    for needed in ("postgres", "etcd", "prometheus", "jaeger"):
        if needed not in services:
            problem("deploy/compose.yaml", f"no {needed} service")
    print(f"compose: {len(services)} services checked")


def check_dockerfile():
    path = os.path.join(ROOT, "Dockerfile")
    lines = []
    with open(path) as file:
        for line in file.read().replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line.strip())
    instructions = [line.split(None, 1) for line in lines]
    names = [parts[0].upper() for parts in instructions]
    if names.count("FROM") < 2:
        problem("Dockerfile", "not multi-stage")
    if not any("--static-swift-stdlib" in line for line in lines):
        problem("Dockerfile", "the release build does not link the Swift runtime statically")
    users = [parts[1] for parts in instructions if parts[0].upper() == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problem("Dockerfile", "the image must run as a non-root user")
    if "HEALTHCHECK" not in names:
        problem("Dockerfile", "no HEALTHCHECK")
    entry = [parts[1] for parts in instructions if parts[0].upper() == "ENTRYPOINT"]
    if not entry or "aisaas" not in entry[-1]:
        problem("Dockerfile", "ENTRYPOINT is not aisaas")
    if not any("ffmpeg" in line for line in lines):
        problem("Dockerfile", "the runtime image has no ffmpeg")
    for parts in instructions:
        if parts[0].upper() == "COPY" and "--from=" not in parts[1]:
            for source in parts[1].split()[:-1]:
                if not os.path.exists(os.path.join(ROOT, source)):
                    problem("Dockerfile", f"COPY {source}: no such file in the repository")
    print("Dockerfile checked")


check_kubernetes()
check_compose()
check_dockerfile()
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
print("deployment files: no problems")
