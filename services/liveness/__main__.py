"""python -m services.liveness"""

from services.liveness.servicer import LivenessSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("liveness", build, LivenessSettings)
