"""FaceplaneClient: one method per REST operation; images as paths or bytes; errors as FaceplaneError."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx

from faceplane_client.types import Clustering, Enrolment, Faces, Identification, Subject, Verification

ImageInput = str | Path | bytes


class FaceplaneError(Exception):
    """The API answered with an error: its HTTP status and the `{"error": {"code", "message"}}` it sent."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _bytes(image: ImageInput) -> bytes:
    return image if isinstance(image, bytes) else Path(image).read_bytes()


def _file(image: ImageInput, field: str = "image") -> dict[str, tuple[str, bytes, str]]:
    name = "image" if isinstance(image, bytes) else Path(image).name
    return {field: (name, _bytes(image), "application/octet-stream")}


class FaceplaneClient:
    def __init__(
        self, base_url: str = "http://127.0.0.1:8080", api_key: str | None = None, timeout: float = 60
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers)

    def __enter__(self) -> FaceplaneClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        params = {k: v for k, v in (kwargs.pop("params", None) or {}).items() if v is not None}
        response = self._http.request(method, path, params=params, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise FaceplaneError(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise FaceplaneError(response.status_code, "http_error", response.text[:500]) from None
        if response.status_code == 204:
            return None
        if response.headers.get("content-type", "").startswith("image/"):
            return response.content
        return response.json()

    def detect(self, image: ImageInput, max_faces: int | None = None, min_confidence: float | None = None) -> Faces:
        params = {"max_faces": max_faces, "min_confidence": min_confidence}
        return cast(Faces, self._call("POST", "/v1/detect", files=_file(image), params=params))

    def analyze(self, image: ImageInput, features: list[str] | None = None, max_faces: int | None = None) -> Faces:
        params = {"features": ",".join(features) if features else None, "max_faces": max_faces}
        return cast(Faces, self._call("POST", "/v1/analyze", files=_file(image), params=params))

    def verify(self, image1: ImageInput, image2: ImageInput, require_liveness: bool = False) -> Verification:
        """With `require_liveness`, the gateway refuses (`spoof_detected`) a face the liveness service takes for an
        attack."""
        files = {**_file(image1, "image1"), **_file(image2, "image2")}
        params = {"require_liveness": "true" if require_liveness else None}
        return cast(Verification, self._call("POST", "/v1/verify", files=files, params=params))

    def cluster(self, images: list[ImageInput], threshold: float | None = None) -> Clustering:
        """Every face of the images grouped by person; each face is named by its image's index in `images`."""
        files = [("images", *_file(image).values()) for image in images]
        params = {"threshold": threshold}
        return cast(Clustering, self._call("POST", "/v1/cluster", files=files, params=params))

    def create_subject(self, collection: str, subject_id: str, name: str = "") -> Subject:
        body = {"subject_id": subject_id, "name": name}
        return cast(Subject, self._call("POST", f"/v1/collections/{collection}/subjects", json=body))

    def subject(self, collection: str, subject_id: str) -> Subject:
        return cast(Subject, self._call("GET", f"/v1/collections/{collection}/subjects/{subject_id}"))

    def enroll(
        self,
        collection: str,
        subject_id: str,
        image: ImageInput,
        min_quality: float | None = None,
        require_liveness: bool = False,
    ) -> Enrolment:
        """Enrol the photo's face; with `min_quality`, the gateway refuses (`low_quality`) a face scoring below it,
        with `require_liveness` (`spoof_detected`) one the liveness service takes for an attack."""
        path = f"/v1/collections/{collection}/subjects/{subject_id}/faces"
        params = {"min_quality": min_quality, "require_liveness": "true" if require_liveness else None}
        return cast(Enrolment, self._call("POST", path, files=_file(image), params=params))

    def identify(
        self, collection: str, image: ImageInput, top_k: int | None = None, threshold: float | None = None
    ) -> Identification:
        params = {"top_k": top_k, "threshold": threshold}
        path = f"/v1/collections/{collection}/identify"
        return cast(Identification, self._call("POST", path, files=_file(image), params=params))

    def generate(self, count: int = 1, seed: int | None = None) -> tuple[list[bytes], int]:
        """PNG bytes of `count` generated faces, and the seed that makes them again."""
        body: dict[str, Any] = {"count": count} if seed is None else {"count": count, "seed": seed}
        answer = self._call("POST", "/v1/generate", json=body)
        return [base64.b64decode(s) for s in answer["images"]], int(answer["seed"])

    def submit_video(
        self, video: ImageInput, collection: str | None = None, features: list[str] | None = None,
        sample_fps: float | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Queue a video (`POST /v1/videos`): `{"job_id", "status": "queued"}`."""
        params = {"collection": collection, "features": ",".join(features) if features else None,
                  "sample_fps": sample_fps}  # fmt: skip
        return cast(dict[str, Any], self._call("POST", "/v1/videos", files=_file(video, "video"), params=params))

    def video_job(self, job_id: str) -> dict[str, Any]:
        """A video job's status, progress, and its error or result (`GET /v1/videos/{job_id}`)."""
        return cast(dict[str, Any], self._call("GET", f"/v1/videos/{job_id}"))

    def delete_video_job(self, job_id: str) -> None:
        self._call("DELETE", f"/v1/videos/{job_id}")

    def analyze_video(
        self, video: ImageInput, collection: str | None = None, features: list[str] | None = None,
        sample_fps: float | None = None, on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 0.5,
    ) -> dict[str, Any]:  # fmt: skip
        """Submit a video and wait for its job to end; `on_progress` sees every poll's answer. The finished job."""
        job_id = self.submit_video(video, collection, features, sample_fps)["job_id"]
        while True:
            job = self.video_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(poll_s)

    def anonymize(self, image: ImageInput, method: str | None = None) -> bytes:
        return cast(bytes, self._call("POST", "/v1/anonymize", files=_file(image), params={"method": method}))
