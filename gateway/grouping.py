"""POST /v1/cluster: every face of many images, detected and embedded a few images at a time, then clustered.

Each image is one Detect (every face, with the embedder's crop) and one Embed of all its faces; at most
`cluster_concurrency` images are in the services at once (the embedder batches the Embed calls in flight together),
and only each face's box and embedding are kept. The clustering itself (gateway/clustering.py) is CPU work and runs
in a thread, off the event loop. The first image that fails fails the request, naming its index; the rest are
cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import numpy as np
from faceplane.v1 import common_pb2

from gateway.analysis import DetectOptions, crop_spec_of, detect
from gateway.clients import Services, to_api_error
from gateway.clustering import clusters, complete_linkage
from gateway.error_codes import ErrorCode, ServiceCode, service_code
from gateway.errors import ApiError
from gateway.merge import box_json
from gateway.settings import Settings

Reader = Callable[[int], Awaitable[bytes]]


def for_image(index: int, exc: ApiError) -> ApiError:
    """The same error, its message saying which upload it is about."""
    return ApiError(exc.code, f"image {index}: {exc.message}", exc.headers)


async def cluster_images(
    services: Services, settings: Settings, count: int, read: Reader, options: DetectOptions, threshold: float
) -> dict[str, Any]:
    """The faces of the `count` images (`read(i)` gives image i's bytes) grouped by person."""
    embedder = services.require("embedder")
    try:
        spec = await crop_spec_of(services, settings, "embedder")
    except LookupError as exc:
        raise ApiError(service_code("embedder", ServiceCode.UNAVAILABLE), str(exc)) from exc
    gate = asyncio.Semaphore(settings.cluster_concurrency)
    faces_so_far = 0

    async def faces_of(index: int) -> tuple[list[common_pb2.Box], np.ndarray]:
        nonlocal faces_so_far
        async with gate:
            try:
                detected = await detect(services, settings, await read(index), options, [spec])
            except ApiError as exc:
                raise for_image(index, exc) from exc
            faces = list(detected.faces)
            faces_so_far += len(faces)
            if faces_so_far > settings.cluster_max_faces:
                raise ApiError(
                    ErrorCode.TOO_MANY_FACES,
                    f"the images hold more than {settings.cluster_max_faces} faces; send fewer images, or lower "
                    "max_faces",
                )
            if not faces:
                return [], np.zeros((0, 0), dtype=np.float32)
            request = common_pb2.CropsRequest(crops=[face.crops[0] for face in faces])
            try:
                reply = await embedder.stub.Embed(request, timeout=settings.analysis_deadline_s)
            except grpc.aio.AioRpcError as exc:
                raise for_image(index, to_api_error("embedder", exc)) from exc
            vectors = np.array([e.values for e in reply.embeddings], dtype=np.float32)
            return [face.box for face in faces], vectors

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(faces_of(i)) for i in range(count)]
    except BaseExceptionGroup as failed:  # the first failure stands for the request; the others were cancelled
        raise failed.exceptions[0] from None
    found = [(index, box) for index, task in enumerate(tasks) for box in task.result()[0]]
    embedded = [task.result()[1] for task in tasks if len(task.result()[0])]
    vectors = np.concatenate(embedded) if embedded else np.zeros((0, 0), dtype=np.float32)
    labels = await asyncio.to_thread(complete_linkage, vectors, threshold)
    members, noise = clusters(labels)

    def face(i: int) -> dict[str, Any]:
        index, box = found[i]
        return {"image": index, "box": box_json(box)}

    return {
        "clusters": [{"cluster_id": c, "members": [face(i) for i in faces]} for c, faces in enumerate(members)],
        "noise": [face(i) for i in noise],
        "threshold": threshold,
    }
