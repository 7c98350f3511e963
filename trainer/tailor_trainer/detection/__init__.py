"""Object detection: COCO boxes parsed and checked, an FCOS detector on a timm backbone,
its data pipeline, its COCO metrics (pycocotools with vision-evaluation's settings)."""
