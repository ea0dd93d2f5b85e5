"""A counting SMTP sink on 127.0.0.1, in a process of its own, for the mail benchmarks.

Run as a script (``python bench/smtp_sink.py``; it needs only the standard library): it
listens on a free loopback port, prints ``PORT <n>`` once it does, accepts every
message, drops it and counts it (messages, and distinct Message-IDs). Two
commands of its own answer the harness on any connection: ``XCOUNT`` replies
``250 <messages> <distinct>``, ``XRESET`` zeroes both.

:func:`smtp_sink` starts and stops it; :func:`smtp_mail_settings` are the mail
settings that point Django's SMTP backend at it (``EMAIL_*`` on Django 5.2,
``MAILERS`` from 6.1).
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)
_STARTUP_SECONDS = 30


@dataclass(frozen=True)
class SinkCounts:
    messages: int
    distinct: int


@dataclass(frozen=True)
class SmtpSink:
    """A running sink: where it listens, and what it has received."""

    host: str
    port: int

    def counts(self) -> SinkCounts:
        _, reply = self._command("XCOUNT")
        messages, distinct = reply.split()
        return SinkCounts(messages=int(messages), distinct=int(distinct))

    def reset(self) -> None:
        self._command("XRESET")

    def _command(self, verb: str) -> tuple[int, str]:
        with smtplib.SMTP(self.host, self.port, local_hostname="bench", timeout=10) as client:
            code, reply = client.docmd(verb)
        if code != 250:
            raise RuntimeError(f"the SMTP sink answered {verb} with {code} {reply!r}.")
        return code, reply.decode()


def smtp_mail_settings(host: str, port: int) -> dict[str, Any]:
    """Django settings that send mail over SMTP to ``host:port``, no TLS, no auth."""
    backend = "django.core.mail.backends.smtp.EmailBackend"
    import django

    if django.VERSION >= (6, 1):  # MAILERS replaces EMAIL_BACKEND and the EMAIL_* settings
        options = {"host": host, "port": port, "use_tls": False, "timeout": 10}
        return {"MAILERS": {"default": {"BACKEND": backend, "OPTIONS": options}}}
    return {
        "EMAIL_BACKEND": backend,
        "EMAIL_HOST": host,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": False,
        "EMAIL_USE_SSL": False,
        "EMAIL_TIMEOUT": 10,
    }


@contextlib.contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """Start the sink in a new process for the duration of the block; stop it after."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--host", HOST],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "PORT n", or "" if it died
        if not line.startswith("PORT "):
            process.kill()
            _, err = process.communicate(timeout=_STARTUP_SECONDS)
            raise RuntimeError(f"the SMTP sink did not start: {(err or line).strip()[-500:]}")
        yield SmtpSink(host=HOST, port=int(line.split()[1]))
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.communicate(timeout=_STARTUP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _serve(host: str) -> None:  # pragma: no cover - runs in the sink's process
    """A minimal SMTP server on asyncio's Protocol: greeting, EHLO/HELO, MAIL, RCPT,
    DATA, RSET, NOOP, QUIT and the two counting commands; every message accepted.

    Minimal on purpose: a loopback round trip costs ~0.2 ms on the shared VM, and a
    full server (aiosmtpd: ~570 mails/s from a bare smtplib loop here) would be what
    the delivery benchmark measures."""
    import asyncio
    import signal

    counts = {"messages": 0}
    message_ids: set[bytes] = set()

    class Sink(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = b""
            self.in_data = False
            self.closing = False
            transport.write(b"220 bench-sink ESMTP\r\n")

        def data_received(self, chunk: bytes) -> None:
            self.buffer += chunk
            replies = []
            while True:
                if self.in_data:
                    if self.buffer.startswith(b".\r\n"):  # an empty message
                        content, rest = b"", self.buffer[3:]
                    else:
                        end = self.buffer.find(b"\r\n.\r\n")
                        if end < 0:
                            break
                        content, rest = self.buffer[: end + 2], self.buffer[end + 5 :]
                    self._message(content)
                    self.buffer = rest
                    self.in_data = False
                    replies.append(b"250 OK queued")
                    continue
                line, found, rest = self.buffer.partition(b"\r\n")
                if not found:
                    break
                self.buffer = rest
                replies.append(self._command(line))
                if self.closing:
                    break
            if replies:
                self.transport.write(b"\r\n".join(replies) + b"\r\n")
            if self.closing:
                self.transport.close()

        def _command(self, line: bytes) -> bytes:
            verb = line[:4].upper()
            if verb == b"EHLO":
                return b"250-bench-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432"
            if verb == b"DATA":
                self.in_data = True
                return b"354 End data with <CR><LF>.<CR><LF>"
            if verb == b"QUIT":
                self.closing = True
                return b"221 Bye"
            if verb == b"XCOU":
                return b"250 %d %d" % (counts["messages"], len(message_ids))
            if verb == b"XRES":
                counts["messages"] = 0
                message_ids.clear()
                return b"250 reset"
            if verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                return b"250 OK"
            return b"502 Command not implemented"

        def _message(self, content: bytes) -> None:
            counts["messages"] += 1
            header = content.split(b"\r\n\r\n", 1)[0]
            found = _MESSAGE_ID.search(header)
            message_ids.add(found.group(1) if found else b"<none:%d>" % counts["messages"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        server = await loop.create_server(Sink, host=host, port=0)
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        async with server:
            await stopped.wait()

    asyncio.run(main())


if __name__ == "__main__":  # pragma: no cover
    import argparse

    parser = argparse.ArgumentParser(description="A counting SMTP sink for the benchmarks.")
    parser.add_argument("--host", default=HOST)
    _serve(parser.parse_args().host)
