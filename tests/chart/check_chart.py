"""Checks of charts/cw with Helm's own Go library (the PyPI package helm-python-sdk).

Lints the chart and renders it with default values, with everything on, and with each
component off, then checks the rendered objects the way an operator judges a chart: RBAC,
security context, probes, and that every documented value reaches the right container.

Run with scripts/test-chart (or .venv/bin/python tests/chart/check_chart.py). Prints one line
per check and a closing `N passed, N failed`; exits 1 when any check failed.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import traceback
from pathlib import Path

try:
    import helm_python as helm
    import kubernetes_validate
    import yaml
except ImportError as exc:  # never skip silently: say what to install
    sys.exit(
        f"tests/chart needs helm-python-sdk, kubernetes-validate and pyyaml in .venv ({exc}); "
        "run scripts/test-chart (it installs them) or .venv/bin/pip install helm-python-sdk "
        "kubernetes-validate pyyaml"
    )

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cw"
VALUES_DIR = Path(__file__).resolve().parent / "values"
RELEASE, NAMESPACE = "t", "cw-system"

# The environment of both components (the team's agreed names, plus CW_MODEL_DIR of the local
# model and CW_INGEST_TIMEOUT_SECS of the watcher): the chart must set each of them from a
# documented value, in the right container.
AGREED_ENV = {
    "ingest": [
        "CW_HOST", "CW_PORT", "CHROMA_URL", "CHROMA_TENANT", "CHROMA_DATABASE",
        "CW_INSTANCES_COLLECTION", "CW_CAPABILITIES_COLLECTION", "CW_EMBEDDING_PROVIDER",
        "VOYAGE_API_KEY", "VOYAGE_BASE_URL", "VOYAGE_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY",
        "OPENAI_EMBEDDING_MODEL", "OPENAI_MAX_INPUTS_PER_REQUEST", "OPENAI_MAX_INPUT_TOKENS",
        "OPENAI_MAX_TOKENS_PER_REQUEST", "CW_INGEST_TOKEN", "CW_MAX_BODY_BYTES",
        "CW_MAX_CONCURRENT_WRITES", "CW_MAX_CONCURRENT_READS", "CW_STALE_AFTER_SECS",
        "CW_SHUTDOWN_DRAIN_SECS",
        "LOG_LEVEL", "LOG_JSON",
        "CW_MODEL_DIR", "CW_LLM_URL", "CW_LLM_MODEL", "CW_LLM_API_KEY",
        "QDRANT_URL", "QDRANT_API_KEY", "QDRANT_SHARDS", "QDRANT_REPLICATION_FACTOR",
        "QDRANT_WRITE_CONSISTENCY", "QDRANT_WRITE_ORDERING", "CW_DEFAULT_CLUSTER", "CW_INGEST_TOKENS_FILE",
        "CW_CLUSTER_KUBECONFIGS",
    ],
    "watcher": [
        "REST_ENDPOINT", "CW_CLUSTER_ID", "CW_INGEST_TOKEN", "DEBOUNCE_WINDOW_MS", "BATCH_FLUSH_INTERVAL_MS",
        "BATCH_MAX_SIZE", "RESYNC_INTERVAL_MIN", "WATCH_RESOURCE_TYPES", "EXCLUDE_RESOURCE_TYPES",
        "WATCH_NAMESPACES", "EXCLUDE_NAMESPACES", "API_BIND_ADDRESS", "SHUTDOWN_TIMEOUT_SECS",
        "CW_INGEST_TIMEOUT_SECS", "HEARTBEAT_INTERVAL_SECS",
        "KUBECONFIG", "LOG_LEVEL", "LOG_JSON",
    ],
}
CW_CONTAINERS = {"watcher", "ingest"}
# Values that choose another store, and the variables of the default store they replace: the
# two are checked in separate renders, since one ingest server writes to one store.
ALTERNATIVE_STORES = {("store", "qdrant"): {"CHROMA_URL", "CHROMA_TENANT", "CHROMA_DATABASE"}}
READ_VERBS = {"get", "list", "watch"}
# The Kubernetes version whose OpenAPI schemas the rendered objects must satisfy (the kubectl
# installed here), and API groups of CRDs that have no built-in schema.
KUBE_VERSION = "1.32.0"
CRD_GROUPS = ("monitoring.coreos.com/",)


# --- rendering ------------------------------------------------------------------------------

_chart = None


def chart() -> "helm.Chart":
    global _chart
    if _chart is None:
        _chart = helm.Chart.load(str(CHART))
    return _chart


def render(values: dict | None = None) -> tuple[list[dict], str]:
    """Rendered objects (every document of every template) and the NOTES text."""
    manifests = chart().render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects, notes = [], ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects, notes


def render_refused(values: dict, message: str, otherwise: str) -> None:
    """Rendering `values` fails with an error that names `message`; `otherwise` says what a
    render that went through would have made."""
    try:
        render(values)
    except helm.HelmError as exc:
        assert message in str(exc), str(exc)
    else:
        raise AssertionError(otherwise)


def scenario(name: str) -> dict:
    path = ROOT / "deploy" / "kind" / "e2e-values.yaml" if name == "e2e-kind" else VALUES_DIR / f"{name}.yaml"
    return yaml.safe_load(path.read_text()) or {}


def of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def named(objects: list[dict], kind: str, suffix: str) -> dict | None:
    for o in of_kind(objects, kind):
        if o["metadata"]["name"].endswith(suffix):
            return o
    return None


def pod_specs(objects: list[dict]):
    for o in objects:
        if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield o, o["spec"]["template"]["spec"]


def containers(objects: list[dict]):
    for workload, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            yield workload, spec, c


def container(objects: list[dict], name: str) -> dict | None:
    for _, _, c in containers(objects):
        if c["name"] == name:
            return c
    return None


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_path(d: dict, path: list[str], value) -> None:
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = value


def get_path(d: dict, path: list[str]):
    for k in path:
        d = d[k]
    return d


# --- values.yaml annotations --------------------------------------------------------------

ANNOTATION = re.compile(
    r"^env:\s+(?P<name>[A-Z][A-Z0-9_]*)"
    r"(?:\s+=\s+\"(?P<template>[^\"]*)\"|\s+from\s+secretKeyRef\.(?P<ref>name|key))?\s*$"
)
KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][A-Za-z0-9_]*):")


def documented_env() -> list[dict]:
    """Every key of values.yaml whose comment ends with `env: NAME ...`, with its path."""
    found, stack, comments = [], [], []
    for lineno, line in enumerate((CHART / "values.yaml").read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            comments.append(stripped.lstrip("#").strip())
            continue
        m = KEY_LINE.match(line)
        if not m:
            comments = []
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        for comment in comments:
            if comment.startswith("env:"):
                a = ANNOTATION.match(comment)
                if not a:
                    raise AssertionError(f"values.yaml:{lineno}: cannot read annotation {comment!r}")
                found.append({
                    "path": [k for _, k in stack],
                    "env": a["name"],
                    "template": a["template"],
                    "ref": a["ref"],
                    "line": lineno,
                })
        comments = []
    return found


def targets(path: list[str]) -> list[str]:
    """The container(s) a documented value belongs to, by its top-level key."""
    return {"watcher": ["watcher"], "ingest": ["ingest"], "store": ["ingest"], "auth": ["watcher", "ingest"]}[path[0]]


def schema_node(path: list[str]) -> dict:
    node = chart().schema
    for k in path:
        node = node["properties"][k]
    return node


def distinctive_value(path: list[str], default, i: int):
    """A value of the schema's type that differs from the default and is easy to spot."""
    node = schema_node(path)
    types = node["type"] if isinstance(node["type"], list) else [node["type"]]
    if "boolean" in types:
        return not default
    if "integer" in types:
        return 20000 + i
    if "array" in types:
        return [f"a{i}", f"b{i}"]
    if "enum" in node:
        return next(v for v in node["enum"] if v != default)
    pattern = node.get("pattern", "")
    if "https?" in pattern:
        return f"http://v{i}.example:8{i:03d}/p"
    if "[a-z0-9]" in pattern:
        return f"sec-{i}"
    return f"v{i}-x"


