"""The registered zoo models: architectures, dataset variants and checkpoint sources.

Checksums and where they were found:
- CIFAR ResNets: full sha256 from ``NN2HW_DATA/zoo/cifar10/SOURCE.md`` (the files were copied
  byte-for-byte from akamaster/pytorch_resnet_cifar10 at d5489e8).
- torchvision files: full sha256 where public projects pin the same digest for the official file
  (each starts with the prefix in the file name); else verified by that prefix only, which is
  what ``torch.hub`` itself checks.
"""

from __future__ import annotations

from nn2hw.registry import Registry
from nn2hw.zoo.records import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CheckpointSource,
    Recovery,
    ZooEntry,
    ZooVariant,
)

MODELS: Registry[ZooEntry] = Registry("model", "nn2hw list models", builtins="nn2hw.zoo.catalog", group="nn2hw.models",
                                     kind=ZooEntry)

_ARCHS = "nn2hw.zoo.archs"
_TORCHVISION = "https://download.pytorch.org/models/"
_AKAMASTER = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
_PINNED = ("full sha256 pinned for this official file by several public projects (e.g. asset manifests that "
           "verify torchvision downloads); it starts with the prefix in the file name")
_PREFIX_ONLY = ("no published full sha256 was found; verified by the sha256 prefix in the file name "
                "(what torch.hub checks)")
_TORCHVISION_TRANSFORM = "plain state_dict with torchvision's key names; loaded as is"

IMAGENET_PREPROCESSING = ("resize the shorter side to 256, center-crop 224x224, RGB scaled to [0, 1], "
                          "normalized with the ImageNet mean/std (torchvision's evaluation preset)")
FASHION_MNIST_PREPROCESSING = "28x28 grayscale scaled to [0, 1], normalized with the Fashion-MNIST mean/std"
TRAIN_HINT = "nn2hw zoo train {name} --dataset fashion-mnist"


def _torchvision(file_name: str, sha256: str = "", note: str = _PINNED) -> CheckpointSource:
    return CheckpointSource(url=_TORCHVISION + file_name, file_name=file_name, sha256=sha256,
                            checksum_note=note if sha256 else _PREFIX_ONLY, transform=_TORCHVISION_TRANSFORM)


def _imagenet(*sources: CheckpointSource) -> ZooVariant:
    return ZooVariant("imagenet", (3, 224, 224), 1000, IMAGENET_MEAN, IMAGENET_STD, IMAGENET_PREPROCESSING, sources)


FASHION_MNIST_CHECKPOINTS = {
    "resnet20": ("resnet20-fmnist-e76e6894.pt", "e76e6894831ab6f6da72aa57c489e5207c434e5b2fc66ef4353dab8cc17229fb",
                 94.46),
    "mobilenetv2_fmnist": ("mobilenetv2_fmnist-fmnist-bccd57a1.pt",
                           "bccd57a16d593714098866418b3e4809b2d50415608a39450ee8cc8c61ecb4f2", 93.73),
    "vgg_fmnist": ("vgg_fmnist-fmnist-42369fcd.pt", "42369fcd30be9af224f6d92b502dd8a21ca665d97ba4e3a2ceb2839e2ff7be2a",
                   94.46),
    "vit_fmnist": ("vit_fmnist-fmnist-e0a52704.pt", "e0a52704e8f942f21a65d03fddef20ffcb8e66b53e2f8d89314ca697b3105675",
                   86.38),
}
"""Packaged Fashion-MNIST weights trained by nn2hw itself (``nn2hw/zoo/checkpoints/``): model ->
(file, full sha256, top-1 % measured on the full 10,000-image test set). docs/datasets.md has the
command that produced each file."""


def _fashion_mnist(name: str) -> ZooVariant:
    """A Fashion-MNIST variant, with the packaged weights ``nn2hw zoo train`` produced when they exist."""
    sources: tuple[CheckpointSource, ...] = ()
    top1: float | None = None
    if name in FASHION_MNIST_CHECKPOINTS:
        file_name, digest, top1 = FASHION_MNIST_CHECKPOINTS[name]
        sources = (CheckpointSource(
            url="", file_name=file_name, sha256=digest, packaged=file_name,
            checksum_note=f"sha256 of the file written by `{TRAIN_HINT.format(name=name)} --threads 1` (seed 0); "
                          f"top-1 {top1:.2f} % on the full 10,000-image test set",
            transform="plain state_dict saved by nn2hw zoo train; loaded as is",
        ),)
    return ZooVariant("fashion-mnist", (1, 28, 28), 10, FASHION_MNIST_MEAN, FASHION_MNIST_STD,
                      FASHION_MNIST_PREPROCESSING, sources, test_top1=top1)


