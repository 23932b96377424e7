"""The vendor's error bodies, and the handlers that turn every failure into one of them.

Two shapes, as in the document: `{"error": ..., "code": "400"}` (login, sync, catalog, and every token
error) and `{"status": 400, "message": ...}` (the update APIs, whose success body is
`{"status": 200, "message": "Cập nhật thành công"}`). A request the server cannot understand gets 400 in
the endpoint's shape, never FastAPI's 422 and never a 500. With `errors_as_200` these bodies travel with
HTTP 200, as some vendor systems do.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

API_PREFIX = "/thainguyen/general/api/"
# Endpoints whose success body is {"status", "message"} answer errors in that shape too.
STATUS_SHAPED = {"capnhattrangthaidongbo", "capnhattrangthaidongbofile", "capnhatfiletheoloaitailieu",
                 "xoafiletheoloaitailieu"}

BAD_TOKEN = "Token không hợp lệ hoặc đã hết hạn"
BAD_LOGIN = "Tên đăng nhập hoặc mật khẩu không đúng"
BAD_INPUT = "Dữ liệu đầu vào không hợp lệ"
SERVER_ERROR = "Lỗi hệ thống, vui lòng thử lại sau"
NOT_FOUND = "Không tìm thấy"


class VendorError(Exception):
    """An error the API answers with a body in the endpoint's shape."""

    def __init__(self, status: int, message: str, *, shape: str | None = None):
        super().__init__(message)
        self.status, self.message, self.shape = status, message, shape


def endpoint_of(path: str) -> str | None:
    return path[len(API_PREFIX):].strip("/") if path.startswith(API_PREFIX) else None


def error_body(status: int, message: str, shape: str) -> dict:
    if shape == "status":
        return {"status": status, "message": message}
    return {"error": message, "code": str(status)}


def vendor_response(request: Request, status: int, message: str, shape: str | None = None) -> JSONResponse:
    shape = shape or ("status" if endpoint_of(request.url.path) in STATUS_SHAPED else "error")
    as_200 = request.app.state.sim.faults.current.errors_as_200 and status < 500
    return JSONResponse(error_body(status, message, shape), status_code=200 if as_200 else status)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    return f"{BAD_INPUT} ({'; '.join(parts)})" if parts else BAD_INPUT


def install(app: FastAPI) -> None:
    @app.exception_handler(VendorError)
    async def vendor_error(request: Request, exc: VendorError):
        return vendor_response(request, exc.status, exc.message, exc.shape)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return vendor_response(request, 400, _describe(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if endpoint_of(request.url.path) is None and not request.url.path.startswith("/thainguyen/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        message = NOT_FOUND if exc.status_code == 404 else str(exc.detail)
        return vendor_response(request, exc.status_code, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # logged by Starlette; the client gets the vendor shape
        return vendor_response(request, 500, SERVER_ERROR)
