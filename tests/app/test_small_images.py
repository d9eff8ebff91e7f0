"""An image smaller than a model's native crop (a 64x64 PNG on a crop-81 model, as the flagship is) gets a
clear message and an offer to resample it to the crop, never a DataError traceback."""

from __future__ import annotations

from .conftest import no_exception
from .test_pages import png_bytes


def write_crop_checkpoint(folder, name: str, crop: int = 81) -> None:
    from eqlens.checkpoint import make_card, write_checkpoint
    from eqlens.models import create

    net = create("gcnn", num_classes=3, group="C4", image_size=33)
    card = make_card(net, class_names=["axion", "cdm", "no_sub"], group="C4",
                     data={"kind": "simulated", "spec": "model_i"}, training={},
                     input_spec={"image_size": 33, "crop": crop})
    write_checkpoint(folder / name, net, card)


def test_a_small_upload_on_a_crop_model_is_explained_and_can_be_resampled_to_the_crop(app_test, checkpoint_dir):
    write_crop_checkpoint(checkpoint_dir, "model_i_gcnn")  # the preferred default: Explore opens on it
    at = app_test()
    at.radio(key="explore_source").set_value("Upload").run()
    at.file_uploader(key="explore_image_upload").upload("small.png", png_bytes(64, 64)).run()
    no_exception(at)
    (warning,) = [w.value for w in at.warning if "64x64" in w.value]
    assert "81x81" in warning and "crop" in warning
    assert not [c for c in at.caption if c.value.startswith("logits:")]  # nothing pretends to read it
    offer = at.checkbox(key="explore_fit_crop")
    assert "Resample the image to 81x81 px" in offer.label and "interpolation" in offer.label
    offer.check().run()
    no_exception(at)
    assert any(c.value.startswith("logits:") for c in at.caption)
    assert any("resampled from 64x64 to 81x81 px" in c.value for c in at.caption)