def _register(entry: ZooEntry) -> None:
    MODELS.register(entry.name, entry)


# --- CIFAR ResNets (option A), also built for Fashion-MNIST -----------------------------------
def _cifar_resnet(depth: int, digest: str) -> ZooEntry:
    file_name = f"resnet{depth}-{digest[:8]}.th"
    return ZooEntry(
        name=f"resnet{depth}",
        family="resnet-cifar",
        description=f"ResNet-{depth} for small images: 3 stages of {(depth - 2) // 6} basic blocks at 16/32/64 "
                    "channels, option-A (zero-padding) shortcuts",
        factory=f"{_ARCHS}.cifar_resnet:cifar_resnet",
        options=(("depth", depth),),
        variants=(
            ZooVariant(
                "cifar10", (3, 32, 32), 10, IMAGENET_MEAN, IMAGENET_STD,
                "32x32 RGB scaled to [0, 1], normalized with the ImageNet mean/std (how these weights were "
                "trained, not CIFAR's own statistics)",
                (CheckpointSource(
                    url=_AKAMASTER + file_name, file_name=file_name, sha256=digest,
                    checksum_note="full sha256 recorded in NN2HW_DATA/zoo/cifar10/SOURCE.md (file copied "
                                  "byte-for-byte from akamaster/pytorch_resnet_cifar10 at d5489e8)",
                    local_path=f"zoo/cifar10/{file_name}",
                    transform="top level {'state_dict', 'best_prec1'}: take 'state_dict' and strip the 'module.' "
                              "prefix (trained under nn.DataParallel); no num_batches_tracked entries",
                ),),
            ),
            _fashion_mnist(f"resnet{depth}"),
        ),
        notes="Weights: akamaster/pytorch_resnet_cifar10 (BSD-2-Clause, Y. Idelbayev). The Fashion-MNIST "
              f"variant takes 1x28x28 (28 -> 14 -> 7); train it with `{TRAIN_HINT.format(name=f'resnet{depth}')}`.",
        references=("https://arxiv.org/abs/1512.03385",),
    )


