"""python -m services.generator"""

from services.generator.servicer import GeneratorSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("generator", build, GeneratorSettings)
