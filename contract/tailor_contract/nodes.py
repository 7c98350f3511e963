"""How a GPU node presents itself to Kubernetes: the extended resource pods request and
the label that names the GPU product (NVIDIA's device plugin and GPU feature discovery
write both). The operator schedules and charges by them; the dev cluster's nodes (real,
kwok and the node agent) advertise them; calibration factors are keyed by the label's
values."""

GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# The product label of a slot backed by CPUs (the dev cluster's, no GPU behind it).
CPU_SLOT_PRODUCT = "tailor-cpu-slot"