def as_env(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)


# --- checks -------------------------------------------------------------------------------

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def chart_lints_clean_with_every_scenario():
    for name, values in [("defaults", {})] + [(n, scenario(n)) for n in SCENARIOS]:
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], f"{name}: {problems or report['errors']}"


@check
def defaults_render_watcher_ingest_token_and_bundled_chroma():
    objects, _ = render()
    kinds = sorted({o["kind"] for o in objects})
    for kind, suffix in [
        ("Deployment", "-watcher"), ("Deployment", "-ingest"), ("StatefulSet", "-chroma"),
        ("Service", "-watcher"), ("Service", "-ingest"), ("Service", "-chroma"),
        ("ServiceAccount", "-watcher"), ("ClusterRole", "-watcher"),
        ("ClusterRoleBinding", "-watcher"), ("Secret", "-token"),
    ]:
        assert named(objects, kind, suffix), f"no {kind} *{suffix} in {kinds}"
    assert not of_kind(objects, "ServiceMonitor")
    policies = [p["metadata"]["name"] for p in of_kind(objects, "NetworkPolicy")]
    assert policies == [f"{RELEASE}-cw-chroma"], f"by default only Chroma's NetworkPolicy: {policies}"
    watcher = named(objects, "Deployment", "-watcher")
    assert watcher["spec"]["replicas"] == 1, "the watcher must run as exactly one replica"


