"""`helm lint` and `helm template` of the chart, checked object by object."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tailor_devcluster.prometheus import service_monitor_jobs
from tailor_operator.core.calibration import parse_calibration
from tailor_operator.settings import load_settings
from tests.chart.tools import CHART, VALUES, ToolFailed, helm, kinds, one, render

pytestmark = pytest.mark.integration  # needs helm, built from hack/tools/helm

VALUE_FILES = sorted(VALUES.glob("*.yaml"))
ids = [p.stem for p in VALUE_FILES]


@pytest.mark.parametrize("values", VALUE_FILES, ids=ids)
def test_helm_lint_is_clean(values: Path) -> None:
    out = helm("lint", "--strict", CHART, "--values", values)
    assert "0 chart(s) failed" in out


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in kinds(objects, "Deployment")]


@pytest.mark.parametrize("values", VALUE_FILES, ids=ids)
def test_every_pod_meets_the_restricted_profile(values: Path) -> None:
    (spec,) = pod_specs(render(values))
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] > 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert not any(spec.get(host) for host in ("hostNetwork", "hostPID", "hostIPC"))
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert context["readOnlyRootFilesystem"] is True
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert all("hostPath" not in v for v in spec.get("volumes", []))


def rules(objects: list[dict[str, Any]], kind: str) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, over every role of `kind`; resourceNames noted."""
    found: dict[tuple[str, str], set[str]] = {}
    for role in kinds(objects, kind):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    named = "@" + ",".join(rule["resourceNames"]) if "resourceNames" in rule else ""
                    found.setdefault((group, resource + named), set()).update(rule["verbs"])
    return found


JOB_RULES = {
    ("tailor.dev", "trainingjobs"): {"get", "list", "watch"},
    ("tailor.dev", "trainingjobs/status"): {"get", "update", "patch"},
    ("", "pods"): {"get", "list", "watch", "create", "delete", "patch"},
    ("", "configmaps"): {"create"},
    ("", "events"): {"create", "patch"},
}
# The backbone catalog is cluster-scoped: a ClusterRole in either mode, read-only but
# for marking an entry verified.
CATALOG_RULES = {
    ("tailor.dev", "backbones"): {"get", "list", "watch"},
    ("tailor.dev", "backbones/status"): {"get", "patch"},
}


def test_cluster_wide_rbac_is_the_documented_least_privilege() -> None:
    objects = render(VALUES / "default.yaml")
    assert rules(objects, "ClusterRole") == {
        **JOB_RULES,
        ("kopf.dev", "clusterkopfpeerings"): {"list", "watch"},
        ("kopf.dev", "clusterkopfpeerings@tailor"): {"get", "patch"},
        ("", "nodes"): {"get"},
        **CATALOG_RULES,
    }
    # The calibration table is the only ConfigMap the operator may read.
    assert rules(objects, "Role") == {("", "configmaps@tailor-calibration"): {"get"}}
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "tailor"


def test_namespaced_rbac_is_a_role_per_listed_namespace() -> None:
    objects = render(VALUES / "namespaced.yaml")
    # Cluster-wide, only the catalog (a Role cannot grant a cluster-scoped resource).
    assert rules(objects, "ClusterRole") == CATALOG_RULES
    assert len(kinds(objects, "ClusterRoleBinding")) == 1
    roles = {r["metadata"]["namespace"]: r for r in kinds(objects, "Role")}
    assert set(roles) == {"chart-team-a", "chart-team-b", "tailor-system"}
    for namespace in ("chart-team-a", "chart-team-b"):
        assert rules([roles[namespace]], "Role") == {
            **JOB_RULES,
            ("kopf.dev", "kopfpeerings"): {"list", "watch"},
            ("kopf.dev", "kopfpeerings@tailor"): {"get", "patch"},
        }
    bindings = {b["metadata"]["namespace"] for b in kinds(objects, "RoleBinding")}
    assert bindings == set(roles)
    peerings = {p["metadata"]["namespace"] for p in kinds(objects, "KopfPeering")}
    assert peerings == {"chart-team-a", "chart-team-b"}
    (spec,) = pod_specs(objects)
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["TAILOR_NAMESPACES"] == "chart-team-a,chart-team-b"


