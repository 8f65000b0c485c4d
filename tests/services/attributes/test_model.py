"""Mask and CelebA attributes on real faces, cut as the service path cuts them."""

from __future__ import annotations

import pytest

from services.attributes.model import AttributesModel
from tests import images
from tests.services.conftest import model

ATTRIBUTES = ["smiling", "eyeglasses", "wearing_hat", "bangs", "mustache", "no_beard", "blond_hair", "black_hair",
              "pale_skin", "blurry"]  # fmt: skip


@pytest.mark.parametrize("mask_model", ["mask_faceplane", "mask_faceplane_single"])
def test_a_drawn_on_mask_is_a_mask(crops_for, detector, mask_model: str) -> None:
    face = detector.detect(images.astronaut())[0]
    masked = images.with_drawn_mask(images.astronaut(), face.box, face.landmarks[2])
    loaded = model("celeba_attributes")
    attributes = AttributesModel(loaded, model(mask_model))
    (plain,) = attributes.predict(crops_for(loaded, images.astronaut()))
    (covered,) = attributes.predict(crops_for(loaded, masked))
    assert plain.mask == "no_mask"
    assert covered.mask == "mask"


def test_attributes_of_real_faces(crops_for) -> None:
    loaded = model("celeba_attributes")
    results = AttributesModel(loaded, model("mask_faceplane")).predict(crops_for(loaded, images.group_six()))
    assert all(list(r.attributes) == ATTRIBUTES for r in results)
    assert all(r.mask == "no_mask" for r in results)
    # t1.jpg left to right: the third and fourth faces laugh, the last woman is blonde, nobody wears glasses or a hat.
    assert results[2].attributes["smiling"] > 0.5 and results[3].attributes["smiling"] > 0.5
    assert results[5].attributes["blond_hair"] > 0.5
    assert all(r.attributes["eyeglasses"] < 0.5 and r.attributes["wearing_hat"] < 0.5 for r in results)
