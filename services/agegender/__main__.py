"""python -m services.agegender"""

from services.agegender.servicer import AgeGenderSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("agegender", build, AgeGenderSettings)
