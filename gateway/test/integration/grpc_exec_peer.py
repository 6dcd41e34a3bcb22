"""An independent gRPC peer for kiln's LLBBridge container RPCs: grpcio (gRPC C-core, Debian
python3-grpcio) speaking raw protobuf bytes written here from BuildKit v0.11.6's gateway.proto, on
a unix socket. ExecProcess is a bidirectional stream, so this checks kiln's HTTP/2 streaming
(messages both ways on one open call, half-close, trailers) against an implementation that is not
kiln's.

  client SOCKET DEFINITION_B64   grpcio as the frontend, calling kiln's server; one JSON line per step
  server SOCKET                  grpcio as the daemon, serving kiln's client; one JSON line per call
"""
import base64
import queue

import grpc

# The wire helpers (varint, length-delimited and varint fields, a field reader) and the JSON line
# printer are grpc_peer.py's, next to this file.
from grpc_peer import SERVICE, fields, ld, main, out, recorded, serve, vi


def field(buf, f, default=None):
    for f2, _, v in fields(buf):
        if f2 == f:
            return v
    return default


# ExecMessage: ProcessID 1; Input oneof: Init 2, File 3, Resize 4, Started 5, Exit 6, Done 7, Signal 8.
KINDS = {2: "init", 3: "file", 4: "resize", 5: "started", 6: "exit", 7: "done", 8: "signal"}


def exec_msg(pid, kind_field, body):
    return ld(1, pid) + ld(kind_field, body)


def parse_exec(buf):
    """One ExecMessage as a dict: pid, kind and the fields this test looks at."""
    out = {"pid": field(buf, 1, b"").decode()}
    for f, _, v in fields(buf):
        if f in KINDS and f != 1:
            out["kind"] = KINDS[f]
            if f == 3:  # FdMessage: Fd 1, EOF 2, Data 3
                out["fd"] = field(v, 1, 0)
                out["eof"] = bool(field(v, 2, 0))
                out["data"] = field(v, 3, b"").decode()
            elif f == 6:  # ExitMessage: Code 1, Error 2 (google.rpc.Status code 1, message 2)
                out["code"] = field(v, 1, 0)
                err = field(v, 2)
                if err is not None:
                    out["error"] = field(err, 2, b"").decode()
            elif f == 8:
                out["name"] = field(v, 1, b"").decode()
            elif f == 2:  # InitMessage: ContainerID 1, Meta 2 (args 1), Fds 3 (packed), Tty 4
                meta = field(v, 2, b"")
                out["container"] = field(v, 1, b"").decode()
                out["args"] = [a.decode() for g, _, a in fields(meta) if g == 1]
                fds = field(v, 3, b"")
                out["fds"] = list(fds) if isinstance(fds, (bytes, bytearray)) else [fds]
    return out


class Requests:
    """A request iterator fed from this thread: grpcio half-closes when it ends."""

    def __init__(self):
        self.q = queue.Queue()

    def send(self, m):
        self.q.put(m)

    def close(self):
        self.q.put(None)

    def __iter__(self):
        while True:
            m = self.q.get()
            if m is None:
                return
            yield m


