"""python -m services.detector"""

from services.detector.servicer import DetectorSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("detector", build, DetectorSettings)
