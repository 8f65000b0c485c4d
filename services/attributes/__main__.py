"""python -m services.attributes"""

from services.attributes.servicer import AttributesSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("attributes", build, AttributesSettings)
