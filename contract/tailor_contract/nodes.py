"""How a GPU node presents itself to Kubernetes: the extended resource pods request and
the label that names the GPU product (NVIDIA's device plugin and GPU feature discovery
write both). The operator schedules and charges by them; the dev cluster's nodes (real
and kwok) advertise them; calibration factors are keyed by the label's values."""

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# The product label of a slot backed by CPUs (the dev cluster's, no GPU behind it).
CPU_SLOT_PRODUCT = "tailor-cpu-slot"
# The CPUs a pod requested, in millicores, given to the trainer through the downward
# API: without a CPU limit a container sees every core of its node, and threads and
# data-loader workers sized by those oversubscribe the CPUs it shares with other pods.
CPU_REQUEST_ENV = "TAILOR_CPU_REQUEST_MILLICORES"
