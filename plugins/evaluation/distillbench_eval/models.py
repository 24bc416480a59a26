"""The student/teacher architectures of the field's tables, registered through ``register_models``.

Learning rates are RDED's per-student AdamW rates (RDED ``argument.py``;
the same table is in D3HR's ``validation/argument.py``).
"""
from distillbench.api import ModelSpec, UsageError


def convnet(depth: int, num_classes: int, image_size: int, width: int = 128, norm: str = "batch"):
    """ConvNet-W128 (RDED/D3HR ``convD``): [conv3x3 -> BatchNorm -> ReLU -> AvgPool2] x depth -> Linear.
    ``norm="instance"``: the dataset-distillation literature's ConvNet (DC-bench ``networks.py``
    ``instancenorm``: GroupNorm with a group per channel), the ``ConvNetW128`` of G-VBSM's and EDC's pools."""
    import torch.nn as nn
    side = image_size // 2 ** depth
    if side < 1:
        raise UsageError(f"student conv{depth} halves the image {depth} times, so it needs at least "
                         f"{2 ** depth}px images; this dataset has {image_size}px: choose a shallower conv")
    layers, channels = [], 3
    for _ in range(depth):
        normalise = nn.BatchNorm2d(width) if norm == "batch" else nn.GroupNorm(width, width, affine=True)
        layers += [nn.Conv2d(channels, width, 3, padding=1), normalise, nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
        channels = width
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * side * side, num_classes))


def from_rded_convnet(state: dict) -> dict:
    """RDED's released ConvNet observers (``synthesize/models.py`` ``ConvNet``: ``layers.conv.D``,
    ``layers.norm.D``, ``classifier``) in the layout of :func:`convnet`'s ``nn.Sequential``; other layouts
    pass unchanged."""
    if not any(key.startswith("layers.conv.") for key in state):
        return state
    depth = 1 + max(int(key.split(".")[2]) for key in state if key.startswith("layers.conv."))
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "classifier":
            renamed[f"{4 * depth + 1}.{parts[1]}"] = value
        elif parts[:2] in (["layers", "conv"], ["layers", "norm"]):
            renamed[f"{4 * int(parts[2]) + (parts[1] == 'norm')}.{parts[3]}"] = value
        else:
            renamed[key] = value
    return renamed


def _modified(name: str):
    """A torchvision ResNet with a 3x3 stride-1 first conv and no max-pool, for 32-64 px inputs (RDED's
    ``resnet18_modified``/``resnet101_modified``; SRe2L's Tiny-ImageNet students)."""
    def build(num_classes: int, image_size: int):
        import torch.nn as nn
        import torchvision.models
        model = getattr(torchvision.models, name)(num_classes=num_classes)
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
        return model
    return build


def _torchvision(name: str):
    def build(num_classes: int, image_size: int):
        import torchvision.models
        return getattr(torchvision.models, name)(num_classes=num_classes)
    return build


def deit_tiny(num_classes: int, image_size: int):
    """timm DeiT-Tiny; patch 16 at >= 224 px, else image_size // 8 (4 px patches at 32 px)."""
    import timm
    patch = 16 if image_size >= 224 else max(1, image_size // 8)
    return timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=num_classes,
                             img_size=image_size, patch_size=patch)


def _conv(depth: int, width: int = 128, norm: str = "batch"):
    return lambda num_classes, image_size: convnet(depth, num_classes, image_size, width, norm)


def _zoo(name: str):
    def build(num_classes: int, image_size: int):
        from distillbench_eval import kd_zoo
        return {"wrn16_2": lambda: kd_zoo.WideResNet(16, 2, num_classes),
                "mobilenet_v2_half": lambda: kd_zoo.MobileNetV2(num_classes),
                "shufflenet_v2_half": lambda: kd_zoo.ShuffleNetV2(num_classes)}[name]()
    return build


MODELS = [
    *(ModelSpec(f"conv{d}", f"ConvNet-W128 of depth {d} (BatchNorm, ReLU, 2x2 average pooling)", _conv(d),
                adapt_state_dict=from_rded_convnet) for d in (3, 4, 5, 6)),
    *(ModelSpec(f"conv{d}_in", f"ConvNet-W128 of depth {d} with instance norm (the DD literature's ConvNet)",
                _conv(d, norm="instance")) for d in (1, 2, 3, 4, 5, 6)),
    ModelSpec("conv3_in_w32", "ConvNet of width 32, depth 3, instance norm (EDC's ConvNetW32)",
              _conv(3, 32, "instance")),
    ModelSpec("wrn16_2", "WRN-16-2, CIFAR-sized (the KD zoo's; G-VBSM's and EDC's pools)", _zoo("wrn16_2")),
    ModelSpec("mobilenet_v2_half", "MobileNetV2 at width 0.5, CIFAR-sized (the KD zoo's mobile_half)",
              _zoo("mobilenet_v2_half")),
    ModelSpec("shufflenet_v2_half", "ShuffleNetV2 x0.5, CIFAR-sized, 1x1 stem (the KD zoo's ShuffleV2_0_5)",
              _zoo("shufflenet_v2_half")),
    *(ModelSpec(f"{name}_modified", f"{label}, 3x3 stride-1 stem, no max-pool (32-64 px)", _modified(name))
      for name, label in (("resnet18", "ResNet-18"), ("resnet50", "ResNet-50"), ("resnet101", "ResNet-101"))),
    ModelSpec("resnet18", "torchvision ResNet-18", _torchvision("resnet18")),
    ModelSpec("resnet50", "torchvision ResNet-50", _torchvision("resnet50")),
    ModelSpec("resnet101", "torchvision ResNet-101", _torchvision("resnet101")),
    ModelSpec("mobilenet_v2", "torchvision MobileNetV2", _torchvision("mobilenet_v2"), adamw_lr=2.5e-3),
    ModelSpec("vgg11", "torchvision VGG-11", _torchvision("vgg11"), adamw_lr=5e-4),
    ModelSpec("efficientnet_b0", "torchvision EfficientNet-B0", _torchvision("efficientnet_b0"), adamw_lr=2e-3),
    ModelSpec("shufflenet_v2", "torchvision ShuffleNetV2 x1.0", _torchvision("shufflenet_v2_x1_0")),
    ModelSpec("deit_tiny", "timm DeiT-Tiny (ViT, patch size scaled to the image)", deit_tiny, adamw_lr=1e-4),
]