@pytest.mark.parametrize("read_nodes", [True, False])
@pytest.mark.parametrize("peering", [True, False])
def test_namespaced_mode_grants_nothing_on_pods_outside_the_listed_namespaces(
    read_nodes: bool, peering: bool
) -> None:
    objects = render(
        sets=(
            "watchNamespaces={team-a}",
            "replicaCount=1",
            f"rbac.readNodes={str(read_nodes).lower()}",
            f"peering.enabled={str(peering).lower()}",
        )
    )
    # Cluster-wide: the read-only catalog (and its status), and nodes when asked.
    nodes = {("", "nodes"): {"get"}} if read_nodes else {}
    assert rules(objects, "ClusterRole") == {**CATALOG_RULES, **nodes}
    bound = {b["roleRef"]["name"] for b in kinds(objects, "ClusterRoleBinding")}
    assert bound == {r["metadata"]["name"] for r in kinds(objects, "ClusterRole")}
    # Pods only where TrainingJobs are watched; elsewhere, the calibration table alone.
    for role in kinds(objects, "Role"):
        granted = rules([role], "Role")
        if role["metadata"]["namespace"] == "team-a":
            assert granted[("", "pods")] == JOB_RULES[("", "pods")]
        else:
            assert granted == {("", "configmaps@tailor-calibration"): {"get"}}


def boundary(objects: list[dict[str, Any]]) -> tuple[tuple[str, ...] | None, ...]:
    policy = load_settings(operator_env(objects)).policy
    return (
        policy.allowed_endpoints,
        policy.allowed_priority_classes,
        policy.allowed_toleration_keys,
    )


def test_the_tenant_boundary_values_reach_the_operator() -> None:
    assert boundary(render(VALUES / "namespaced.yaml")) == (
        ("http://minio.storage:9000", "https://s3.eu-west-1.amazonaws.com"),
        (),  # [] in values: no priority class but the cluster's default
        ("nvidia.com/gpu",),
    )
    # null, the default: the operator allows anything, as before the values existed.
    assert boundary(render(VALUES / "default.yaml")) == (None, None, None)


@pytest.mark.parametrize("values", VALUE_FILES, ids=ids)
def test_nothing_grants_secrets_or_wildcards(values: Path) -> None:
    objects = render(values)
    for role in kinds(objects, "Role") + kinds(objects, "ClusterRole"):
        for rule in role["rules"]:
            assert "secrets" not in rule["resources"], role["metadata"]["name"]
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]


def operator_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    (spec,) = pod_specs(objects)
    return {e["name"]: e["value"] for e in spec["containers"][0]["env"] if "value" in e}


def test_the_operator_reads_the_settings_the_values_give() -> None:
    settings = load_settings(operator_env(render(VALUES / "monitoring.yaml")))
    assert settings.workers == 16
    assert settings.policy.max_attempts == 3
    assert settings.policy.backoff_base_seconds == 2.5
    assert settings.policy.default_model == "convnext_tiny"
    assert settings.policy.cost.fixed_seconds == 30
    assert settings.policy.cost.reference_images_per_second == 3000.5
    assert settings.policy.cost.detection_overhead == 1.25
    assert settings.policy.trainer_image == "registry.example.com/ml/tailor-trainer:0.1.0-cu13"
    assert settings.policy.image_pull_policy == "Always"
    assert settings.policy.train_command[:3] == ("python", "-m", "tailor_trainer")
    assert settings.policy.cpu_per_gpu == 8
    assert settings.policy.image_pull_timeout_seconds == 300
    assert settings.calibration == ("tailor-system", "tailor-calibration")
    assert settings.peering_name == "tailor"


def test_defaults_leave_the_operator_defaults_alone() -> None:
    env = operator_env(render(VALUES / "default.yaml"))
    settings, builtin = load_settings(env), load_settings({})
    assert settings.policy.max_attempts == builtin.policy.max_attempts
    assert settings.workers == builtin.workers
    assert settings.policy.trainer_image == "ghcr.io/tailor-dev/tailor-trainer:0.1.0"


