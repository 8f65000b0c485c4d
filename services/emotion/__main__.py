"""python -m services.emotion"""

from services.emotion.servicer import EmotionSettings, build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("emotion", build, EmotionSettings)
