"""The OpenAPI pages, `/docs` (Swagger UI) and `/redoc`, with every file they load served by the gateway itself:
no CDN, so they work in an air-gapped cluster. Swagger UI's and ReDoc's files come from the pinned fastapi-offline
package; the pages run no inline script, so their Content-Security-Policy can forbid it (gateway/headers.py)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from gateway.headers import CSP, DOCS_CSP

ASSETS = "/docs/assets"
router = APIRouter(include_in_schema=False)
assets = StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static")

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title} – API reference</title>
  <link rel="icon" href="{assets}/favicon.png">
{head}</head>
<body>
{body}</body>
</html>
"""
_SWAGGER_HEAD = '  <link rel="stylesheet" href="{assets}/swagger-ui.css">\n'
_SWAGGER_BODY = """  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{root}/demo/swagger-init.js"></script>
"""
_REDOC_BODY = """  <redoc spec-url="{openapi}"></redoc>
  <script src="{assets}/redoc.standalone.js"></script>
"""


def _page(request: Request, head: str, body: str) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    names = {"root": root, "assets": root + ASSETS, "openapi": root + request.app.openapi_url}
    html = _PAGE.format(title=request.app.title, head=head.format(**names), body=body.format(**names), **names)
    return HTMLResponse(html, headers={CSP: DOCS_CSP})


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return _page(request, _SWAGGER_HEAD, _SWAGGER_BODY)


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return _page(request, "", _REDOC_BODY)
