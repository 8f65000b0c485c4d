"""python -m gateway"""

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings
from services.runtime.logs import configure_logging

if __name__ == "__main__":
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, timeout_graceful_shutdown=5
    )
