"""Members of the cluster bed (topology.cluster): a Kafka broker and a Cassandra node that know
their fellow members. Readiness means "a member of the cluster", not only "answers": a broker is
registered in ZooKeeper under its id and answers ApiVersions; a Cassandra node has bootstrapped
and every other running node lists it in system.peers with its tokens."""
import socket
import struct

import plumbing
from services.cassandra import Cassandra
from services.kafka import Kafka


def api_versions(host, port, timeout=3.0):
    """Kafka ApiVersions v0 round trip; True when the broker answers with error code 0."""
    client = b"stack-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = b""
        while len(head) < 10:
            chunk = s.recv(10 - len(head))
            if not chunk:
                return False
            head += chunk
    _size, correlation, error = struct.unpack(">iih", head)
    return correlation == 7 and error == 0


class ClusterKafka(Kafka):
    probe_interval = 0.5   # no JVM per probe here

    def __init__(self, brokers, **kw):
        super().__init__(**kw)
        self.brokers = brokers   # every broker of the bed, this one included (filled in by the topology)

    def probe(self, timeout_s=20):
        if not api_versions(self.host, self.port):
            return False
        if self.zk_path() not in self.zookeeper.four_letter_word(b"dump"):
            raise plumbing.StackError("answers, but %s is not registered in ZooKeeper yet" % self.zk_path().decode())
        return True

    def env(self):
        if self is not self.brokers[0]:
            return []
        return ["export KAFKA_BOOTSTRAP_SERVERS=%s" % ",".join(b.address() for b in self.brokers)]


class ClusterCassandra(Cassandra):
    probe_interval = 1.0

    def __init__(self, nodes, **kw):
        super().__init__(**kw)
        self.nodes = nodes       # every node of the ring, this one included (filled in by the topology)

    def probe(self):
        import cql  # tests/stack.d/cql.py
        rows = cql.query(self.host, self.port, "SELECT bootstrapped FROM system.local", timeout=3)
        if not rows or rows[0][0] != "COMPLETED":
            raise plumbing.StackError("%s: not bootstrapped yet (%s)" % (self.name, rows))
        me = socket.inet_aton(self.host)
        for other in self.nodes:
            if other is self or other.running_pid() is None or not plumbing.port_open(other.port, other.host):
                continue
            peers = cql.query(other.host, other.port, "SELECT peer, tokens, data_center FROM system.peers",
                              timeout=3)
            if not any(p[0] == me and p[1] is not None and p[2] is not None for p in peers):
                raise plumbing.StackError("%s does not list %s as a peer with tokens yet" % (other.name, self.host))
        return True

    def env(self):
        if self is not self.nodes[0]:
            return []
        return ["export CASSANDRA_CONTACT_POINTS=%s" % ",".join(n.address() for n in self.nodes)]