_register(_cifar_resnet(20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"))
_register(_cifar_resnet(32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850"))
_register(_cifar_resnet(44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4"))
_register(_cifar_resnet(56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"))

# --- Fashion-MNIST-only compact models ----------------------------------------------------------
_register(ZooEntry(
    name="mobilenetv2_fmnist",
    family="mobilenetv2",
    description="MobileNetV2 at width 0.5 for 1x28x28: stem stride 1, stride-2 stages only at 28->14->7, "
                "256-channel last conv",
    factory=f"{_ARCHS}.mobilenetv2:mobilenet_v2",
    options=(("width_mult", 0.5), ("setting", "fmnist"), ("stem_stride", 1), ("last_channel", 256)),
    variants=(_fashion_mnist("mobilenetv2_fmnist"),),
    notes=f"Trained by nn2hw itself: `{TRAIN_HINT.format(name='mobilenetv2_fmnist')}`.",
    references=("https://arxiv.org/abs/1801.04381",),
))
_register(ZooEntry(
    name="vgg_fmnist",
    family="vgg",
    description="Compact VGG for 1x28x28: 3x3 conv+BN stacks 32,32 | 64,64 | 128,128 | 256 with 2x2 pools, "
                "global pooling, dropout and one linear layer",
    factory=f"{_ARCHS}.vgg:vgg",
    options=(("config", "vgg_fmnist"), ("batch_norm", True), ("pool_size", 1), ("hidden", 0), ("dropout", 0.2)),
    variants=(_fashion_mnist("vgg_fmnist"),),
    notes=f"Trained by nn2hw itself: `{TRAIN_HINT.format(name='vgg_fmnist')}`.",
    references=("https://arxiv.org/abs/1409.1556",),
))
_register(ZooEntry(
    name="vit_fmnist",
    family="vit",
    description="Vision Transformer for 1x28x28: 4x4 patches (49 + a class token: 50 tokens of 64), 4 post-norm "
                "BERT encoder layers with 4 heads of 16 and FFN 128, a linear head on the class token",
    factory=f"{_ARCHS}.vit:vit",
    options=(("image_size", 28), ("patch_size", 4), ("hidden_size", 64), ("num_hidden_layers", 4),
             ("num_attention_heads", 4), ("intermediate_size", 128), ("layer_norm_eps", 1e-6)),
    variants=(_fashion_mnist("vit_fmnist"),),
    notes=f"Trained by nn2hw itself: `{TRAIN_HINT.format(name='vit_fmnist')}` (AdamW recipe). Its encoder layers are "
          "the BERT encoder's (`encoder.layer.<i>`), so head removal, FFN width cuts, layer dropping and int8 apply "
          "as to minilm_l6; the class token pins the hidden width (docs/transformers.md).",
    references=("https://arxiv.org/abs/2010.11929",),
    recovery=Recovery("adamw", 1e-3, "`python benchmarks/transformer_recovery.py` (layers 1 and 3 dropped, 2 of 4 "
                                     "heads kept in layer 0; 86.38 % unmodified), 2000 distilled cosine batches: SGD "
                                     "0.003 76.83 %, AdamW 1e-3 80.50 %, AdamW 2e-3 80.73 % (first 3000 validation "
                                     "images)"),
))

# --- ImageNet (torchvision-compatible state dicts) ----------------------------------------------
_register(ZooEntry(
    name="alexnet", family="alexnet",
    description="AlexNet, one-GPU variant (5 convs, 3 FC layers)",
    factory=f"{_ARCHS}.alexnet:alexnet",
    variants=(_imagenet(_torchvision("alexnet-owt-7be5be79.pth",
                                     "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02")),),
    references=("https://arxiv.org/abs/1404.5997",),
))
_register(ZooEntry(
    name="vgg11", family="vgg", description="VGG-11 (configuration A), no batch norm",
    factory=f"{_ARCHS}.vgg:vgg", options=(("config", "vgg11"),),
    variants=(_imagenet(_torchvision("vgg11-8a719046.pth")),),
    references=("https://arxiv.org/abs/1409.1556",),
))
_register(ZooEntry(
    name="vgg16", family="vgg", description="VGG-16 (configuration D), no batch norm",
    factory=f"{_ARCHS}.vgg:vgg", options=(("config", "vgg16"),),
    variants=(_imagenet(_torchvision("vgg16-397923af.pth",
                                     "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0")),),
    references=("https://arxiv.org/abs/1409.1556",),
))


def _imagenet_resnet(depth: int, file_name: str, digest: str) -> ZooEntry:
    return ZooEntry(
        name=f"resnet{depth}", family="resnet",
        description=f"ResNet-{depth} ({'bottleneck' if depth >= 50 else 'basic'} blocks, stride in the 3x3 conv)",
        factory=f"{_ARCHS}.resnet:resnet", options=(("depth", depth),),
        variants=(_imagenet(_torchvision(file_name, digest)),),
        references=("https://arxiv.org/abs/1512.03385",),
    )


_register(_imagenet_resnet(18, "resnet18-f37072fd.pth",
                           "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"))
_register(_imagenet_resnet(34, "resnet34-b627a593.pth",
                           "b627a593bcbe140c234610266fe4f8ae95ea42fc881d091c9b6052e6b1d0590f"))
_register(_imagenet_resnet(50, "resnet50-0676ba61.pth",
                           "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a"))
_register(ZooEntry(
    name="mobilenet_v2", family="mobilenetv2", description="MobileNetV2, width 1.0",
    factory=f"{_ARCHS}.mobilenetv2:mobilenet_v2",
    variants=(_imagenet(_torchvision("mobilenet_v2-b0353104.pth",
                                     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889")),),
    references=("https://arxiv.org/abs/1801.04381",),
))
_MNASNET_STEM_NOTE = (
    "Current torchvision scales the MnasNet stem with the width multiplier (its MNASNet._version = 2) and "
    "ships weights trained that way. HotNAS's published MnasNet-0.5 numbers used the older, unscaled stem "
    "(32/32/16 channels): use `mnasnet0_5_legacy` to reproduce them.")
_register(ZooEntry(
    name="mnasnet0_5", family="mnasnet", description="MnasNet-B1, depth multiplier 0.5 (width-scaled stem)",
    factory=f"{_ARCHS}.mnasnet:mnasnet", options=(("alpha", 0.5),),
    variants=(_imagenet(_torchvision("mnasnet0.5_top1_67.823-3ffadce67e.pth")),),
    notes=_MNASNET_STEM_NOTE,
    references=("https://arxiv.org/abs/1807.11626",),
))
_register(ZooEntry(
    name="mnasnet0_5_legacy", family="mnasnet",
    description="MnasNet-B1, depth multiplier 0.5 with the original unscaled stem (torchvision <= 0.5)",
    factory=f"{_ARCHS}.mnasnet:mnasnet", options=(("alpha", 0.5), ("legacy_stem", True)),
    variants=(_imagenet(_torchvision("mnasnet0.5_top1_67.592-7c6cb539b9.pth")),),
    notes=_MNASNET_STEM_NOTE + " This entry's weights are the original torchvision MnasNet-0.5 file.",
    references=("https://arxiv.org/abs/1807.11626",),
))
_register(ZooEntry(
    name="mnasnet1_0", family="mnasnet", description="MnasNet-B1, depth multiplier 1.0",
    factory=f"{_ARCHS}.mnasnet:mnasnet", options=(("alpha", 1.0),),
    variants=(_imagenet(_torchvision("mnasnet1.0_top1_73.512-f206786ef8.pth",
                                     "f206786ef8a6d33af1091698bd667528dd506020f45e65bc4d4f00ce4e9990f0",
                                     "full sha256 from one public source (a Yocto recipe that verifies this "
                                     "official download); it starts with the 10-digit prefix in the file name")),),
    notes="The legacy and current stems coincide at depth multiplier 1.0.",
    references=("https://arxiv.org/abs/1807.11626",),
))
_register(ZooEntry(
    name="squeezenet1_0", family="squeezenet", description="SqueezeNet 1.0 (8 Fire modules)",
    factory=f"{_ARCHS}.squeezenet:squeezenet1_0",
    variants=(_imagenet(_torchvision("squeezenet1_0-b66bff10.pth")),),
    references=("https://arxiv.org/abs/1602.07360",),
))

# --- Search-space networks: any architecture of a space, weights from a search's bundle ---------
FBNET_REFERENCE_ARCH = (3,) * 22
"""The ``fbnet`` entry's default architecture: every block k3_e6 (op index 3 of
``nn2hw.workload.spaces.fbnet.FBNET_OPS``), FBNetV1's widest 3x3 choice."""
NB201_REFERENCE_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
"""The ``nb201`` entry's default cell: every edge nor_conv_3x3 (the space's largest cell)."""
_SPACE_WEIGHTS = ("No published weights: `nn2hw search --space-kind {space}` trains and derives one and writes a "
                  "bundle that records its architecture (`nn2hw.bundle.load_bundle` rebuilds it from this entry). ")


def _cifar10_from_scratch() -> ZooVariant:
    """A CIFAR-10 variant without weights, normalized as the zoo's CIFAR ResNets."""
    return ZooVariant("cifar10", (3, 32, 32), 10, IMAGENET_MEAN, IMAGENET_STD,
                      "32x32 RGB scaled to [0, 1], normalized with the ImageNet mean/std (as the zoo's CIFAR ResNets)")


_register(ZooEntry(
    name="fbnet", family="fbnet",
    description="An FBNet-space network: stem, 22 blocks (k3/k5 x expansion 1/3/6, grouped 1x1s, skip), header, "
                "classifier, on FBNetV1's CIFAR layout; any architecture (arch=22 op indices) and width_mult",
    factory=f"{_ARCHS}.fbnet:fbnet_zoo",
    options=(("arch", FBNET_REFERENCE_ARCH), ("width_mult", 1.0)),
    variants=(_fashion_mnist("fbnet"), _cifar10_from_scratch()),
    notes=_SPACE_WEIGHTS.format(space="fbnet") + "Default arch: every block k3_e6 (op index 3). "
          "`zoo.build('fbnet', dataset, arch=a, width_mult=w)` is the network `FBNetSupernet(dataset, "
          "width_mult=w).derive(a)` returns (same state-dict keys and shapes); Fashion-MNIST runs on the CIFAR "
          "layout with one input channel (28 -> 14 -> 7 -> 4).",
    references=("https://arxiv.org/abs/1812.03443", "https://arxiv.org/abs/2103.10584"),
))
_register(ZooEntry(
    name="nb201", family="nb201",
    description="NAS-Bench-201's TinyNetwork: 3 stages of `cells` cells at channels/2x/4x joined by residual "
                "reduction blocks; any cell (arch=6 op indices or the NAS-Bench-201 string)",
    factory=f"{_ARCHS}.nb201:nb201_zoo",
    options=(("arch", NB201_REFERENCE_ARCH), ("channels", 16), ("cells", 5)),
    variants=(_fashion_mnist("nb201"), _cifar10_from_scratch()),
    notes=_SPACE_WEIGHTS.format(space="nb201") + "Default arch: every edge nor_conv_3x3; channels 16, cells 5 "
          "(NAS-Bench-201's C and N). `zoo.build('nb201', dataset, arch=a, channels=c, cells=n)` is the network "
          "`NB201Supernet(dataset, channels=c, cells=n).derive(a)` returns.",
    references=("https://arxiv.org/abs/2001.00326", "https://arxiv.org/abs/2103.10584"),
))

# --- Transformers (each registers itself) ---------------------------------------------------------
from nn2hw.zoo import minilm as _minilm  # noqa: E402,F401  (imported for its registration)
