"""The catalog of pretrained backbones: `tailor-models import` and `tailor-models list`.

A platform team's tool, not part of the operator or the trainer (neither imports it):
it maps a checkpoint's keys onto a timm architecture, proves they load strictly,
measures the model, writes safetensors weights to S3 and records them as a
cluster-scoped Backbone object (crds/tailor.dev_backbones.yaml).
"""
