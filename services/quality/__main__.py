"""python -m services.quality"""

from services.quality.servicer import QualitySettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("quality", build, QualitySettings)
