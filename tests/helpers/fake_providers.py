"""A real HTTP server on 127.0.0.1 that speaks the OpenAI, Anthropic and Gemini wire formats, with faults.

A prompt containing ``FAULT:<kind>:<n>`` fails its first ``n`` attempts with ``kind``:
429 (with Retry-After), 500, hang (sleeps past the client timeout), badjson, 401,
and always-on kinds ``empty`` and ``blocked``. Judge prompts are answered with the
letter of the response containing "GOOD"; other prompts with a numbered list.
The server counts requests per prompt and the most requests it saw in flight.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT = re.compile(r"FAULT:(\w+):(\d+)")


class FakeProviderServer:
    def __init__(self, latency: float = 0.0, hang_s: float = 3.0) -> None:
        self.latency = latency
        self.hang_s = hang_s
        self.attempts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.auth_headers: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # as production servers do: without TCP_NODELAY the body, written after the headers, waits for the
            # client's delayed ACK (~40 ms per response) and the server, not the client, sets the pace
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.auth_headers.append(
                        self.headers.get("authorization")
                        or self.headers.get("x-api-key")
                        or self.headers.get("x-goog-api-key")
                        or ""
                    )
                try:
                    server.handle(self, body)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 refuses connections under real concurrency

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # ---- lifecycle ----
    def __enter__(self) -> FakeProviderServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def base_url(self, provider: str) -> str:
        return {
            "openai": f"http://127.0.0.1:{self.port}/v1",
            "anthropic": f"http://127.0.0.1:{self.port}",
            "gemini": f"http://127.0.0.1:{self.port}/",
        }[provider]

    # ---- behaviour ----
    @staticmethod
    def prompt_of(path: str, body: dict) -> tuple[str, str]:
        if path.endswith("/chat/completions"):
            return "openai", body["messages"][-1]["content"]
        if path.endswith("/messages"):
            content = body["messages"][-1]["content"]
            return "anthropic", content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
        if ":generateContent" in path:
            return "gemini", "".join(p.get("text", "") for c in body["contents"] for p in c.get("parts", []))
        raise ValueError(path)

    @staticmethod
    def answer(prompt: str) -> str:
        if "Return answer as single letter" in prompt:
            a = prompt.split("Response A:")[1].split("Response B:")[0]
            b = prompt.split("Response B:")[1]
            return "A" if "GOOD" in a and "GOOD" not in b else "B" if "GOOD" in b and "GOOD" not in a else "C"
        n = int(m.group(1)) if (m := re.search(r"(\d+) (?:new )?questions", prompt)) else 3
        tag = abs(hash(prompt)) % 10000
        return "\n".join(
            f"{k + 1}. How do I handle situation {tag}-{k} with my {['oven', 'dog', 'lease'][k % 3]}?" for k in range(n)
        )

    def handle(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        provider, prompt = self.prompt_of(h.path, body)
        with self.lock:
            self.attempts[prompt] += 1
            attempt = self.attempts[prompt]
        if self.latency:
            time.sleep(self.latency)
        fault = FAULT.search(prompt)
        kind, count = (fault.group(1), int(fault.group(2))) if fault else ("", 0)
        if kind in {"empty", "blocked"} or (kind and attempt <= count):
            if kind == "429":
                return self.send(
                    h,
                    429,
                    {
                        "error": {
                            "message": "rate limited",
                            "type": "rate_limit_error",
                            "code": 429,
                            "status": "RESOURCE_EXHAUSTED",
                        }
                    },
                    {"Retry-After": "0.2"},
                )
            if kind == "500":
                return self.send(
                    h, 500, {"error": {"message": "boom", "type": "api_error", "code": 500, "status": "INTERNAL"}}
                )
            if kind == "401":
                return self.send(
                    h,
                    401,
                    {
                        "error": {
                            "message": "invalid api key",
                            "type": "authentication_error",
                            "code": 401,
                            "status": "UNAUTHENTICATED",
                        }
                    },
                )
            if kind == "hang":
                time.sleep(self.hang_s)
            if kind == "badjson":
                return self.send_raw(h, 200, b'{"id": "x", "choices": [ this is not json')
            if kind == "empty":
                return self.send(h, 200, self.success(provider, "", body))
            if kind == "blocked":
                return self.send(h, 200, self.blocked(provider, body))
        self.send(h, 200, self.success(provider, self.answer(prompt), body))

    @staticmethod
    def success(provider: str, text: str, body: dict) -> dict:
        if provider == "openai":
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "m"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        if provider == "anthropic":
            return {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "m"),
                "content": [{"type": "text", "text": text}] if text else [],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 7},
            }
        return {
            "candidates": [
                {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP", "index": 0}
            ],
            "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18},
        }

    @staticmethod
    def blocked(provider: str, body: dict) -> dict:
        if provider == "openai":
            return {
                "id": "chatcmpl-2",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "m"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "content_filter"}
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 0, "total_tokens": 11},
            }
        if provider == "anthropic":
            return {
                "id": "msg_2",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", "m"),
                "content": [],
                "stop_reason": "refusal",
                "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 0},
            }
        return {
            "promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 11, "totalTokenCount": 11},
        }

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
        FakeProviderServer.send_raw(h, status, json.dumps(payload).encode(), headers)

    @staticmethod
    def send_raw(h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("content-type", "application/json")
            h.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
