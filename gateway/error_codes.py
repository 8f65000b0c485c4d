"""The gateway's view of the one registry of error codes, services/runtime/error_codes.py: every code a client can
receive, with its HTTP status. `ApiError` takes its status from there, a service's code passes through the gateway
unchanged, and docs/api.md's error table is written from it. The registry is a leaf module (the standard library
and grpc): through this module the gateway borrows it, and no other code of the services.
"""

from __future__ import annotations

from services.runtime.error_codes import ERROR_CODE_KEY, ErrorCode, ServiceCode, service_code, status_of

__all__ = ["ERROR_CODE_KEY", "ErrorCode", "ServiceCode", "service_code", "status_of"]
