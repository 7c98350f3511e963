"""A node agent for development: a kubelet stand-in that runs pods as local processes.

It registers a Node (real CUDA devices when present, else CPU-backed "GPU" slots
labelled nvidia.com/gpu.product=tailor-cpu-slot), keeps its Lease fresh, and runs
each pod the scheduler binds to it as a process: environment resolved like the
kubelet's (secretKeyRef, configMapKeyRef, fieldRef), ConfigMap/Secret/emptyDir
volumes as folders, status reported like a kubelet's, SIGTERM then SIGKILL on
deletion. It is a development aid: no images, no isolation, no resource limits.
Production runs on real kubelets.
"""

from tailor_devcluster.nodeagent.agent import AgentSettings, NodeAgent
from tailor_devcluster.nodeagent.capacity import AGENT_LABEL, Devices

__all__ = ["AGENT_LABEL", "AgentSettings", "Devices", "NodeAgent"]
