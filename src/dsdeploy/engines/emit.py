"""Render a LaunchPlan as a shell script, docker compose file, systemd units or Kubernetes manifests.

Every output is deterministic text (golden-tested). Multi-node plans become one script that
dispatches on $NODE_RANK, one compose service / systemd unit per node, or a Kubernetes StatefulSet
whose pod ordinal picks the node's commands.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from dsdeploy.engines.base import Launch, LaunchPlan
from dsdeploy.errors import UserError

EMITS = ("command", "compose", "systemd", "k8s")


# ----------------------------------------------------------------------------- helpers
def _sh(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def _sh_multiline(argv: list[str], indent: str = "  ") -> str:
    """argv as a readable shell command: flags with their values on one line each."""
    parts: list[str] = []
    i = 0
    argv = [str(a) for a in argv]
    # keep the program (and a subcommand/positional right after it) on the first line
    head = [argv[0]]
    i = 1
    if len(argv) > 2 and argv[1] == "-m":  # python -m module
        head, i = argv[:3], 3
    while i < len(argv) and not argv[i].startswith("-"):
        head.append(argv[i])
        i += 1
    parts.append(_sh(head))
    while i < len(argv):
        item = [argv[i]]
        i += 1
        while i < len(argv) and not argv[i].startswith("-"):
            item.append(argv[i])
            i += 1
        parts.append(indent + _sh(item))
    return " \\\n".join(parts)


def _env_prefix(env: dict[str, str]) -> str:
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))


def _node_script(launches: list[Launch], indent: str = "") -> list[str]:
    lines = []
    exported: dict[str, str] = {}
    for l in launches:
        for k, v in sorted(l.env.items()):
            if exported.get(k) != v:
                lines.append(f"{indent}export {k}={shlex.quote(v)}")
                exported[k] = v
        cmd = _sh_multiline(l.argv, indent=indent + "  ")
        if l.setup:
            lines.append(indent + cmd)
        else:
            lines.append(indent + "exec " + cmd)
    return lines


def _node_oneliner(launches: list[Launch]) -> str:
    """The node's processes as one `bash -c` string (compose / k8s)."""
    out = []
    exported: dict[str, str] = {}
    for l in launches:
        new = {k: v for k, v in l.env.items() if exported.get(k) != v}
        exported.update(l.env)
        env = _env_prefix(new)
        if env:
            out.append(f"export {env}")
        out.append(_sh(l.argv) if l.setup else f"exec {_sh(l.argv)}")
    return " && ".join(out)


def _header(plan: LaunchPlan, title: str, summary: list[str]) -> list[str]:
    lines = [f"# {title}", f"# engine: {plan.engine}; flags checked against {plan.checked_against}"]
    lines += [f"# {s}" for s in summary]
    if plan.fabric:
        lines.append(f"# fabric: {plan.fabric}")
    lines += [f"# note: {n}" for n in plan.notes]
    return lines


# ----------------------------------------------------------------------------- YAML (no dependency)
def _yaml_scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)


def to_yaml(obj, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}"
        lines = []
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {to_yaml(v, 0).strip() if isinstance(v, (dict, list)) else _yaml_scalar(v)}")
        return "\n".join(lines)
    if isinstance(obj, list):
        if not obj:
            return pad + "[]"
        lines = []
        for v in obj:
            if isinstance(v, dict) and v:
                sub = to_yaml(v, indent + 1).split("\n")
                sub[0] = pad + "- " + sub[0].lstrip()
                lines.extend(sub)
            elif isinstance(v, list) and v:
                lines.append(pad + "-")
                lines.append(to_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}- {_yaml_scalar(v)}")
        return "\n".join(lines)
    return pad + _yaml_scalar(obj)


