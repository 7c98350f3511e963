"""Container paths become folders of the pod: mounts, command lines and variables."""

from pathlib import Path
from typing import Any

import pytest

from tailor_devcluster.nodeagent.launch import (
    ContainerCreateError,
    build_environment,
    command_line,
    container_of,
    cpu_threads,
    device_env,
    resolve_program,
)
from tailor_devcluster.nodeagent.mounts import (
    Mount,
    MountError,
    map_argv,
    map_env,
    map_path,
    plan_mounts,
)
from tailor_devcluster.nodeagent.volumes import volume_files
from tests.unit.devcluster.test_nodeagent_env import FakeStore

POD_DIR = Path("/state/pods/team-a_p_1234")
CONFIG = Mount("/etc/tailor", POD_DIR / "volumes/config", "config", read_only=True)
TMP = Mount("/tmp", POD_DIR / "volumes/tmp", "tmp")
NESTED = Mount("/etc/tailor/keys", POD_DIR / "volumes/keys", "keys")


def trial_pod() -> dict[str, Any]:
    """The shape the operator's pod builder produces (core/pods.py)."""
    return {
        "metadata": {"name": "p", "namespace": "team-a", "uid": "1234"},
        "spec": {
            "containers": [
                {
                    "name": "trainer",
                    "command": ["tailor-train", "run", "--config", "/etc/tailor/trial.json"],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/tailor", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "dshm", "mountPath": "/dev/shm"},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "config",
                    "configMap": {
                        "name": "p",
                        "items": [{"key": "trial.json", "path": "trial.json"}],
                    },
                },
                {"name": "tmp", "emptyDir": {}},
                {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            ],
        },
    }


def test_each_mount_is_a_folder_of_the_pod():
    pod = trial_pod()
    mounts = plan_mounts(pod, pod["spec"]["containers"][0], POD_DIR)
    assert mounts == [
        CONFIG,
        TMP,
        Mount("/dev/shm", POD_DIR / "volumes/dshm", "dshm"),
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/tailor/trial.json", str(POD_DIR / "volumes/config/trial.json")),
        ("/etc/tailor", str(POD_DIR / "volumes/config")),
        ("/etc/tailor/keys/a.pem", str(POD_DIR / "volumes/keys/a.pem")),  # the deepest wins
        ("/etc/tailorx/trial.json", "/etc/tailorx/trial.json"),  # a prefix is not a parent
        ("/usr/bin/python", "/usr/bin/python"),
        ("relative/path", "relative/path"),
    ],
)
def test_paths_under_a_mount_are_mapped(path, expected):
    assert map_path(path, [CONFIG, TMP, NESTED]) == expected


def test_command_line_words_and_flag_values_are_mapped():
    argv = ["tailor-train", "run", "--config", "/etc/tailor/trial.json", "--out=/tmp/x", "s3://b/k"]
    assert map_argv(argv, [CONFIG, TMP]) == [
        "tailor-train",
        "run",
        "--config",
        str(POD_DIR / "volumes/config/trial.json"),
        f"--out={POD_DIR / 'volumes/tmp/x'}",
        "s3://b/k",
    ]


def test_variables_are_mapped_and_a_mounted_tmp_gets_its_hints():
    env = map_env({"HOME": "/tmp", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, [TMP])
    assert env == {
        "HOME": str(POD_DIR / "volumes/tmp"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "TMPDIR": str(POD_DIR / "volumes/tmp"),
        "TAILOR_CACHE_DIR": str(POD_DIR / "volumes/tmp/tailor-cache"),
    }


def test_a_pods_own_hint_variable_is_kept():
    assert map_env({"TMPDIR": "/scratch"}, [TMP])["TMPDIR"] == "/scratch"


def test_unsupported_volume_kinds_and_unknown_volumes_are_refused_by_name():
    pod = trial_pod()
    pod["spec"]["volumes"][1] = {"name": "tmp", "hostPath": {"path": "/var"}}
    with pytest.raises(MountError, match=r"volume 'tmp'.*not hostPath"):
        plan_mounts(pod, pod["spec"]["containers"][0], POD_DIR)
    pod["spec"]["containers"][0]["volumeMounts"].append({"name": "nope", "mountPath": "/x"})
    pod["spec"]["volumes"][1] = {"name": "tmp", "emptyDir": {}}
    with pytest.raises(MountError, match="'nope' names no volume"):
        plan_mounts(pod, pod["spec"]["containers"][0], POD_DIR)


def test_config_map_items_secrets_and_projected_tokens_become_files():
    store = FakeStore(
        secrets={("team-a", "tls"): {"ca.crt": "CA", "key": "K"}},
        config_maps={("team-a", "p"): {"trial.json": "{}", "other": "x"}},
    )
    pod = trial_pod()
    assert volume_files(pod, pod["spec"]["volumes"][0], store) == {"trial.json": "{}"}
    assert volume_files(pod, {"name": "s", "secret": {"secretName": "tls"}}, store) == {
        "ca.crt": "CA",
        "key": "K",
    }
    projected = {
        "name": "kube-api-access",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ]
        },
    }
    assert volume_files(pod, projected, store) == {
        "token": "token-for-team-a/default",
        "namespace": "team-a",
    }
    assert volume_files(pod, {"name": "tmp", "emptyDir": {}}, store) == {}