def test_standalone_values_run_one_replica_without_peering() -> None:
    objects = render(VALUES / "standalone.yaml")
    env = operator_env(objects)
    settings = load_settings(env)
    assert (settings.peering_name, settings.calibration) == (None, None)
    assert one(objects, "Deployment")["spec"]["replicas"] == 1
    assert kinds(objects, "ServiceAccount") == [] == kinds(objects, "ClusterKopfPeering")
    assert kinds(objects, "PodDisruptionBudget") == [] == kinds(objects, "Service")


@pytest.mark.parametrize("values", ["default.yaml", "namespaced.yaml"])
def test_the_calibration_table_is_one_the_operator_accepts(values: str) -> None:
    import yaml

    given = yaml.safe_load((VALUES / values).read_text()) or {}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["calibration"]
    expected = {**defaults, **given.get("calibration", {})}
    table = parse_calibration(one(render(VALUES / values), "ConfigMap")["data"], "rv")
    assert table.version == str(expected["version"])
    assert table.default_factor == expected["default"]
    assert dict(table.factors) == expected["factors"]


def test_the_dashboard_configmap_carries_the_grafana_sidecar_label() -> None:
    objects = render(VALUES / "monitoring.yaml")
    (dashboard,) = [c for c in kinds(objects, "ConfigMap") if "tailor.json" in c["data"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["tailor.json"]) == json.loads(
        (CHART / "files" / "tailor-dashboard.json").read_text()
    )


def test_the_service_monitor_selects_the_metrics_port_and_keeps_the_jobs_namespace() -> None:
    """What a Prometheus Operator makes of the chart's ServiceMonitor (the same
    translation the real Prometheus in make test-real-node scrapes by)."""
    objects = render(VALUES / "monitoring.yaml")
    monitor = one(objects, "ServiceMonitor")
    (service,) = [s for s in kinds(objects, "Service") if "metrics" in s["metadata"]["name"]]
    (job,) = service_monitor_jobs(monitor, Path("kubeconfig"))
    keeps = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if "regex" in r}
    ports = keeps.pop("__meta_kubernetes_endpointslice_port_name")
    assert ports in {port["name"] for port in service["spec"]["ports"]}
    # Prometheus spells a label key in its meta labels with "_" for what names cannot hold.
    labels = {
        "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
        for key, value in service["metadata"]["labels"].items()
    }
    assert keeps  # the Service is selected by its labels, not every Service in the namespace
    for meta, regex in keeps.items():
        assert re.fullmatch(regex, labels[meta]), meta
    # The series' own `namespace` (the TrainingJob's) wins over the target's.
    assert job["honor_labels"] is True


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (("replicaCount=0",), "replicaCount"),
        (("replicas=2",), "replicas"),
        (("calibration.factors.NVIDIA-L4=0",), "NVIDIA-L4"),
        (("calibration.default=101",), "default"),
        (("watchNamespaces={Team-A}",), "watchNamespaces"),
        (("metrics.prometheusRule.stalledFor=soon",), "stalledFor"),
        (("peering.enabled=false",), "replicaCount above 1 needs peering.enabled"),
        (("serviceAccount.create=false",), "serviceAccount.name is required"),
        (("calibration.create=false",), "calibration.existing"),
        # The schema's path of the entry (the command line spells it with dots).
        (("tenancy.allowedEndpoints={http://minio:9000@evil.example}",), "/allowedEndpoints/0"),
        (("tenancy.allowedEndpoints={http://minio:9000/bucket}",), "/allowedEndpoints/0"),
        (("tenancy.allowedPriorityClasses={Batch}",), "/allowedPriorityClasses/0"),
        (("tenancy.allowedTolerationKeys={bad key}",), "/allowedTolerationKeys/0"),
    ],
)
def test_bad_values_are_refused_with_their_name(sets: tuple[str, ...], words: str) -> None:
    with pytest.raises(ToolFailed) as error:
        render(sets=sets)
    assert words in str(error.value)
