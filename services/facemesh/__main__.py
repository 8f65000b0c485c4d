"""python -m services.facemesh"""

from services.facemesh.servicer import FacemeshSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("facemesh", build, FacemeshSettings)
