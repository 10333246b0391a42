"""JSON-RPC as ``lpu-lsp`` receives it: every request gets a response.

pygls structures a message inside ``json.loads``'s object hook, where a failure can only be
logged: a request whose params did not match its type (a code action whose diagnostics hold
``null``, a hover without a position) got no answer at all, and the client waited for its
timeout. Here the hook keeps the plain objects and the whole message is checked and
structured in ``handle_message``, where a failure is answered (JSON-RPC 2.0, section 5.1):

- a body that is not JSON (or not UTF-8): ``ParseError``, id null
- not a JSON-RPC 2.0 object (an array, no ``"jsonrpc": "2.0"``, a method that is not a
  string, an id that is neither an integer nor a string): ``InvalidRequest``
- params that do not match the method's type: ``InvalidParams``, naming the field
  (``invalid value for type, expected Diagnostic @ params.context.diagnostics[0]``)
- a request after ``shutdown``, or a notification's method sent as a request: ``InvalidRequest``

Values are checked strictly, as JSON types: cattrs by itself would read ``5`` as the string
``"5"`` and ``1.5`` as the integer 1. A notification with bad params cannot be answered; it is
dropped and logged to the client (``window/logMessage``).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import cattrs
from cattrs.v import format_exception
from lsprotocol import types
from pygls.exceptions import (JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams,
                              JsonRpcInvalidRequest, JsonRpcParseError)
from pygls.protocol import LanguageServerProtocol, default_converter

log = logging.getLogger("lpu-lsp")


def _strict(kind: type, accepts: tuple[type, ...]):
    def structure(value: Any, _type: Any) -> Any:
        if isinstance(value, bool) and kind is not bool or not isinstance(value, accepts):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return structure


def strict_converter() -> cattrs.Converter:
    """pygls's converter, with JSON's primitive types checked instead of coerced."""
    converter = default_converter()
    converter.register_structure_hook(int, _strict(int, (int,)))
    converter.register_structure_hook(float, _strict(float, (int, float)))
    converter.register_structure_hook(str, _strict(str, (str,)))
    converter.register_structure_hook(bool, _strict(bool, (bool,)))
    return converter


def _json_name(python_path: str) -> str:
    """``$.params.text_document`` -> ``params.textDocument``: the names the client sent."""
    path = python_path.removeprefix("$.").removeprefix("$")
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path).replace("_", "")


def describe(error: BaseException) -> str:
    """What was wrong with a message, in its own field names (one line per problem)."""
    cause = error.__cause__ if isinstance(error, JsonRpcException) and error.__cause__ else error
    if isinstance(cause, cattrs.BaseValidationError):
        problems = []
        for line in cattrs.transform_error(cause, format_exception=_format_problem):
            text, _, where = line.rpartition(" @ ")
            problems.append(f"{text} @ {_json_name(where)}" if text else line)
        return "; ".join(problems)
    return str(cause) or type(cause).__name__


def _format_problem(exc: BaseException, expected: type | None) -> str:
    if isinstance(exc, ValueError) and expected is None and str(exc):  # an attrs validator's own words
        return f"invalid value: {exc}"
    return format_exception(exc, expected)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool)


class LpuProtocol(LanguageServerProtocol):
    def structure_message(self, data: dict[str, Any]):
        # json.loads calls this for every object, nested ones too (a command argument holding
        # "jsonrpc" was taken for a message): keep them plain, structure the whole message below
        return data

    def handle_message(self, message: Any) -> None:
        request_id = message.get("id") if isinstance(message, dict) and _valid_id(message.get("id")) else None
        try:
            self._handle(message)
        except Exception as exc:  # noqa: BLE001 - whatever happened, a request is answered
            log.exception("lpu-lsp: failed to handle a message")
            if request_id is not None:
                self._refuse(request_id, JsonRpcInternalError(f"lpu-lsp: {describe(exc)}"))

    def _handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            return self._refuse(None, JsonRpcInvalidRequest(
                f"a message must be a JSON object, not {_json_kind(message)}"))
        has_id = "id" in message
        if has_id and not _valid_id(message["id"]) and not (message["id"] is None and "method" not in message):
            return self._refuse(None, JsonRpcInvalidRequest("the id must be an integer or a string"))
        request_id = message.get("id")
        if message.get("jsonrpc") != "2.0":
            return self._refuse(request_id if "method" in message else None,
                                JsonRpcInvalidRequest('"jsonrpc" must be "2.0"'))
        if "method" not in message:
            if "result" in message or "error" in message:  # the client's answer to our request
                return super().handle_message(super().structure_message(message))
            return self._refuse(None, JsonRpcInvalidRequest("a message needs a method, a result or an error"))
        method = message["method"]
        if not isinstance(method, str):
            return self._refuse(request_id, JsonRpcInvalidRequest("the method must be a string"))
        if has_id and self._shutdown and method != types.EXIT:
            return self._refuse(request_id, JsonRpcInvalidRequest(f"{method}: the server is shut down"))
        try:
            structured = super().structure_message(message)
        except JsonRpcException as exc:
            problem = f"{method}: {describe(exc)}"
            if has_id:
                return self._refuse(request_id, JsonRpcInvalidParams(problem))
            return self._log(f"lpu-lsp: ignored the notification {problem}")
        if has_id and getattr(structured, "id", None) is None:
            return self._refuse(request_id, JsonRpcInvalidRequest(f"{method} is a notification, not a request"))
        super().handle_message(structured)

    def _refuse(self, request_id: int | str | None, error: JsonRpcException) -> None:
        log.warning("lpu-lsp: answered %s: %s", request_id, error.message)
        # sent as a plain object: lsprotocol would leave out the "id": null JSON-RPC requires
        self._send_data({"jsonrpc": "2.0", "id": request_id,
                         "error": {"code": error.code, "message": error.message}})

    def _log(self, text: str) -> None:
        log.warning("%s", text)
        self.notify(types.WINDOW_LOG_MESSAGE, types.LogMessageParams(types.MessageType.Warning, text))

    def refuse_unreadable(self, error: Exception) -> None:
        """A body ``json.loads`` could not read (pygls reports it to the server's error handler)."""
        self._refuse(None, JsonRpcParseError(f"the message is not JSON: {describe(error)}"))


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