def test_a_missing_config_map_keeps_the_container_creating():
    pod = trial_pod()
    with pytest.raises(MountError, match='configmap "p" not found') as info:
        volume_files(pod, pod["spec"]["volumes"][0], FakeStore())
    assert info.value.reason == "ContainerCreating"


def test_the_environment_is_clean_with_the_termination_file_and_devices():
    env = build_environment(
        {"HOME": "/tmp", "AWS_ACCESS_KEY_ID": "key"},
        [TMP],
        POD_DIR,
        Path("/venv/bin"),
        device_env(cuda=False, devices=[]),
    )
    assert env["PATH"].startswith("/venv/bin:")
    assert env["HOME"] == str(POD_DIR / "volumes/tmp")
    assert env["TAILOR_TERMINATION_LOG"] == str(POD_DIR / "termination-log")
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # CPU slots hide any GPU
    assert env["AWS_ACCESS_KEY_ID"] == "key"
    assert "KUBECONFIG" not in env  # nothing of the agent's own environment leaks in
    assert device_env(cuda=True, devices=[2, 3]) == {"CUDA_VISIBLE_DEVICES": "2,3"}


def test_command_and_args_are_expanded_and_a_command_is_required():
    container = {"command": ["python", "-c"], "args": ["print('$(GREETING)')"]}
    assert command_line(container, {"GREETING": "hi"}) == ["python", "-c", "print('hi')"]
    with pytest.raises(ContainerCreateError, match="needs an explicit command"):
        command_line({"args": ["x"]}, {})


def test_programs_are_found_on_the_pods_path(tmp_path):
    program = tmp_path / "tailor-train"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert resolve_program(["tailor-train", "run"], str(tmp_path)) == [str(program), "run"]
    assert resolve_program(["/bin/sh", "-c"], str(tmp_path)) == ["/bin/sh", "-c"]
    with pytest.raises(ContainerCreateError, match='exec: "nope": executable file not found'):
        resolve_program(["nope"], str(tmp_path))


def test_only_single_container_pods_without_init_containers_run():
    with pytest.raises(ContainerCreateError, match="exactly one container, not 2"):
        container_of({"spec": {"containers": [{}, {}]}})
    with pytest.raises(ContainerCreateError, match="init containers"):
        container_of({"spec": {"containers": [{}], "initContainers": [{}]}})


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({"requests": {"cpu": "1"}}, {"OMP_NUM_THREADS": "1"}),
        ({"requests": {"cpu": "500m"}}, {"OMP_NUM_THREADS": "1"}),
        ({"requests": {"cpu": "1500m"}, "limits": {"cpu": "3"}}, {"OMP_NUM_THREADS": "3"}),
        ({"requests": {"memory": "1Gi"}}, {}),
        ({}, {}),
    ],
)
def test_openmp_threads_follow_the_cpu_limit_else_the_request(resources, expected):
    assert cpu_threads({"resources": resources}) == expected


def test_the_pods_own_thread_count_wins():
    env = build_environment(
        {"OMP_NUM_THREADS": "8"}, [], POD_DIR, Path("/venv/bin"), {}, {"OMP_NUM_THREADS": "1"}
    )
    assert env["OMP_NUM_THREADS"] == "8"


def test_a_deep_tmp_volume_gets_a_short_tmpdir_a_unix_socket_fits_in(tmp_path):
    import socket
    import tempfile
    import uuid

    from tailor_devcluster.nodeagent.shorttmp import LONGEST, remove_link, shorten_tmpdir

    deep = tmp_path / ("state-" + "x" * 60) / "pods" / "ns_pod_12345678" / "volumes" / "tmp"
    deep.mkdir(parents=True)
    uid = str(uuid.uuid4())
    env = {"TMPDIR": str(deep)}
    shorten_tmpdir(env, uid)
    try:
        short = Path(env["TMPDIR"])
        assert len(str(short)) <= LONGEST
        assert short.resolve() == deep.resolve()
        # What multiprocessing does under TMPDIR: a folder, and a socket in it.
        folder = tempfile.mkdtemp(prefix="pymp-", dir=short)
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(f"{folder}/listener-{uuid.uuid4().hex[:8]}")
        assert any(deep.iterdir())  # it landed in the pod's own /tmp
        with pytest.raises(OSError, match="too long"), socket.socket(socket.AF_UNIX) as direct:
            direct.bind(f"{deep}/pymp-abcdefgh/listener-abcdefgh")
    finally:
        remove_link(uid)
    assert not Path(env["TMPDIR"]).is_symlink()
    # A short TMPDIR is left alone.
    near = {"TMPDIR": "/tmp/pod"}
    shorten_tmpdir(near, uid)
    assert near == {"TMPDIR": "/tmp/pod"}
