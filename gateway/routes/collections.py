"""Galleries: /v1/collections/{collection}/subjects…, faces and identify."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from gateway.analysis import DetectOptions
from gateway.auth import audit, require
from gateway.recognition import Gallery
from gateway.routes.deps import IMAGE_BODY, DetectOptionsDep, ImageDep, ServicesDep, SettingsDep
from gateway.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1/collections/{collection}", tags=["recognition"])
ID = r"^[A-Za-z0-9_.-]{1,64}$"
ID_TEXT = "1–64 of A-Z a-z 0-9 _ . -"
# The embedder refuses other ids; checked here too, so that the OpenAPI document says so.
CollectionId = Annotated[str, Path(pattern=ID, description=f"the collection: {ID_TEXT}")]
SubjectId = Annotated[str, Path(pattern=ID, description=f"the subject: {ID_TEXT}")]
FaceId = Annotated[str, Path(pattern=ID, description="a face id the enrolment answered")]


def gallery(services: ServicesDep, settings: SettingsDep) -> Gallery:
    return Gallery(services, settings)


GalleryDep = Annotated[Gallery, Depends(gallery)]


class NewSubject(BaseModel):
    subject_id: str = Field(pattern=ID, description=f"your id for the person: {ID_TEXT}")
    name: str = Field(default="", max_length=256)


READ = [Depends(require("read"))]
ENROL = [Depends(require("enrol"))]


@router.post("/subjects", status_code=201, responses=ERROR_RESPONSES, dependencies=ENROL)
async def create_subject(collection: CollectionId, body: NewSubject, g: GalleryDep, request: Request) -> Any:
    """A new subject (person) in the collection; 409 if the id is taken."""
    subject = await g.create_subject(collection, body.subject_id, body.name)
    await audit(request, "create_subject", collection=collection, subject_id=body.subject_id)
    return subject


@router.get("/subjects", responses=ERROR_RESPONSES, dependencies=READ)
async def list_subjects(
    collection: CollectionId,
    g: GalleryDep,
    page_size: Annotated[int, Query(ge=1, le=1000)] = 50,
    page_token: Annotated[str, Query(max_length=256)] = "",
) -> Any:
    """Subjects in id order, a page at a time: pass `next_page_token` back as `page_token`."""
    return await g.list_subjects(collection, page_size, page_token)


@router.get("/subjects/{subject_id}", responses=ERROR_RESPONSES, dependencies=READ)
async def get_subject(collection: CollectionId, subject_id: SubjectId, g: GalleryDep) -> Any:
    """A subject with the ids of its enrolled faces."""
    return await g.get_subject(collection, subject_id)


@router.delete("/subjects/{subject_id}", status_code=204, responses=ERROR_RESPONSES, dependencies=ENROL)
async def delete_subject(collection: CollectionId, subject_id: SubjectId, g: GalleryDep, request: Request) -> Response:
    """Delete the subject and every enrolled vector of it."""
    await g.delete_subject(collection, subject_id)
    await audit(request, "delete_subject", collection=collection, subject_id=subject_id)
    return Response(status_code=204)


@router.post(
    "/subjects/{subject_id}/faces",
    status_code=201,
    responses=ERROR_RESPONSES,
    openapi_extra=IMAGE_BODY,
    dependencies=ENROL,
)
async def enrol_face(
    collection: CollectionId,
    subject_id: SubjectId,
    image: ImageDep,
    g: GalleryDep,
    request: Request,
    skip_detection: Annotated[bool, Query(description="the image already is one aligned face")] = False,
    allow_multiple: Annotated[bool, Query(description="with several faces, enrol the largest")] = False,
    min_quality: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=1.0,
            description="refuse the face (422 low_quality, nothing enrolled) when its quality score is below this; "
            "needs the quality service",
        ),
    ] = None,
    require_liveness: Annotated[
        bool,
        Query(
            description="refuse the face (422 spoof_detected, nothing enrolled) when the liveness service takes it "
            "for a presentation attack (a printed photo or a screen); needs the liveness service"
        ),
    ] = False,
) -> Any:
    """Enrol the face in the image (exactly one face, unless allow_multiple) for the subject; with min_quality, only
    if its quality score reaches it; with require_liveness, only if it passes the liveness check."""
    face = await g.enrol(collection, subject_id, image, skip_detection, allow_multiple, min_quality, require_liveness)
    await audit(request, "enrol_face", collection=collection, subject_id=subject_id, face_id=face["face_id"])
    return face


@router.delete("/subjects/{subject_id}/faces/{face_id}", status_code=204, responses=ERROR_RESPONSES, dependencies=ENROL)
async def delete_face(
    collection: CollectionId, subject_id: SubjectId, face_id: FaceId, g: GalleryDep, request: Request
) -> Response:
    await g.delete_face(collection, subject_id, face_id)
    await audit(request, "delete_face", collection=collection, subject_id=subject_id, face_id=face_id)
    return Response(status_code=204)


@router.post("/identify", responses=ERROR_RESPONSES, openapi_extra=IMAGE_BODY, dependencies=READ)
async def identify(
    collection: CollectionId,
    image: ImageDep,
    options: DetectOptionsDep,
    g: GalleryDep,
    top_k: Annotated[int, Query(ge=1, le=100)] = 1,
    threshold: Annotated[
        float | None,
        Query(
            ge=-1.0,
            le=1.0,
            description="cosine similarity a match needs; default: the open-set decision, a threshold that grows "
            "with the collection's size to keep the share of strangers matched at the embedder's FPIR target",
        ),
    ] = None,
    skip_detection: bool = False,
) -> Any:
    """Every face in the image with the enrolled subjects it matches (cosine similarity ≥ threshold, best
    first), each with its estimated false-match probability at the collection's size; a face that matches nobody
    comes back with empty `matches`."""
    opts = DetectOptions(options.min_confidence, options.max_faces, skip_detection)
    return await g.identify(collection, image, opts, top_k, threshold)
