"""Serve a Hugging Face checkpoint over OpenAI's chat completions API on 127.0.0.1.

The ``local`` backend's result is a transformers directory; vLLM serves that on a GPU, and
this serves it anywhere: ``transformers`` ``generate`` behind the standard library's HTTP
server, so the evals can run on a fine-tuned model with ``--eval-models`` fully offline::

    python -m pytest_modelopt.optimize.serve_hf DIR --model-name NAME --port 8000
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 pytest --eval-models NAME

It implements ``GET /v1/models`` and ``POST /v1/chat/completions`` (``messages``,
``max_tokens`` / ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``,
``n``, ``stream``); one request generates at a time. It needs ``pytest-modelopt[train]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends.local.backend import resolve_base_model

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

DEFAULT_MAX_TOKENS = 256


class RequestError(Exception):
    """A request the server answers with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


class ChatModel:
    """A causal LM and its tokenizer's chat template, answering chat completion bodies."""

    def __init__(self, model: str | Path, *, name: str | None = None, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a checkpoint on disk, never a download
        import torch  # torch and transformers: only in the serving process
        from transformers import AutoModelForCausalLM, AutoTokenizer

        directory, gguf_file = resolve_base_model(str(model))
        kwargs: dict[str, Any] = {"local_files_only": True}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        self.tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
        self.model = AutoModelForCausalLM.from_pretrained(directory, **kwargs).to(device)
        self.model.eval()
        self.device = device
        self.name = name or (Path(model).name if gguf_file is None else Path(gguf_file).stem)
        self._torch = torch
        self._lock = threading.Lock()

    def complete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """One ``chat.completion`` object for a request body."""
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "'messages' must be a non-empty list")
        chat = [
            {
                "role": "system" if m.get("role") == "developer" else m.get("role"),
                "content": _text(m.get("content")),
            }
            for m in messages
            if isinstance(m, dict)
        ]
        max_tokens = int(
            body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        )
        temperature = 1.0 if body.get("temperature") is None else float(body["temperature"])
        top_p = float(body.get("top_p") or 1.0)
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        n = int(body.get("n") or 1)
        torch = self._torch
        inputs = self.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        prompt_len = int(inputs["input_ids"].shape[1])
        generation: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            generation.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            generation.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        choices, completion_tokens = [], 0
        with self._lock, torch.no_grad():
            if body.get("seed") is not None:
                torch.manual_seed(int(body["seed"]))
            for index in range(n):
                output = self.model.generate(**inputs, **generation)[0][prompt_len:]
                ids = output.tolist()
                eos = self.tokenizer.eos_token_id
                finish = "stop" if eos is not None and eos in ids else "length"
                text = self.tokenizer.decode(output, skip_special_tokens=True)
                for marker in stops:
                    if marker and marker in text:
                        text, finish = text[: text.index(marker)], "stop"
                completion_tokens += len(ids)
                choices.append(
                    {
                        "index": index,
                        "message": {"role": "assistant", "content": text},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_len,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_len + completion_tokens,
            },
        }


def _handler(chat: ChatModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the evals print enough
            return

        def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, exc: RequestError) -> None:
            self._send(
                exc.status, {"error": {"message": str(exc), "type": exc.code, "code": exc.code}}
            )

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                model = {"id": chat.name, "object": "model", "created": 0, "owned_by": "local"}
                self._send(200, {"object": "list", "data": [model]})
            else:
                self._error(RequestError(404, f"no route {self.path}", "not_found"))

        def do_POST(self) -> None:
            try:
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    raise RequestError(404, f"no route {self.path}", "not_found")
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    raise RequestError(400, "the body is not JSON") from None
                if not isinstance(body, dict):
                    raise RequestError(400, "the body must be a JSON object")
                if body.get("model") not in (None, chat.name):
                    raise RequestError(
                        404,
                        f"model {body.get('model')!r} is not served here (try {chat.name!r})",
                        "model_not_found",
                    )
                result = chat.complete(body)
            except RequestError as exc:
                self._error(exc)
                return
            if body.get("stream"):
                self._send(200, _as_stream(result), "text/event-stream")
            else:
                self._send(200, result)

    return Handler


def _as_stream(result: dict[str, Any]) -> bytes:
    """The whole answer as one server-sent chunk per choice, then [DONE]."""
    events = []
    for choice in result["choices"]:
        chunk = {
            "id": result["id"],
            "object": "chat.completion.chunk",
            "created": result["created"],
            "model": result["model"],
            "choices": [
                {
                    "index": choice["index"],
                    "delta": choice["message"],
                    "finish_reason": choice["finish_reason"],
                }
            ],
        }
        events.append(f"data: {json.dumps(chunk)}\n\n")
    events.append("data: [DONE]\n\n")
    return "".join(events).encode()


class HFServer:
    """The server in a background thread of this process; a context manager that stops it."""

    def __init__(
        self,
        model: str | Path,
        *,
        name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        device: str = "cpu",
    ) -> None:
        self.chat = ChatModel(model, name=name, device=device)
        self._httpd = ThreadingHTTPServer((host, port), _handler(self.chat))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def name(self) -> str:
        return self.chat.name

    def start(self) -> HFServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> HFServer:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_modelopt.optimize.serve_hf",
        description="serve a transformers checkpoint over OpenAI's chat completions API",
    )
    parser.add_argument(
        "model", help="a checkpoint directory, a .gguf file or smollm2-135m-instruct"
    )
    parser.add_argument("--model-name", help="the name to answer to (default: the directory's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    server = HFServer(
        args.model, name=args.model_name, host=args.host, port=args.port, device=args.device
    )
    print(
        f"serving {server.name} at {server.base_url}; in another shell: "
        f"OPENAI_BASE_URL={server.base_url} pytest --eval-models {server.name}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server._httpd.serve_forever()
    server._httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
