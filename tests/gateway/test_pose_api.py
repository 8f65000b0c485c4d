"""Head pose and dense landmarks end to end (`features=pose`, `features=landmarks_dense`: the facemesh service on the
detector's box crop), checked without labels: a mirrored photo turns yaw and roll over, a photo turned by 20° turns
roll by as much, and the 468 points lie on the face in the photo's own pixels."""

from __future__ import annotations

import cv2
import httpx
import numpy as np
import pytest

from tests import images


def analyze(api: httpx.Client, image: np.ndarray, features: str) -> dict:
    upload = {"image": ("x.png", images.encode(image, "PNG"), "image/png")}
    answer = api.post("/v1/analyze", files=upload, params={"features": features})
    assert answer.status_code == 200, answer.text
    return answer.json()["faces"][0]


def turned(image: np.ndarray, degrees_clockwise: float) -> np.ndarray:
    """The photo turned about its centre (cv2 turns counter-clockwise for positive angles), the border replicated."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), -degrees_clockwise, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_pose_is_three_angles_and_only_what_was_asked(api: httpx.Client) -> None:
    face = analyze(api, images.astronaut(), "pose")
    assert set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert all(-90.0 <= v <= 90.0 for v in face["pose"].values())
    assert "landmarks_dense" not in face and "emotion" not in face and "errors" not in face


def test_a_mirrored_photo_turns_yaw_and_roll_over(api: httpx.Client) -> None:
    photo = images.astronaut()
    plain = analyze(api, photo, "pose")["pose"]
    mirrored = analyze(api, np.ascontiguousarray(photo[:, ::-1]), "pose")["pose"]
    assert abs(plain["yaw"] + mirrored["yaw"]) < 3.5, (plain, mirrored)
    assert abs(plain["roll"] + mirrored["roll"]) < 3.5, (plain, mirrored)
    assert abs(plain["pitch"] - mirrored["pitch"]) < 3.5, (plain, mirrored)


@pytest.mark.parametrize("degrees", [20.0, -20.0])
def test_a_photo_turned_clockwise_adds_its_turn_to_roll(api: httpx.Client, degrees: float) -> None:
    photo = images.astronaut()
    plain = analyze(api, photo, "pose")["pose"]
    again = analyze(api, turned(photo, degrees), "pose")["pose"]
    assert again["roll"] - plain["roll"] == pytest.approx(degrees, abs=3.0), (plain, again)


def test_landmarks_dense_are_468_points_on_the_face_in_image_pixels(api: httpx.Client) -> None:
    photo = images.astronaut()
    face = analyze(api, photo, "landmarks_dense,pose")
    points = np.array(face["landmarks_dense"])
    assert points.shape == (468, 2) and "pose" in face
    assert np.array_equal(points, np.round(points, 1))  # 0.1 px
    box = face["box"]
    margin = 0.15 * max(box["width"], box["height"])
    assert (points[:, 0] > box["x"] - margin).all() and (points[:, 0] < box["x"] + box["width"] + margin).all()
    assert (points[:, 1] > box["y"] - margin).all() and (points[:, 1] < box["y"] + box["height"] + margin).all()
    # In the photo's pixels, not the crop's: MediaPipe's eye corners (33, 263) bracket the detector's eyes.
    left, right = np.array(face["landmarks"]["left_eye"]), np.array(face["landmarks"]["right_eye"])
    assert points[33, 0] < left[0] < right[0] < points[263, 0]
    assert np.linalg.norm(points[[33, 263]].mean(axis=0) - (left + right) / 2) < 0.15 * np.linalg.norm(right - left)


def test_an_unknown_feature_beside_pose_is_refused(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/analyze",
        files={"image": ("x.jpg", images.encode(images.astronaut()), "image/jpeg")},
        params={"features": "pose,bogus"},
    )
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_features" and "pose" in error["message"]  # it names the choices
