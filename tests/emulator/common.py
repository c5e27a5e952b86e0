# SPDX-License-Identifier: MIT
"""What the emulators (imds.py, keyvault.py) share: the fault queue and the
JSON-lines log, the faults that misbehave the same way in both, and the
server's start (--bind, --port, --port-file) and stop (SIGTERM/SIGINT).
Each emulator keeps its own protocol, log fields and error bodies.
"""

import json
import os
import select
import signal
import socket
import ssl
import struct
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HUGE_BYTES = 10 * 1024 * 1024
# The faults both emulators take by name; each adds its own.
FAULTS = frozenset(("hang", "hang-all", "reset", "huge", "badjson"))


def check_fault(fault, names, hint=""):
    """Raises ValueError for a string that is none of the emulator's faults:
    one of names, "<status>[:retry-after=N]", "field:NAME=JSON" or
    "nofield:NAME"."""
    status, sep, option = fault.partition(":")
    if fault in names:
        return
    if status.isdigit() and (not sep or option.startswith("retry-after=")):
        return
    if fault.startswith("field:") and "=" in fault:
        json.loads(fault.partition("=")[2])
        return
    if fault.startswith("nofield:") and len(fault) > len("nofield:"):
        return
    raise ValueError("unknown fault %r%s" % (fault, hint))


def shape_body(body, fault):
    """Applies a field:NAME=JSON or nofield:NAME fault to a 200's body."""
    if fault and fault.startswith("field:"):
        name, _, value = fault[len("field:"):].partition("=")
        body[name] = json.loads(value)
    elif fault and fault.startswith("nofield:"):
        body.pop(fault[len("nofield:"):], None)
    return body


class State:
    """The fault queue and the log, shared by the request threads.  With
    keep_log the entries also stay in memory, for log_copy()."""

    def __init__(self, args, keep_log=False):
        self.args = args
        self.lock = threading.Lock()
        self.hang_all = "hang-all" in args.fault
        self.faults = [f for f in args.fault if f != "hang-all"]
        self.log = [] if keep_log else None
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None

    def next_fault(self):
        with self.lock:
            if self.hang_all:
                return "hang"
            return self.faults.pop(0) if self.faults else None

    def set_faults(self, faults):
        with self.lock:
            self.faults = list(faults)

    def record(self, entry):
        with self.lock:
            if self.log is not None:
                self.log.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    def log_copy(self):
        with self.lock:
            return list(self.log)


class Handler(BaseHTTPRequestHandler):
    """An emulator's handler defines entry(status, fault=None, ...), which
    logs the request, and answer_status_fault(code, fault, extra), which
    answers a "<status>" fault in its protocol's words."""

    protocol_version = "HTTP/1.1"
    content_type = "application/json"
    # Headers and body go out as two writes: without TCP_NODELAY the body
    # waits for the client's delayed ACK (40 ms a request on keep-alive).
    disable_nagle_algorithm = True
    # Request headers the log leaves out.
    hidden_headers = ()

    def log_message(self, *args):
        pass

    def finish(self):
        # A fault may have closed or reset the socket already.
        try:
            super().finish()
        except OSError:
            pass

    def state(self):
        return self.server.state

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def parse_query(self):
        """The query as {name: [values]} (a repeated name has several values)."""
        pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)
        query = {}
        for name, value in pairs:
            query.setdefault(name, []).append(value)
        return query

    def request_fields(self):
        """The log entry's first fields: the request as it came."""
        return {
            "method": self.command,
            "path": urllib.parse.urlsplit(self.path).path,
            "query": self.parse_query(),
            "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() not in self.hidden_headers},
        }

    def send(self, status, body, content_type=None, extra=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type or self.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    # ---- faults -----------------------------------------------------------

    def wait_for_client_close(self):
        sock = self.connection
        while True:
            ready, _, _ = select.select([sock], [], [], 0.5)
            if not ready:
                continue
            try:
                if not sock.recv(4096):
                    return
            except ssl.SSLWantReadError:  # TLS records that carry no data yet
                continue
            except OSError:
                return

    def fault_response(self, fault):
        """Answers per the fault; returns True when it answered, False for the
        faults that shape a normal 200 (truncated, field:, nofield:)."""
        if fault == "truncated" or fault.startswith(("field:", "nofield:")):
            return False
        if fault == "hang":
            self.entry(0, fault=fault)
            self.wait_for_client_close()
        elif fault == "reset":
            self.entry(0, fault=fault)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        elif fault in ("drip", "huge"):
            self.entry(200, fault=fault)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if fault == "drip":
                self.send_header("Connection", "close")  # no length: the body runs until close
            else:
                self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            try:
                self.wfile.flush()
                if fault == "drip":
                    while True:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(1)
                chunk = b"x" * 65536
                for _ in range(HUGE_BYTES // len(chunk)):
                    self.wfile.write(chunk)
            except OSError:
                pass
        elif fault == "badjson":
            self.entry(200, fault=fault)
            self.send(200, b"<html><body>upstream error</body></html>", "text/html")
            return True
        else:
            status, sep, option = fault.partition(":")
            code = int(status)
            self.entry(code, fault=fault)
            self.answer_status_fault(code, fault, [("Retry-After", option[len("retry-after="):])] if sep else [])
            return True
        self.close_connection = True
        return True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's backlog is 5: a burst of clients would see connections
    # dropped by the kernel, which a real endpoint does not do.
    request_queue_size = 1024


def tls_server_class(cert, key):
    """A Server that speaks TLS with cert/key; failed handshakes are
    recorded in the log as {"method": None, "tls_error": ...}."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class TlsServer(Server):
        def finish_request(self, request, client_address):
            # The handshake runs here, in the request's thread.
            request.settimeout(10)
            try:
                tls = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.state.record({"method": None, "tls_error": str(e)})
                return
            tls.settimeout(None)
            try:
                super().finish_request(tls, client_address)
            finally:
                tls.close()

    return TlsServer


def add_listen_arguments(parser):
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")


def write_port_file(path, port):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".port.")
    with os.fdopen(fd, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, path)


def serve(args, handler, make_state, server_class=Server):
    """Listens on --bind/--port, writes --port-file once listening, and
    serves until SIGTERM or SIGINT.  Returns the exit status."""

    class Listener(server_class):
        address_family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET

    server = Listener((args.bind, args.port), handler)
    server.state = make_state(args)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        write_port_file(args.port_file, server.server_address[1])
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0