def client(sock, definition):
    with grpc.insecure_channel("unix:" + sock) as ch:
        def unary(name, method, req):
            try:
                res = ch.unary_unary("/%s/%s" % (SERVICE, method))(req, timeout=30)
                out(step=name, ok=True, response=base64.b64encode(res).decode())
                return res
            except grpc.RpcError as e:
                out(step=name, ok=False, code=e.code().name, details=e.details())
                return None

        pong = unary("ping", "Ping", b"")
        caps = [field(c, 1, b"").decode() for f, _, c in fields(pong) if f == 1]
        out(step="caps", caps=caps)
        solved = unary("solve", "Solve", ld(1, definition) + vi(5, 1) + vi(6, 1))
        ref_id = field(field(field(solved, 3), 3), 1).decode()
        # NewContainerRequest: ContainerID 1, Mounts 2 (pb.Mount dest 3, resultID 23), Network 3 (NONE 2).
        unary("new-container", "NewContainer", ld(1, "ctr1") + ld(2, ld(3, "/") + ld(23, ref_id)) + vi(3, 2))
        unary("new-container-unknown-ref", "NewContainer", ld(1, "ctr2") + ld(2, ld(3, "/") + ld(23, "nope")))

        reqs = Requests()
        call = ch.stream_stream("/%s/ExecProcess" % SERVICE)(iter(reqs), timeout=60)
        # InitMessage: ContainerID 1, Meta 2 (args 1), Fds 3 (packed 0, 1, 2).
        reqs.send(exec_msg("ctr1:cat", 2, ld(1, "ctr1") + ld(2, ld(1, "cat")) + ld(3, bytes([0, 1, 2]))))
        got = []
        step = 0
        for raw in call:
            m = parse_exec(raw)
            got.append(m)
            if m["pid"] == "ctr1:cat" and m["kind"] == "started" and step == 0:
                step = 1
                reqs.send(exec_msg("ctr1:cat", 3, vi(1, 0) + ld(3, "hello grpcio\n")))
                reqs.send(exec_msg("ctr1:cat", 3, vi(2, 1)))
            if m["pid"] == "ctr1:cat" and m["kind"] == "done":
                reqs.send(exec_msg("ctr1:sleep", 2, ld(1, "ctr1") + ld(2, ld(1, "sleep"))))
            if m["pid"] == "ctr1:sleep" and m["kind"] == "started":
                reqs.send(exec_msg("ctr1:sleep", 4, vi(1, 24) + vi(2, 80)))
                reqs.send(exec_msg("ctr1:sleep", 8, ld(1, "TERM")))
            if m["pid"] == "ctr1:sleep" and m["kind"] == "done":
                reqs.close()
        out(step="exec", messages=got, code=call.code().name)

        # A protocol error: a File for a process that does not exist ends the call with NOT_FOUND.
        bad = Requests()
        bad.send(exec_msg("ghost", 3, ld(3, "x")))
        try:
            for _ in ch.stream_stream("/%s/ExecProcess" % SERVICE)(iter(bad), timeout=30):
                pass
            out(step="exec-bad", ok=True)
        except grpc.RpcError as e:
            out(step="exec-bad", ok=False, code=e.code().name, details=e.details())
        bad.close()

        unary("release", "ReleaseContainer", ld(1, "ctr1"))
        unary("release-again", "ReleaseContainer", ld(1, "ctr1"))
        unary("return", "Return", ld(1, ld(3, ld(1, ref_id))))


def server(sock):
    def pong(req, ctx):
        ids = ["solve.base", "return", "proto.refarray", "gateway.exec", "gateway.exec.extrahosts"]
        return b"".join(ld(1, ld(1, c) + vi(2, 1)) for c in ids)

    def execute(requests, context):
        """Echo server: Started on Init, stdin back as fd 1, then EOF, Exit 0, Done; a Signal exits 130.
        An Init of `missing` fails the whole call, as buildkitd's ExecProcess returns ctr.Start's error."""
        for raw in requests:
            m = parse_exec(raw)
            out(call="exec", message=m)
            pid = m["pid"]
            if m["kind"] == "init" and m["args"][:1] == ["missing"]:
                context.abort(grpc.StatusCode.UNKNOWN, 'exec: "missing": executable file not found in $PATH')
            if m["kind"] == "init":
                yield exec_msg(pid, 5, b"")
            elif m["kind"] == "file" and m["data"]:
                yield exec_msg(pid, 3, vi(1, 1) + ld(3, m["data"].upper()))
            elif m["kind"] == "file" and m["eof"]:
                yield exec_msg(pid, 3, vi(1, 1) + vi(2, 1))
                yield exec_msg(pid, 6, b"")
                yield exec_msg(pid, 7, b"")
            elif m["kind"] == "signal":
                yield exec_msg(pid, 6, vi(1, 130) + ld(2, vi(1, 2) + ld(2, "exit code: 130")))
                yield exec_msg(pid, 7, b"")

    serve(sock, {
        "Ping": recorded("ping", pong),
        "Solve": recorded("solve", lambda req, ctx: ld(3, ld(3, ld(1, "py-ref-1")))),
        "NewContainer": recorded("new-container", lambda req, ctx: b""),
        "ReleaseContainer": recorded("release", lambda req, ctx: b""),
        "ExecProcess": grpc.stream_stream_rpc_method_handler(execute),
    })


if __name__ == "__main__":
    main(client, server)
