"""A small typed Python client for faceplane's REST API, and the `faceplane` command built on it."""

from faceplane_client.client import FaceplaneClient, FaceplaneError

__all__ = ["FaceplaneClient", "FaceplaneError"]
