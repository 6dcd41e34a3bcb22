"""An independent gRPC peer for kiln's LLBBridge tests: grpcio (gRPC C-core, Debian python3-grpcio)
speaking raw protobuf bytes on a unix socket, so kiln's HTTP/2 framing, trailers and status
handling meet an implementation that is not kiln's.

  client SOCKET DEFINITION_B64   calls kiln's LLBBridge server; prints one JSON line per call
  server SOCKET                  serves LLBBridge for kiln's client; prints one JSON line per call
"""
import base64
import json
import sys
import threading

import grpc

SERVICE = "moby.buildkit.v1.frontend.LLBBridge"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def ld(field, body):
    """A length-delimited field."""
    if isinstance(body, str):
        body = body.encode()
    return varint(field << 3 | 2) + varint(len(body)) + body


def vi(field, n):
    return varint(field << 3) + varint(n)


def fields(buf):
    """(field, wire type, value) of a message's top-level fields."""
    i = 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        yield f, wt, v


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def out(**kw):
    print(json.dumps(kw), flush=True)


def client(sock, definition):
    opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    with grpc.insecure_channel("unix:" + sock, options=opts) as ch:
        def call(name, method, req):
            try:
                res = ch.unary_unary("/%s" % method)(req, timeout=30)
                out(call=name, ok=True, response=base64.b64encode(res).decode())
                return res
            except grpc.RpcError as e:
                out(call=name, ok=False, code=e.code().name, details=e.details())
                return None

        call("ping", SERVICE + "/Ping", b"")
        call("health", "grpc.health.v1.Health/Check", b"")
        # SolveRequest: Definition 1, allowResultReturn 5, allowResultArrayRef 6.
        solved = call("solve", SERVICE + "/Solve", ld(1, definition) + vi(5, 1) + vi(6, 1))
        ref_id = ""
        for f, _, v in fields(solved or b""):
            if f == 3:  # SolveResponse.result
                for f2, _, v2 in fields(v):
                    if f2 == 3:  # Result.ref
                        for f3, _, v3 in fields(v2):
                            if f3 == 1:
                                ref_id = v3.decode()
        out(call="ref", ok=True, id=ref_id)
        # ReadFileRequest: Ref 1, FilePath 2, Range 3 (Offset 1, Length 2).
        call("readfile", SERVICE + "/ReadFile", ld(1, ref_id) + ld(2, "greeting.txt") + ld(3, vi(1, 6) + vi(2, 5)))
        call("readfile-missing", SERVICE + "/ReadFile", ld(1, ref_id) + ld(2, "café ✓.txt"))
        call("readfile-unknown-ref", SERVICE + "/ReadFile", ld(1, "nope") + ld(2, "x"))
        call("big", SERVICE + "/ReadFile", ld(1, ref_id) + ld(2, "big"))
        call("unknown-method", SERVICE + "/NewContainer", b"")
        call("too-large-request", SERVICE + "/ReadFile", ld(1, ref_id) + ld(2, "x" * ((16 << 20) + 1)))
        # ReturnRequest.result 1: Result.ref 3 {id}, metadata 10 {k: v}.
        call("return", SERVICE + "/Return", ld(1, ld(3, ld(1, ref_id)) + ld(10, ld(1, "k") + ld(2, b"\x00\x01"))))


def recorded(name, answer):
    """A unary handler that prints its request as a JSON line, then answers."""
    def fn(request, context):
        out(call=name, request=base64.b64encode(request).decode())
        return answer(request, context)
    return grpc.unary_unary_rpc_method_handler(fn)


def serve(sock, handlers):
    """Serves LLBBridge `handlers` on the socket until Return was answered (or 60 s)."""
    done = threading.Event()

    def ret(req, ctx):
        threading.Timer(0.5, done.set).start()
        return b""

    srv = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(max_workers=4))
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, dict(handlers, Return=recorded("return", ret))),))
    srv.add_insecure_port("unix:" + sock)
    srv.start()
    out(call="listening")
    done.wait(60)
    srv.stop(0)


def main(client_fn, server_fn):
    if sys.argv[1] == "client":
        client_fn(sys.argv[2], base64.b64decode(sys.argv[3]))
    else:
        server_fn(sys.argv[2])


def server(sock):
    def pong(req, ctx):
        caps = b"".join(ld(1, ld(1, c) + vi(2, 1)) for c in ["solve.base", "readfile", "readdir", "statfile", "return", "returnmap", "proto.refarray", "frontend.inputs", "gateway.warnings"])
        worker = ld(3, ld(1, "py") + ld(3, ld(1, "amd64") + ld(2, "linux")))
        return caps + worker

    def inputs(req, ctx):
        return b""

    def solve(req, ctx):
        return ld(3, ld(3, ld(1, "py-ref-1")))

    def readfile(req, ctx):
        path = ""
        for f, _, v in fields(req):
            if f == 2:
                path = v.decode()
        if path == "hello":
            return ld(1, b"hello from grpcio")
        ctx.abort(grpc.StatusCode.NOT_FOUND, "open %s: no such file — 100%% sure" % path)

    def warn(req, ctx):
        return b""

    serve(sock, {
        "Ping": recorded("ping", pong),
        "Inputs": recorded("inputs", inputs),
        "Solve": recorded("solve", solve),
        "ReadFile": recorded("readfile", readfile),
        "Warn": recorded("warn", warn),
    })


if __name__ == "__main__":
    main(client, server)