@check
def every_rendered_object_is_valid_kubernetes():
    for name in ["defaults"] + SCENARIOS:
        objects, _ = render({} if name == "defaults" else scenario(name))
        for o in objects:
            if o["apiVersion"].startswith(CRD_GROUPS):
                continue
            try:
                # strict: unknown fields (a misplaced or misspelt key) are errors too
                kubernetes_validate.validate(o, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                raise AssertionError(f"{name}: {o['kind']}/{o['metadata']['name']} {path}: {exc.message}")


@check
def rbac_is_read_only_and_has_no_secrets_or_wildcards_by_default():
    objects, _ = render()
    role = named(objects, "ClusterRole", "-watcher")
    for rule in role["rules"]:
        assert set(rule["verbs"]) <= READ_VERBS, f"write verb in {rule}"
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], f"wildcard in {rule}"
        assert "secrets" not in rule["resources"], f"secrets readable by default: {rule}"
    crd = [r for r in role["rules"] if "customresourcedefinitions" in r["resources"]]
    assert crd and crd[0]["apiGroups"] == ["apiextensions.k8s.io"], "CRDs are not readable"
    # The built-in aggregated view role (no Secrets) covers workloads and the custom resources
    # of operators that aggregate to it; this role adds what view lacks.
    binding = named(objects, "ClusterRoleBinding", "-watcher-view")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    assert binding["subjects"][0]["name"] == pod_specs_sa(objects)
    granted = {(g, res) for r in role["rules"] for g in r["apiGroups"] for res in r["resources"]}
    assert {("", "nodes"), ("", "persistentvolumes"), ("storage.k8s.io", "storageclasses")} <= granted
    # Every discovered type is watched (a type view does not grant is refused, 403, and not
    # indexed); the binary leaves Secrets out.
    env = env_of(container(objects, "watcher"))
    assert "WATCH_RESOURCE_TYPES" not in env and "CW_INCLUDE_SECRETS" not in env


def pod_specs_sa(objects: list[dict]) -> str:
    return named(objects, "Deployment", "-watcher")["spec"]["template"]["spec"]["serviceAccountName"]


@check
def the_watcher_may_read_rbac_objects_and_the_token_issuer_for_the_access_rules():
    for aggregate in (True, False):
        objects, _ = render({"watcher": {"rbac": {"aggregateView": aggregate}}})
        role = named(objects, "ClusterRole", "-watcher")
        rbac = [r for r in role["rules"] if r["apiGroups"] == ["rbac.authorization.k8s.io"]]
        assert rbac, f"no rule on RBAC objects: {role['rules']}"
        assert set(rbac[0]["resources"]) == {"roles", "clusterroles", "rolebindings", "clusterrolebindings"}
        assert set(rbac[0]["verbs"]) == READ_VERBS
        binding = named(objects, "ClusterRoleBinding", "-watcher-issuer-discovery")
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "system:service-account-issuer-discovery"}
        assert binding["subjects"][0]["name"] == pod_specs_sa(objects)
    objects, _ = render({"watcher": {"rbac": {"create": False}}})
    assert not named(objects, "ClusterRoleBinding", "-watcher-issuer-discovery")


@check
def without_aggregate_view_the_allow_list_is_exactly_what_the_role_grants():
    objects, _ = render({"watcher": {"rbac": {"aggregateView": False}}})
    assert not named(objects, "ClusterRoleBinding", "-watcher-view")
    types = env_of(container(objects, "watcher"))["WATCH_RESOURCE_TYPES"]["value"].split(",")
    assert "secrets" not in types, "the watcher would ask for secrets it may not read"
    assert "customresourcedefinitions.apiextensions.k8s.io" in types
    assert "deployments.apps" in types and "pods" in types


@check
def secrets_are_readable_and_watched_only_when_turned_on():
    for aggregate in (True, False):
        objects, _ = render({"watcher": {"rbac": {"secrets": True, "aggregateView": aggregate}}})
        role = named(objects, "ClusterRole", "-watcher")
        assert any("secrets" in r["resources"] and r["apiGroups"] == [""] for r in role["rules"])
        env = env_of(container(objects, "watcher"))
        assert env["CW_INCLUDE_SECRETS"]["value"] == "true"
        if not aggregate:
            assert "secrets" in env["WATCH_RESOURCE_TYPES"]["value"].split(",")


@check
def extra_rules_grant_custom_resources_and_join_the_watch_list():
    extra = [{"apiGroups": ["cert-manager.io"], "resources": ["certificates", "issuers"]}]
    for aggregate in (True, False):
        values = {"watcher": {"rbac": {"extraRules": extra, "aggregateView": aggregate}}}
        objects, _ = render(values)
        role = named(objects, "ClusterRole", "-watcher")
        assert any(r["apiGroups"] == ["cert-manager.io"] and set(r["verbs"]) == READ_VERBS
                   for r in role["rules"])
        if not aggregate:
            types = env_of(container(objects, "watcher"))["WATCH_RESOURCE_TYPES"]["value"].split(",")
            assert {"certificates.cert-manager.io", "issuers.cert-manager.io"} <= set(types)


