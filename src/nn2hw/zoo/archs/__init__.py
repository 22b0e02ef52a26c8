"""Zoo architectures, written from their papers' descriptions.

Module and parameter names follow the published checkpoints (torchvision for the ImageNet
models, akamaster/pytorch_resnet_cifar10 for the CIFAR ResNets) so that those files load with
``load_state_dict(strict=True)``. Every builder takes ``in_channels`` and ``num_classes`` first.
"""
