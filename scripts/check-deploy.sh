#!/usr/bin/env bash
# Checks the operator's monitoring assets under deploy/:
#   - deploy/prometheus/alerts.yml       promtool check rules
#   - deploy/prometheus/prometheus.yml   promtool check config (rule_files resolve beside it)
#   - deploy/prometheus/alerts_test.yml  promtool test rules (the alerts fire on synthetic series)
#   - deploy/grafana/aisaas-dashboard.json
#       parses; every panel has a unique id, a gridPos and the ${datasource} variable as its
#       data source; the datasource/component/instance variables exist; every PromQL
#       expression parses (promtool checks them as recording rules) and names only metric
#       families that the platform exports.
#   - deploy/kubernetes/, deploy/compose.yaml, Dockerfile: scripts/check-manifests.py (schemas of
#       the objects' fields and the references between them; no cluster or container engine).
#   - the dynamic settings files (deploy/compose/settings.yaml, the aisaas-dynamic ConfigMap):
#       aisaas config validate.
# Installs Debian's `prometheus` package (which ships promtool) when promtool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

if ! command -v promtool >/dev/null; then
    # Another apt run (e.g. one started in the background) may hold the lock: wait for it.
    for _ in $(seq 1 120); do
        pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null || break
        sleep 5
    done
fi
if ! command -v promtool >/dev/null; then
    echo "installing: prometheus (for promtool)"
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus
fi
command -v promtool >/dev/null || { echo "promtool not found after installing prometheus" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found on PATH" >&2; exit 1; }
promtool --version 2>&1 | head -1

echo "== promtool check rules deploy/prometheus/alerts.yml"
promtool check rules deploy/prometheus/alerts.yml

echo "== promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml

echo "== promtool test rules deploy/prometheus/alerts_test.yml"
promtool test rules deploy/prometheus/alerts_test.yml

echo "== dashboard deploy/grafana/aisaas-dashboard.json"
work=$(mktemp -d /tmp/aisaas-check-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - deploy/grafana/aisaas-dashboard.json "$work/dashboard-exprs.yml" <<'PY'
import json
import re
import sys

path, rules_out = sys.argv[1], sys.argv[2]

# The metric families the platform exports (plus Prometheus' own `up`). Histograms also
# expose _bucket, _sum and _count series.
HISTOGRAMS = {
    "http_server_request_duration_seconds",
    "http_server_request_body_size_bytes",
    "http_server_response_body_size_bytes",
    "rpc_client_duration_seconds",
    "rpc_server_duration_seconds",
    "gen_ai_client_operation_duration_seconds",
    "gen_ai_server_time_to_first_token_seconds",
    "db_client_operation_duration_seconds",
    "aisaas_db_write_batch_size",
}
OTHERS = {
    "http_server_requests_total",
    "http_server_active_requests",
    "rpc_client_calls_total",
    "rpc_server_calls_total",
    "aisaas_service_instance_serving",
    "aisaas_service_instance_ejections_total",
    "aisaas_registry_reachable",
    "aisaas_registry_instances",
    "aisaas_ai_requests_total",
    "aisaas_ai_tokens_total",
    "aisaas_ai_cost_total",
    "aisaas_ai_refusals_total",
    "db_client_operation_errors_total",
    "db_client_connection_count",
    "db_client_connection_pending_requests",
    "aisaas_db_cache_lookups_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "aisaas_build_info",
    "aisaas_trace_spans_dropped_total",
    "up",
}
ALLOWED = set(OTHERS) | set(HISTOGRAMS)
for family in HISTOGRAMS:
    ALLOWED |= {family + "_bucket", family + "_sum", family + "_count"}

# Words of PromQL that look like identifiers but name no metric.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "atan2", "start", "end",
            # aggregations, which may stand before `by (...)` instead of `(`
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
            "bottomk", "topk", "quantile"}

# Grafana's variables, replaced by values promtool accepts.
VARIABLES = [
    (r"\$__rate_interval|\$\{__rate_interval\}", "5m"),
    (r"\$__interval|\$\{__interval\}", "1m"),
    (r"\$__range|\$\{__range\}", "1h"),
    (r"\$\{?(component|instance)\}?", ".*"),
]

errors = []


def fail(message):
    errors.append(message)


def substitute(expr):
    for pattern, value in VARIABLES:
        expr = re.sub(pattern, value, expr)
    return expr


def metric_names(expr):
    """The metric names an expression selects (a tokenizer, not a full parser)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)          # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)         # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])([A-Za-z_:][\w:]*)", text):
        name = match.group(1)
        following = text[match.end():].lstrip()
        if following.startswith("("):                # a function or aggregation
            continue
        if name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def check_datasource(where, ds):
    uid = ds.get("uid") if isinstance(ds, dict) else ds
    if not isinstance(uid, str) or uid not in ("${datasource}", "$datasource"):
        fail(f"{where}: datasource {ds!r} does not reference the ${{datasource}} variable")


try:
    with open(path, encoding="utf-8") as f:
        dashboard = json.load(f)
except (OSError, ValueError) as error:
    print(f"FAIL: {path} does not parse as JSON: {error}", file=sys.stderr)
    sys.exit(1)

if dashboard.get("uid") != "aisaas-overview":
    fail(f"uid is {dashboard.get('uid')!r}, expected 'aisaas-overview'")
if dashboard.get("title") != "AI SaaS platform":
    fail(f"title is {dashboard.get('title')!r}, expected 'AI SaaS platform'")
if dashboard.get("schemaVersion") != 39:
    fail(f"schemaVersion is {dashboard.get('schemaVersion')!r}, expected 39")

variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
if variables.get("datasource", {}).get("type") != "datasource" or \
        variables.get("datasource", {}).get("query") != "prometheus":
    fail("templating: no `datasource` variable of type datasource for prometheus")
exprs = []  # (where, expr)
for name in ("component", "instance"):
    variable = variables.get(name)
    if variable is None:
        fail(f"templating: no `{name}` variable")
        continue
    if variable.get("type") == "query":
        check_datasource(f"variable {name}", variable.get("datasource"))
        query = variable.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        m = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?([A-Za-z_]\w*)\s*\)\s*", query)
        if not m:
            fail(f"variable {name}: query {query!r} is not label_values(...)")
        elif m.group(1):
            exprs.append((f"variable {name}", m.group(1)))


def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))


seen_ids = {}
panel_count = 0
for panel in walk(dashboard.get("panels", [])):
    panel_count += 1
    title = panel.get("title", "?")
    pid = panel.get("id")
    where = f"panel {pid} {title!r}"
    if not isinstance(pid, int):
        fail(f"panel {title!r}: no integer id")
    elif pid in seen_ids:
        fail(f"{where}: id {pid} is also used by {seen_ids[pid]!r}")
    else:
        seen_ids[pid] = title
    grid = panel.get("gridPos")
    if not isinstance(grid, dict) or not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
        fail(f"{where}: gridPos {grid!r} lacks integer h, w, x, y")
    elif grid["x"] < 0 or grid["w"] < 1 or grid["x"] + grid["w"] > 24:
        fail(f"{where}: gridPos {grid!r} does not fit the 24-column grid")
    if panel.get("type") == "row":
        continue
    check_datasource(where, panel.get("datasource"))
    targets = panel.get("targets") or []
    if not targets:
        fail(f"{where}: no targets")
    for target in targets:
        check_datasource(f"{where} target {target.get('refId')}", target.get("datasource", panel.get("datasource")))
        expr = target.get("expr", "")
        if not expr.strip():
            fail(f"{where} target {target.get('refId')}: empty expr")
            continue
        exprs.append((f"{where} target {target.get('refId')}", expr))

for where, expr in exprs:
    names = metric_names(substitute(expr))
    if not names:
        fail(f"{where}: expression selects no metric: {expr!r}")
    for name in sorted(names - ALLOWED):
        fail(f"{where}: metric {name!r} is not a family the platform exports (expr: {expr!r})")

# Every expression, as a recording rule, so that promtool parses it.
with open(rules_out, "w", encoding="utf-8") as out:
    out.write("groups:\n  - name: dashboard-expressions\n    rules:\n")
    for i, (where, expr) in enumerate(exprs):
        out.write(f"      - record: dashboard:expr_{i}\n")
        out.write(f"        expr: {json.dumps(substitute(expr))}\n")

if errors:
    print(f"FAIL: {path}:", file=sys.stderr)
    for message in errors:
        print(f"  - {message}", file=sys.stderr)
    sys.exit(1)
print(f"{path}: {panel_count} panels, {len(exprs)} expressions, all metric names known")
PY

echo "== promtool check rules (the dashboard's expressions)"
promtool check rules "$work/dashboard-exprs.yml"

echo "== deployment files (Kubernetes manifests, compose.yaml, Dockerfile)"
if ! python3 -c 'import yaml' 2>/dev/null; then
    echo "installing: python3-yaml"
    if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-yaml
fi
python3 scripts/check-manifests.py

echo "== dynamic settings files: aisaas config validate"
# The files operators edit at run time: a mistake there is refused by every replica, so catch it here.
# Built where scripts/test.sh built it (AISAAS_BUILD_CACHE, else .build): already there in CI.
scratch=()
[ -n "${AISAAS_BUILD_CACHE:-}" ] && scratch=(--scratch-path "$AISAAS_BUILD_CACHE")
swift build "${scratch[@]}" --product aisaas >/dev/null
bin="$(swift build "${scratch[@]}" --show-bin-path)/aisaas"
python3 -c 'import sys, yaml
for document in yaml.safe_load_all(open("deploy/kubernetes/configmap.yaml")):
    if document["metadata"]["name"] == "aisaas-dynamic":
        open(sys.argv[1], "w").write(document["data"]["settings.yaml"])' "$work/kubernetes-settings.yaml"
"$bin" config validate deploy/compose/settings.yaml
"$bin" config validate "$work/kubernetes-settings.yaml"

echo "deploy checks passed"