@check
def every_container_has_the_full_security_context_resources_and_tmp():
    for name in ["defaults"] + SCENARIOS:
        objects, _ = render({} if name == "defaults" else scenario(name))
        seen = 0
        for workload, spec, c in containers(objects):
            where = f"{name}: {workload['kind']}/{workload['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext") or {}
            assert sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), f"{where}: drop ALL"
            assert (sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault", f"{where}: seccomp"
            assert (spec.get("securityContext") or {}).get("runAsNonRoot") is True, f"{where}: pod"
            res = c.get("resources") or {}
            assert res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"), \
                f"{where}: memory request and limit"
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            assert tmp and "emptyDir" in vols.get(tmp[0]["name"], {}), f"{where}: /tmp emptyDir"
            seen += 1
        assert seen, f"{name}: no containers rendered"


@check
def cw_containers_probe_healthz_and_readyz_on_their_own_port():
    objects, _ = render(scenario("all-on"))
    for name in CW_CONTAINERS:
        c = container(objects, name)
        assert c, f"no {name} container"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
            get = (c.get(probe) or {}).get("httpGet") or {}
            assert get.get("path") == path, f"{name} {probe} path {get.get('path')}"
            assert get.get("port") in ports, f"{name} {probe} port {get.get('port')} not declared"
        service = named(objects, "Service", f"-{name}")
        assert service["spec"]["ports"][0]["targetPort"] in ports


@check
def resources_match_the_sizing():
    # Peak RSS measured by the benchmarks (docs/watcher.md: 89 MiB at 100,554 objects;
    # docs/ingest.md: 20 MiB): each limit leaves at least half as much again, and each
    # request fits under its limit.
    objects, _ = render()
    mib = lambda q: int(q.removesuffix("Mi")) if q.endswith("Mi") else int(q.removesuffix("Gi")) * 1024
    for name, measured in [("watcher", 89), ("ingest", 20)]:
        res = container(objects, name)["resources"]
        limit, request = mib(res["limits"]["memory"]), mib(res["requests"]["memory"])
        assert limit >= measured * 1.5, f"{name}: limit {limit}Mi is under 1.5 x {measured}Mi"
        assert request <= limit, f"{name}: request {request}Mi over limit {limit}Mi"


@check
def every_agreed_variable_is_documented_in_values_for_its_component():
    documented = documented_env()
    missing = []
    for component, names in AGREED_ENV.items():
        have = {d["env"] for d in documented if component in targets(d["path"])}
        missing += [f"{component}:{n}" for n in names if n not in have]
    assert not missing, f"not exposed in values.yaml: {missing}"


def alternative_of(path: list[str]):
    return next((alt for alt in ALTERNATIVE_STORES if tuple(path[: len(alt)]) == alt), None)


@check
def every_documented_value_reaches_the_environment_of_the_right_container():
    everything = documented_env()
    # The default store's values, then each alternative store's instead of what it replaces.
    reach(
        [d for d in everything if alternative_of(d["path"]) is None],
        skip_env=set(),
    )
    for alt, replaced in ALTERNATIVE_STORES.items():
        reach(
            [d for d in everything if alternative_of(d["path"]) in (None, alt)],
            skip_env=replaced,
        )


def reach(documented: list[dict], skip_env: set[str]):
    """Sets every value of `documented` at once and checks each reaches its variable."""
    documented = [d for d in documented if d["env"] not in skip_env]
    defaults = chart().values
    values: dict = {}
    for i, d in enumerate(documented):
        path = d["path"]
        try:
            get_path(values, path)
            continue  # a secretKeyRef name and key share no path; a repeated path keeps its value
        except (KeyError, TypeError):
            pass
        set_path(values, path, distinctive_value(path, get_path(defaults, path), i))
    chart().validate_schema(values)
    objects, _ = render(values)
    failures = []
    for d in documented:
        value = get_path(values, d["path"])
        for target in targets(d["path"]):
            c = container(objects, target)
            env = env_of(c).get(d["env"]) if c else None
            where = f"{'.'.join(d['path'])} (values.yaml:{d['line']}) -> {target}:{d['env']}"
            if env is None:
                failures.append(f"{where}: not set")
            elif d["ref"]:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get(d["ref"]) != value:
                    failures.append(f"{where}: secretKeyRef.{d['ref']}={ref.get(d['ref'])!r}, want {value!r}")
            else:
                want = d["template"].format(value=value) if d["template"] else as_env(value)
                if env.get("value") != want:
                    failures.append(f"{where}: {env.get('value')!r}, want {want!r}")
    assert not failures, "\n    " + "\n    ".join(failures)


@check
def every_rendered_variable_of_a_cw_container_is_documented():
    documented = documented_env()
    objects, _ = render(scenario("all-on"))
    for name in CW_CONTAINERS:
        have = {d["env"] for d in documented if name in targets(d["path"])}
        extra = scenario("all-on")[name].get("extraEnv", [])
        rendered = set(env_of(container(objects, name))) - {e["name"] for e in extra}
        assert rendered <= have, f"{name} sets undocumented {sorted(rendered - have)}"


@check
def the_token_secret_is_created_and_shared_by_both_sides():
    objects, _ = render()
    secret = named(objects, "Secret", "-token")
    assert "token" in secret["data"] and len(secret["data"]["token"]) >= 40
    for name in CW_CONTAINERS:
        ref = env_of(container(objects, name))["CW_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "token"}, f"{name}: {ref}"


@check
def an_existing_token_secret_is_referenced_not_created():
    objects, _ = render({"auth": {"existingSecret": "my-token", "secretKey": "t"}})
    assert not of_kind(objects, "Secret")
    for name in CW_CONTAINERS:
        ref = env_of(container(objects, name))["CW_INGEST_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "my-token", "key": "t"}


@check
def the_voyage_key_comes_from_the_referenced_secret_only():
    objects, _ = render()
    assert "VOYAGE_API_KEY" not in env_of(container(objects, "ingest"))
    objects, _ = render({"ingest": {"embedding": {"voyage": {"apiKeySecret": {"name": "voyage"}}}}})
    env = env_of(container(objects, "ingest"))["VOYAGE_API_KEY"]
    assert "value" not in env and env["valueFrom"]["secretKeyRef"] == {"name": "voyage", "key": "api-key"}


@check
def watcher_off_renders_no_watcher_objects():
    objects, _ = render(scenario("watcher-off"))
    assert container(objects, "watcher") is None
    for kind in ("ClusterRole", "ClusterRoleBinding", "ServiceAccount"):
        assert not of_kind(objects, kind), f"{kind} rendered with the watcher off"
    assert container(objects, "ingest") and named(objects, "Service", "-ingest")


@check
def ingest_off_points_the_watcher_elsewhere_and_renders_no_server_or_chroma():
    values = scenario("ingest-off")
    objects, _ = render(values)
    assert container(objects, "ingest") is None and not named(objects, "Service", "-ingest")
    assert not of_kind(objects, "StatefulSet")
    env = env_of(container(objects, "watcher"))
    assert env["REST_ENDPOINT"]["value"] == values["watcher"]["config"]["restEndpoint"]


@check
def a_watcher_only_release_names_its_cluster_and_fails_without_one():
    values = scenario("ingest-off")
    objects, _ = render(values)
    env = env_of(container(objects, "watcher"))
    assert env["CW_CLUSTER_ID"]["value"] == values["watcher"]["config"]["clusterId"]
    del values["watcher"]["config"]["clusterId"]
    render_refused(values, "watcher.config.clusterId", "rendered a watcher-only release without a cluster id")


@check
def with_the_server_in_the_release_the_watcher_is_named_after_the_release():
    objects, _ = render()
    assert env_of(container(objects, "watcher"))["CW_CLUSTER_ID"]["value"] == RELEASE
    assert env_of(container(objects, "ingest"))["CW_DEFAULT_CLUSTER"]["value"] == "default"


@check
def a_tokens_file_secret_is_mounted_read_only_for_the_server_only():
    objects, _ = render({"ingest": {"tokensFileSecret": "cw-tokens"}})
    ingest = container(objects, "ingest")
    assert env_of(ingest)["CW_INGEST_TOKENS_FILE"]["value"] == "/etc/cw/tokens/tokens"
    mount = next(m for m in ingest["volumeMounts"] if m["name"] == "tokens")
    assert mount["mountPath"] == "/etc/cw/tokens" and mount["readOnly"] is True
    spec = named(objects, "Deployment", "-ingest")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "tokens")
    assert volume["secret"]["secretName"] == "cw-tokens"
    assert "CW_INGEST_TOKENS_FILE" not in env_of(container(objects, "watcher"))
    objects, _ = render()
    assert "CW_INGEST_TOKENS_FILE" not in env_of(container(objects, "ingest"))


@check
def cluster_kubeconfigs_are_a_secret_mounted_read_only_as_a_directory_for_the_server_only():
    objects, _ = render({"ingest": {"clusterKubeconfigs": {"secretName": "cw-clusters"}}})
    ingest = container(objects, "ingest")
    assert env_of(ingest)["CW_CLUSTER_KUBECONFIGS"]["value"] == "/etc/cw/clusters"
    mount = next(m for m in ingest["volumeMounts"] if m["name"] == "cluster-kubeconfigs")
    assert mount["mountPath"] == "/etc/cw/clusters" and mount["readOnly"] is True
    # No subPath: kubelet updates the files when the Secret changes, and cw reads them again.
    assert "subPath" not in mount
    spec = named(objects, "Deployment", "-ingest")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "cluster-kubeconfigs")
    # Every key of the Secret is a cluster: no items list picks some.
    assert volume["secret"] == {"secretName": "cw-clusters", "defaultMode": 0o440}
    # The server still gets no token for its own cluster's API.
    assert spec["automountServiceAccountToken"] is False
    assert "CW_CLUSTER_KUBECONFIGS" not in env_of(container(objects, "watcher"))
    objects, _ = render()
    assert "CW_CLUSTER_KUBECONFIGS" not in env_of(container(objects, "ingest"))
    assert not any(v["name"] == "cluster-kubeconfigs"
                   for v in named(objects, "Deployment", "-ingest")["spec"]["template"]["spec"]["volumes"])


@check
def the_live_reader_of_a_member_cluster_may_get_objects_list_events_and_impersonate_callers_only():
    # deploy/fleet/live-reader.yaml, which docs/fleet.md applies in each member cluster.
    objects = [o for o in yaml.safe_load_all((ROOT / "deploy" / "fleet" / "live-reader.yaml").read_text()) if o]
    for o in objects:
        kubernetes_validate.validate(o, KUBE_VERSION, strict=True)
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        assert "*" not in rule["resources"] and "*" not in rule["apiGroups"], f"wildcard in {rule}"
        assert "secrets" not in rule["resources"], f"secrets readable: {rule}"
        if rule["verbs"] == ["impersonate"]:
            # A user's get_resource reads as that user: the member cluster's RBAC decides.
            assert rule == {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"],
                            "verbs": ["impersonate"]}, rule
            continue
        want = {"list"} if rule["resources"] == ["events"] else {"get"}
        assert set(rule["verbs"]) == want, f"{rule}: get objects, list events, impersonate callers, nothing else"
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert {("", "pods"), ("apps", "replicasets"), ("apps", "deployments"), ("", "events")} <= granted
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    token = next(o for o in objects if o["kind"] == "Secret")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == binding["subjects"][0]["name"]


@check
def ingest_off_without_an_endpoint_fails_with_a_message():
    render_refused({"ingest": {"enabled": False}}, "watcher.config.restEndpoint", "rendered a watcher with nowhere to send")


@check
def the_watcher_defaults_to_this_release_ingest_service():
    objects, _ = render()
    service = named(objects, "Service", "-ingest")["metadata"]["name"]
    want = f"http://{service}.{NAMESPACE}.svc:3000/api/v1/instances/sync"
    assert env_of(container(objects, "watcher"))["REST_ENDPOINT"]["value"] == want


@check
def chroma_off_needs_a_url_and_renders_no_statefulset():
    render_refused({"chroma": {"enabled": False}}, "chromaUrl", "rendered an ingest server with no store")
    objects, _ = render({"chroma": {"enabled": False}, "ingest": {"config": {"chromaUrl": "http://c:8000"}}})
    assert not of_kind(objects, "StatefulSet")
    assert env_of(container(objects, "ingest"))["CHROMA_URL"]["value"] == "http://c:8000"


@check
def qdrant_replaces_chroma_with_its_url_and_the_key_from_a_secret():
    objects, notes = render({"store": {"qdrant": {"url": "http://qdrant.db.svc:6333",
                                                  "apiKeySecret": {"name": "qdrant"}}}})
    env = env_of(container(objects, "ingest"))
    assert env["QDRANT_URL"]["value"] == "http://qdrant.db.svc:6333", env["QDRANT_URL"]
    key = env["QDRANT_API_KEY"]
    assert "value" not in key and key["valueFrom"]["secretKeyRef"] == {"name": "qdrant", "key": "api-key"}
    assert not {"CHROMA_URL", "CHROMA_TENANT", "CHROMA_DATABASE"} & set(env), sorted(env)
    assert not of_kind(objects, "StatefulSet"), "the bundled Chroma is not needed with Qdrant"
    assert "Qdrant at http://qdrant.db.svc:6333" in notes, notes
    # Without a Secret, no key variable at all (a Qdrant without authentication).
    objects, _ = render({"store": {"qdrant": {"url": "http://q:6333"}}})
    assert "QDRANT_API_KEY" not in env_of(container(objects, "ingest"))


@check
def qdrant_collections_are_spread_as_the_values_say():
    objects, _ = render({"store": {"qdrant": {"url": "http://q:6333"}}})
    env = env_of(container(objects, "ingest"))
    # Defaults: one shard, one copy, as Qdrant makes a collection unasked.
    assert [env[n]["value"] for n in ("QDRANT_SHARDS", "QDRANT_REPLICATION_FACTOR",
                                      "QDRANT_WRITE_CONSISTENCY", "QDRANT_WRITE_ORDERING")] \
        == ["1", "1", "1", "weak"], env
    objects, _ = render({"store": {"qdrant": {"url": "http://q:6333", "shards": 6, "replicationFactor": 2,
                                              "writeConsistency": 2, "writeOrdering": "medium"}}})
    env = env_of(container(objects, "ingest"))
    assert [env[n]["value"] for n in ("QDRANT_SHARDS", "QDRANT_REPLICATION_FACTOR",
                                      "QDRANT_WRITE_CONSISTENCY", "QDRANT_WRITE_ORDERING")] \
        == ["6", "2", "2", "medium"], env
    # Chroma's releases say nothing of Qdrant.
    objects, _ = render()
    assert not {n for n in env_of(container(objects, "ingest")) if n.startswith("QDRANT_")}


@check
def the_ingest_server_runs_two_replicas_with_a_disruption_budget_and_drains_on_sigterm():
    objects, _ = render()
    deployment = named(objects, "Deployment", "-ingest")
    assert deployment["spec"]["replicas"] == 2, deployment["spec"]["replicas"]
    pdb = named(objects, "PodDisruptionBudget", "-ingest")
    assert pdb and pdb["spec"]["minAvailable"] == 1, pdb
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), pdb
    assert not [p for p in of_kind(objects, "PodDisruptionBudget") if p is not pdb], "one budget, the server's"
    # Not ready while stopping: the drain outlasts the readiness probe's failures, and the
    # grace period outlasts the drain.
    c = container(objects, "ingest")
    probe = c["readinessProbe"]
    drain = int(env_of(c)["CW_SHUTDOWN_DRAIN_SECS"]["value"])
    assert drain > probe["periodSeconds"] * probe["failureThreshold"], (drain, probe)
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain
    # One replica: a budget of one available would block every drain of its node.
    objects, _ = render({"ingest": {"replicas": 1}})
    assert not of_kind(objects, "PodDisruptionBudget")
    objects, _ = render({"ingest": {"podDisruptionBudget": {"enabled": False}}})
    assert not of_kind(objects, "PodDisruptionBudget")


