"""Fixed train/test splits shared by the training recipes and the evaluation code.

Mask sets (`../shared/datasets/mask/<source>/{with_mask,without_mask}/`): about 20% of the images are test, decided
by the md5 of a *group key* so that near-duplicates never straddle the split:

* prajnasb: each masked image is an unmasked one with a mask pasted on (`N-with-mask.jpg` ↔ `N.jpg`), so both
  share the key `N`.
* chandrikadeb7: augmented copies are named `<base> copy…` (`0_0_0 copy 2 2.jpg`, `1_1_4 copy.jpg`); the key is
  the base name before " copy" / " (another copy)" (`0_0_0`, `1_1_4`). Its `<a>_<b>_<person>_<NNNN>.jpg` files are
  frames of a few people (`0_0_anhu_0004.jpg`, `1_0_anhu_0135.jpg`, many nearly identical): the key is the person.
* The key does not depend on the source: chandrikadeb7/without_mask holds ~465 of prajnasb's files under the same
  names (`53.jpg`, `augmented_image_54.jpg`), which must land in the same split in both sets.
* `augmented_image_N.jpg` (both sets) are flips/crops/rotations of *other* images of the set (e.g. prajnasb
  `augmented_image_68.jpg` is `128-with-mask.jpg` transformed), and the name does not say which. They are never
  test (`mask_is_test` is False) and should not be trained on either (`mask_is_augmented_copy`): in training they
  would leak test faces, and our own augmentation makes them redundant.

The rule depends on the file name only, so it is stable under re-crawls and reorderings.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath

MASK_TEST_PERCENT = 20


def mask_group(source: str, filename: str) -> str:
    """The key that ties together the images of one source face (or one augmented family), across both sets."""
    del source  # the same file appears in both sets under one name
    stem = PurePath(filename).stem
    stem = re.sub(r"-with-mask$", "", stem)
    stem = re.sub(r"\s*\(?(another )?copy\b.*$", "", stem).strip().lower()
    person = re.fullmatch(r"\d+_\d+_([a-z]+)_\d+", stem)
    return f"person:{person.group(1)}" if person else stem


def mask_is_augmented_copy(filename: str) -> bool:
    """An augmented copy of an unknown other image of the set: neither train nor test."""
    return PurePath(filename).stem.lower().startswith("augmented_image")


def mask_is_test(source: str, filename: str) -> bool:
    """True for the ~20% of a mask set held back for evaluation (never trained on)."""
    if mask_is_augmented_copy(filename):
        return False
    digest = hashlib.md5(mask_group(source, filename).encode("utf-8")).hexdigest()
    return int(digest, 16) % 100 < MASK_TEST_PERCENT


def mask_is_validation(source: str, filename: str) -> bool:
    """True for ~20% of the mask sets' *train* part (another hash of the same group key), held back from training
    only when choosing a recipe (`train_mask.py --validation`); the test split never is."""
    if mask_is_augmented_copy(filename) or mask_is_test(source, filename):
        return False
    digest = hashlib.md5(f"validation:{mask_group(source, filename)}".encode()).hexdigest()
    return int(digest, 16) % 100 < MASK_TEST_PERCENT


UTKFACE_TEST_PERCENT = 15
# model-repo/recipes/train_attributes.py trains on CelebA 000001–006800; 006801–008000 are held back.
CELEBA_TRAIN_LAST_ID = 6800


def utkface_is_test(filename: str) -> bool:
    """The fixed 15% of UTKFace never trained on: chosen by a hash of the file name."""
    return int(hashlib.md5(filename.encode()).hexdigest(), 16) % 100 < UTKFACE_TEST_PERCENT


def utkface_is_validation(filename: str) -> bool:
    """~10% of UTKFace's training part (another hash of the name), held out of the backbone fine-tuning of
    `train_agegender.py` to choose its epochs; the test split never is."""
    if utkface_is_test(filename):
        return False
    return int(hashlib.md5(f"validation:{filename}".encode()).hexdigest(), 16) % 100 < 10