# ----------------------------------------------------------------------------- command
def emit_command(plan: LaunchPlan, title: str, summary: list[str]) -> str:
    lines = ["#!/usr/bin/env bash"] + _header(plan, title, summary) + ["set -euo pipefail", ""]
    if plan.nodes == 1:
        lines += _node_script(plan.for_node(0))
    else:
        lines.append(
            f'NODE_RANK="${{NODE_RANK:?set NODE_RANK to the rank of this node, 0..{plan.nodes - 1} (0 = head)}}"'
        )
        lines.append('case "$NODE_RANK" in')
        for r in range(plan.nodes):
            lines.append(f"  {r})")
            lines += _node_script(plan.for_node(r), indent="    ")
            lines.append("    ;;")
        lines.append(f'  *) echo "NODE_RANK must be 0..{plan.nodes - 1}" >&2; exit 2 ;;')
        lines.append("esac")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- compose
def _container_argv(plan: LaunchPlan, launches: list[Launch]) -> list[str]:
    if len(launches) == 1 and not launches[0].env:
        return [str(a) for a in launches[0].argv]
    return ["bash", "-c", _node_oneliner(launches)]


def _compose_gpu(plan: LaunchPlan) -> dict:
    """How a compose service gets its GPUs. NVIDIA: a device reservation for the NVIDIA container
    toolkit (docs.docker.com/compose/how-tos/gpu-support). AMD: the ROCm device nodes, the video
    group and an unconfined seccomp profile, as AMD's ROCm vLLM/SGLang pages run their images
    (rocm.docs.amd.com/projects/ai-ecosystem/en/latest/inference/vllm.html)."""
    if not plan.uses_gpu:
        return {}
    if plan.gpu_vendor == "amd":
        return {
            "devices": ["/dev/kfd", "/dev/dri"],
            "group_add": ["video"],
            "cap_add": ["SYS_PTRACE"],
            "security_opt": ["seccomp=unconfined"],
        }
    return {
        "deploy": {
            "resources": {"reservations": {"devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]}}
        }
    }


# Kubernetes extended resources: NVIDIA's and AMD's GPU device plugins, and the RDMA shared-device
# plugin that NVIDIA's network operator deploys for InfiniBand/RoCE (docs.nvidia.com/networking/display/cokan10/network+operator)
K8S_GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
K8S_RDMA_RESOURCE = "rdma/rdma_shared_device_a"


def emit_compose(plan: LaunchPlan, title: str, summary: list[str]) -> str:
    services = {}
    for r in range(plan.nodes):
        ls = plan.for_node(r)
        name = f"{plan.engine.replace('.', '')}-node{r}" if plan.nodes > 1 else plan.engine.replace(".", "")
        svc: dict = {"image": plan.image}
        env: dict[str, str] = {}
        if len(ls) == 1:
            env = dict(sorted(ls[0].env.items()))
            svc["entrypoint"] = [str(a) for a in ls[0].argv]
        else:
            svc["entrypoint"] = ["bash", "-c", _node_oneliner(ls)]
        if env:
            svc["environment"] = env
        svc["volumes"] = [f"{p}:{p}:ro" for p in [plan.model_path, *plan.extra_mounts]]
        svc["ipc"] = "host"
        if plan.nodes > 1:
            svc["network_mode"] = "host"
        else:
            svc["ports"] = [f"{plan.port}:{plan.port}"]
        svc.update(_compose_gpu(plan))
        if plan.nodes > 1 and plan.uses_gpu:  # GPUDirect RDMA between nodes: the HCAs and locked memory
            svc["devices"] = [*svc.get("devices", []), "/dev/infiniband"]
            svc["cap_add"] = sorted({*svc.get("cap_add", []), "IPC_LOCK"})
        svc["ulimits"] = {"memlock": -1}
        svc["restart"] = "unless-stopped"
        services[name] = svc
    head = _header(plan, title, summary)
    if plan.nodes > 1:
        head.append(
            f"# multi-node: on node N run `docker compose up {plan.engine.replace('.', '')}-nodeN` (node 0 first)"
        )
    return "\n".join(head) + "\n" + to_yaml({"services": services}) + "\n"


# ----------------------------------------------------------------------------- systemd
def _systemd_quote(argv: list[str]) -> str:
    out = []
    for a in argv:
        a = str(a).replace("%", "%%").replace("$", "$$")
        if any(c in a for c in " \t\"\\'") or a == "":
            a = '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(a)
    return " ".join(out)


def emit_systemd(plan: LaunchPlan, title: str, summary: list[str]) -> str:
    chunks = ["\n".join(_header(plan, title, summary))]
    for r in range(plan.nodes):
        ls = plan.for_node(r)
        unit = f"dsdeploy-{plan.engine.replace('.', '')}" + (f"-node{r}" if plan.nodes > 1 else "") + ".service"
        lines = [f"# --- file: /etc/systemd/system/{unit}" + (f" (on node {r})" if plan.nodes > 1 else "") + " ---"]
        lines += [
            "[Unit]",
            f"Description={plan.engine} model server ({title})" + (f", node {r}" if plan.nodes > 1 else ""),
            "After=network-online.target",
            "Wants=network-online.target",
            "",
            "[Service]",
            "Type=simple",
        ]
        env: dict[str, str] = {}
        for l in ls:
            env.update(l.env)
        for k, v in sorted(env.items()):
            lines.append(f'Environment="{k}={v}"')
        for l in ls:
            cmd = _systemd_quote(["/usr/bin/env", *l.argv])
            lines.append(("ExecStartPre=" if l.setup else "ExecStart=") + cmd)
        if any(l.role == "ray-head" for l in ls):
            lines.append("ExecStopPost=/usr/bin/env ray stop")
        lines += [
            "Restart=on-failure",
            "RestartSec=10",
            "TimeoutStartSec=1800",
            "LimitMEMLOCK=infinity",
            "LimitNOFILE=65535",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
        chunks.append("\n".join(lines))
    chunks.append(
        "# install: copy each unit, then `systemctl daemon-reload && systemctl enable --now <unit>`;\n"
        '# /usr/bin/env finds the engine on the service\'s PATH: add Environment="PATH=<venv>/bin:/usr/bin:/bin" if it lives in a venv'
    )
    return "\n\n".join(chunks) + "\n"


# ----------------------------------------------------------------------------- k8s
def k8s_name(plan: LaunchPlan) -> str:
    return "dsdeploy-" + plan.engine.replace(".", "").replace("_", "-")


def k8s_head_addr(engine: str) -> str:
    n = "dsdeploy-" + engine.replace(".", "").replace("_", "-")
    return f"{n}-0.{n}-headless"


def emit_k8s(plan: LaunchPlan, title: str, summary: list[str]) -> str:
    name = k8s_name(plan)
    labels = {"app": name}
    if plan.nodes == 1:
        ls = plan.for_node(0)
        argv = _container_argv(plan, ls)
        env = [{"name": k, "value": v} for k, v in sorted(ls[0].env.items())] if len(ls) == 1 else []
    else:
        script = ['RANK="${HOSTNAME##*-}"', 'case "$RANK" in']
        for r in range(plan.nodes):
            script.append(f"  {r}) {_node_oneliner(plan.for_node(r))} ;;")
        script.append('  *) echo "unexpected pod ordinal $RANK" >&2; exit 2 ;;')
        script.append("esac")
        argv = ["bash", "-c", "\n".join(script)]
        env = []
    container: dict = {"name": plan.engine.replace(".", ""), "image": plan.image, "command": argv}
    if env:
        container["env"] = env
    container["ports"] = [{"containerPort": plan.port, "name": "http"}]
    res: dict = {}
    if plan.uses_gpu:
        res = {"limits": {K8S_GPU_RESOURCE.get(plan.gpu_vendor, "nvidia.com/gpu"): plan.gpus_per_node}}
        if plan.nodes > 1:  # GPUDirect RDMA between nodes: the HCA and locked memory
            res["limits"][K8S_RDMA_RESOURCE] = 1
            container["securityContext"] = {"capabilities": {"add": ["IPC_LOCK"]}}
    if res:
        container["resources"] = res
    container["volumeMounts"] = [
        {"name": f"model{i}", "mountPath": p, "readOnly": True}
        for i, p in enumerate([plan.model_path, *plan.extra_mounts])
    ] + [{"name": "dshm", "mountPath": "/dev/shm"}]
    probe = {"httpGet": {"path": "/health", "port": plan.port}, "periodSeconds": 10, "failureThreshold": 180}
    if plan.nodes == 1:
        container["startupProbe"] = probe
        container["readinessProbe"] = {"httpGet": {"path": "/health", "port": plan.port}, "periodSeconds": 10}
        container["livenessProbe"] = {
            "httpGet": {"path": "/health", "port": plan.port},
            "periodSeconds": 30,
            "failureThreshold": 5,
        }
    else:
        # only pod 0 serves HTTP; the others are alive while their engine process runs. A shell
        # probe that passes on workers and checks /health on the head keeps one template for all.
        check = (
            f'[ "${{HOSTNAME##*-}}" != 0 ] || python3 -c "import urllib.request;'
            f"urllib.request.urlopen('http://127.0.0.1:{plan.port}/health', timeout=5)\""
        )
        container["startupProbe"] = {
            "exec": {"command": ["bash", "-c", check]},
            "periodSeconds": 10,
            "failureThreshold": 180,
        }
        container["readinessProbe"] = {"exec": {"command": ["bash", "-c", check]}, "periodSeconds": 10}
    volumes = [
        {"name": f"model{i}", "hostPath": {"path": p, "type": "Directory" if not p.endswith(".gguf") else "File"}}
        for i, p in enumerate([plan.model_path, *plan.extra_mounts])
    ] + [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    pod: dict[str, Any] = {"metadata": {"labels": labels}, "spec": {"containers": [container], "volumes": volumes}}
    if plan.nodes > 1:  # one pod per node: never two of this set's pods on one host
        pod["spec"]["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
                ]
            }
        }
    docs: list[dict[str, Any]] = []
    if plan.nodes == 1:
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod},
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {"selector": labels, "ports": [{"name": "http", "port": plan.port, "targetPort": plan.port}]},
            }
        )
    else:
        pod["spec"]["subdomain"] = f"{name}-headless"
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": f"{name}-headless"},
                "spec": {
                    "clusterIP": "None",
                    "selector": labels,
                    "publishNotReadyAddresses": True,
                    "ports": [{"name": "http", "port": plan.port}],
                },
            }
        )
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "serviceName": f"{name}-headless",
                    "replicas": plan.nodes,
                    "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": labels},
                    "template": pod,
                },
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name},
                "spec": {
                    "selector": {**labels, "statefulset.kubernetes.io/pod-name": f"{name}-0"},
                    "ports": [{"name": "http", "port": plan.port, "targetPort": plan.port}],
                },
            }
        )
    head = _header(plan, title, summary)
    if plan.nodes > 1:
        head.append(
            "# one pod per node (required pod anti-affinity on kubernetes.io/hostname); each pod asks for one RDMA device "
            f"({K8S_RDMA_RESOURCE}, from NVIDIA's network operator): rename it to your cluster's RDMA resource"
        )
    return "\n".join(head) + "\n" + "\n---\n".join(to_yaml(d) for d in docs) + "\n"


def emit(plan: LaunchPlan, fmt: str, title: str, summary: list[str]) -> str:
    fn = {"command": emit_command, "compose": emit_compose, "systemd": emit_systemd, "k8s": emit_k8s}.get(fmt)
    if fn is None:
        raise UserError(f"--emit must be one of {', '.join(EMITS)}; got '{fmt}'")
    return fn(plan, title, summary)
