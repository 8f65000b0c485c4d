"""python -m services.embedder"""

from services.embedder.servicer import EmbedderSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("embedder", build, EmbedderSettings)