@check
def bundled_chroma_has_a_claim_and_is_the_default_store():
    objects, _ = render()
    sts = named(objects, "StatefulSet", "-chroma")
    claims = sts["spec"]["volumeClaimTemplates"]
    assert claims and claims[0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    mounts = {m["mountPath"] for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    assert "/data" in mounts
    url = env_of(container(objects, "ingest"))["CHROMA_URL"]["value"]
    assert url.startswith(f"http://{named(objects, 'Service', '-chroma')['metadata']['name']}.")


@check
def all_on_adds_servicemonitors_and_networkpolicies_that_let_the_watcher_in():
    objects, _ = render(scenario("all-on"))
    monitors = {m["metadata"]["name"].rsplit("-", 1)[-1]: m for m in of_kind(objects, "ServiceMonitor")}
    assert set(monitors) == {"watcher", "ingest"}, set(monitors)
    for name, monitor in monitors.items():
        endpoint = monitor["spec"]["endpoints"][0]
        service = named(objects, "Service", f"-{name}")
        assert endpoint["path"] == "/metrics", endpoint
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}, endpoint
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    policies = {p["metadata"]["name"].rsplit("-", 1)[-1]: p for p in of_kind(objects, "NetworkPolicy")}
    assert set(policies) == {"ingest", "watcher", "chroma"}, set(policies)
    peers = policies["ingest"]["spec"]["ingress"][0]["from"]
    assert any((p.get("podSelector") or {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "watcher"
               for p in peers), peers


def pod_labels(objects: list[dict], kind: str, suffix: str) -> dict:
    return named(objects, kind, suffix)["spec"]["template"]["metadata"]["labels"]


def admits(policy: dict, labels: dict, port: str) -> bool:
    """Whether `policy` lets a pod of this namespace with `labels` in on `port`
    (podSelector peers only: what a pod of the release can be matched by)."""
    for rule in policy["spec"].get("ingress", []):
        if port not in {p.get("port") for p in rule.get("ports", [])}:
            continue
        for peer in rule.get("from", []):
            selector = peer.get("podSelector")
            if selector is not None and "namespaceSelector" not in peer \
                    and selector.get("matchLabels", {}).items() <= labels.items():
                return True
    return False


@check
def by_default_the_bundled_chroma_admits_the_ingest_pods_only():
    objects, _ = render()
    policy = named(objects, "NetworkPolicy", "-chroma")
    assert policy, "no NetworkPolicy for the bundled Chroma by default"
    chroma = pod_labels(objects, "StatefulSet", "-chroma")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= chroma.items(), "it must select Chroma's pods"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert admits(policy, pod_labels(objects, "Deployment", "-ingest"), "http"), "ingest must reach Chroma"
    assert not admits(policy, pod_labels(objects, "Deployment", "-watcher"), "http"), "the watcher must not"
    assert not admits(policy, {"app": "anything-else"}, "http"), "other pods must not"
    assert not any(not rule.get("from") for rule in policy["spec"]["ingress"]), "an empty `from` admits all"
    # Turned off on request; extra peers are added beside the ingest pods.
    off, _ = render({"chroma": {"networkPolicy": {"enabled": False}}})
    assert not of_kind(off, "NetworkPolicy")
    backup = {"podSelector": {"matchLabels": {"app": "chroma-backup"}}}
    more, _ = render({"chroma": {"networkPolicy": {"from": [backup]}}})
    policy = named(more, "NetworkPolicy", "-chroma")
    assert admits(policy, {"app": "chroma-backup"}, "http")
    assert admits(policy, pod_labels(more, "Deployment", "-ingest"), "http")


@check
def the_ingest_server_listens_on_every_interface_in_its_pod():
    # cw serve binds 127.0.0.1 unless told otherwise: the Service and the probes need 0.0.0.0.
    for name in ["defaults"] + SCENARIOS:
        objects, _ = render({} if name == "defaults" else scenario(name))
        c = container(objects, "ingest")
        if c is None:
            continue
        assert env_of(c)["CW_HOST"].get("value") == "0.0.0.0", f"{name}: {env_of(c)['CW_HOST']}"


@check
def the_schema_rejects_wrong_types():
    bad = [
        {"watcher": {"config": {"batchMaxSize": "50"}}},
        {"watcher": {"config": {"logJson": "yes"}}},
        {"ingest": {"replicas": "2"}},
        {"ingest": {"embedding": {"provider": "cohere"}}},
        {"watcher": {"rbac": {"extraRules": [{"apiGroups": ["x.io"], "resources": ["*"]}]}}},
        {"watcher": {"config": {"watchNamespaces": "default"}}},
        {"ingest": {"config": {"chromaUrl": "chroma:8000"}}},
        {"store": {"qdrant": {"url": "qdrant:6333"}}},
        {"store": {"qdrant": {"apiKey": "inline keys are not accepted"}}},
        {"store": {"qdrant": {"shards": 0}}},
        {"store": {"qdrant": {"writeOrdering": "eventual"}}},
        {"ingest": {"podDisruptionBudget": {"minAvailable": 2}}},
        {"typo": True},
    ]
    for values in bad:
        for attempt in (chart().validate_schema, render):
            try:
                attempt(values)
            except helm.HelmValuesError:
                continue
            raise AssertionError(f"accepted {values} ({attempt.__name__})")
    for name in ["defaults"] + SCENARIOS:
        chart().validate_schema({} if name == "defaults" else scenario(name))


@check
def notes_tell_how_to_check_it_worked():
    _, notes = render()
    assert "port-forward" in notes and 'cw search "' in notes and "CW_INGEST_TOKEN" in notes, notes


@check
def committed_quick_start_manifests_match_the_chart():
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "helm.py"), "manifests", "--check"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).strip()


# all-on: everything the chart renders; e2e-kind: the values `scripts/e2e kind` installs with.
@check
def the_image_builds_cw_with_cargo_release_locked_and_runs_non_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    build = "cargo build --release -p cw --locked"
    assert build in dockerfile, f"the Dockerfile does not run `{build}`"
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", dockerfile, re.M)
    final_image, final_name = stages[-1]
    assert final_image.startswith("gcr.io/distroless/") and final_image.endswith(":nonroot"), stages
    for image, name in stages:
        if image.startswith("gcr.io/distroless/"):
            block = dockerfile.split(f"AS {name}", 1)[1].split("\nFROM ", 1)[0]
            assert "USER 65532:65532" in block and 'ENTRYPOINT ["/usr/local/bin/cw"]' in block, name
    # The kind run uses the image with the model baked in, at the path its values point to.
    e2e = scenario("e2e-kind")
    model_dir = e2e["ingest"]["embedding"]["local"]["modelDir"]
    assert f"ENV CW_MODEL_DIR={model_dir}" in dockerfile, model_dir
    assert "--target runtime-local-model" in (ROOT / "scripts" / "e2e").read_text()


SCENARIOS = ["all-on", "watcher-off", "ingest-off", "e2e-kind"]


def main() -> int:
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
        except Exception as exc:  # report every check, then fail the run
            failed += 1
            detail = str(exc) if isinstance(exc, AssertionError) else traceback.format_exc()
            print(f"FAIL {fn.__name__}: {detail}")
        else:
            passed += 1
            print(f"ok   {fn.__name__}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
