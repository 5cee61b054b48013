"""Tiny stdlib-only CQL native protocol v4 client (STARTUP + QUERY), used by tests/stack as
Cassandra's readiness probe. Also usable from tests:

    from cql import query
    rows = query("127.0.0.1", 9042, "SELECT release_version FROM system.local")
    # -> [["5.0.9"]]  (text/varchar/ascii cells decoded as str, everything else as raw bytes, NULL as None)

Command line: python3 tests/stack.d/cql.py [host:port] "CQL"   (prints one row per line, tab-separated)
Only what a probe needs: no auth, no paging, no prepared statements, consistency ONE.
"""
import socket
import struct
import sys

VERSION = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x03, 0x07, 0x08
TEXT_TYPES = {0x0001, 0x000A, 0x000D}  # ascii, text, varchar


class CqlError(Exception):
    pass


def _string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def _long_string(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise CqlError("connection closed by server")
        buf += chunk
    return buf


def _request(sock, stream, opcode, body):
    sock.sendall(struct.pack(">BBhBi", VERSION, 0, stream, opcode, len(body)) + body)
    version, flags, _stream, op, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    payload = _recv_exact(sock, length)
    # Optional prefixes of the body (protocol v4 §2.2): tracing id, then warnings. Cassandra
    # attaches a warning to e.g. an unbounded COUNT(*); skip it so the body parses.
    if flags & 0x02:
        payload = payload[16:]
    if flags & 0x08:
        count, p = struct.unpack(">H", payload[:2])[0], 2
        for _ in range(count):
            p += 2 + struct.unpack(">H", payload[p:p + 2])[0]
        payload = payload[p:]
    if op == OP_ERROR:
        code = struct.unpack(">i", payload[:4])[0]
        n = struct.unpack(">H", payload[4:6])[0]
        raise CqlError("server error 0x%04x: %s" % (code, payload[6:6 + n].decode(errors="replace")))
    return op, payload


class _Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, n):
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def string(self):
        return self.take(self.short()).decode()

    def option(self):
        """Type option; returns the type id, skipping nested type info."""
        tid = self.short()
        if tid == 0x0000:            # custom
            self.string()
        elif tid in (0x0020, 0x0022):  # list, set
            self.option()
        elif tid == 0x0021:          # map
            self.option()
            self.option()
        elif tid == 0x0030:          # UDT
            self.string()
            self.string()
            for _ in range(self.short()):
                self.string()
                self.option()
        elif tid == 0x0031:          # tuple
            for _ in range(self.short()):
                self.option()
        return tid


def query(host, port, cql, timeout=5.0):
    """Run one CQL statement; returns a list of rows (lists) for Rows results, [] otherwise."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        op, _ = _request(sock, 0, OP_STARTUP, struct.pack(">H", 1) + _string("CQL_VERSION") + _string("3.0.0"))
        if op == OP_AUTHENTICATE:
            raise CqlError("server requires authentication (not supported by this probe)")
        if op != OP_READY:
            raise CqlError("unexpected STARTUP response opcode 0x%02x" % op)
        # <query><consistency ONE><flags 0>
        op, payload = _request(sock, 1, OP_QUERY, _long_string(cql) + struct.pack(">HB", 0x0001, 0))
        if op != OP_RESULT:
            raise CqlError("unexpected QUERY response opcode 0x%02x" % op)
        r = _Reader(payload)
        if r.int() != 0x0002:  # not Rows (Void, SetKeyspace, SchemaChange, ...)
            return []
        flags, ncols = r.int(), r.int()
        if flags & 0x0002:      # has_more_pages -> paging state
            r.take(r.int())
        if flags & 0x0004:      # no_metadata
            types = [None] * ncols
        else:
            if flags & 0x0001:  # global_tables_spec
                r.string()
                r.string()
            types = []
            for _ in range(ncols):
                if not flags & 0x0001:
                    r.string()
                    r.string()
                r.string()      # column name
                types.append(r.option())
        rows = []
        for _ in range(r.int()):
            row = []
            for t in types:
                n = r.int()
                if n < 0:
                    row.append(None)
                else:
                    v = r.take(n)
                    row.append(v.decode() if t in TEXT_TYPES else v)
            rows.append(row)
        return rows


def main(argv):
    addr, cql = ("127.0.0.1:9042", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
    host, _, port = addr.rpartition(":")
    for row in query(host, int(port), cql):
        print("\t".join("" if c is None else (c if isinstance(c, str) else c.hex()) for c in row))


if __name__ == "__main__":
    main(sys.argv)
