"""Which service instances a bed runs, at which addresses.

A topology is a list of service instances (services/*.py, each with its name, host, port and the
names of the instances it needs first), the names `tests/stack up` starts, and named groups that
`up --<group>` adds and `start/stop <group>` address at once. The default bed below is the one
CI uses; other beds (e.g. a secured one, or a cluster of several brokers/nodes on 127.0.0.2, ...
with the same ports, like ccm) are other functions here returning other Topology values, chosen
with STACK_TOPOLOGY."""
import os

from plumbing import StackError
from services.airflow import ApiServer, DagProcessor, Scheduler
from services.cassandra import Cassandra
from services.cluster import ClusterCassandra, ClusterKafka
from services.kafka import Kafka
from services.node_exporter import NodeExporter
from services.postgres import Postgres
from services.alertmanager import Alertmanager
from services.prometheus import Prometheus
from services.pushgateway import Pushgateway
from services.registry import Registry
from services.zookeeper import ZooKeeper


class Topology:
    def __init__(self, name, instances, up, groups):
        self.name = name
        self.instances = list(instances)        # display order
        self.by_name = {i.name: i for i in self.instances}
        self.up = list(up)                      # what `tests/stack up` starts
        self.groups = dict(groups)              # e.g. {"airflow": [...]}: optional, started on request
        for svc in self.instances:
            for d in svc.deps:
                if d not in self.by_name:
                    raise StackError("topology %s: %s needs unknown %s" % (name, svc.name, d))

    def resolve(self, names):
        """Instances for service or group names, with the instances they need, deps first."""
        out = []

        def add(n, chain=()):
            if n in chain:
                raise StackError("dependency cycle: %s" % " -> ".join(chain + (n,)))
            for d in self.by_name[n].deps:
                add(d, chain + (n,))
            if self.by_name[n] not in out:
                out.append(self.by_name[n])

        for n in names:
            if n in self.groups:
                for m in self.groups[n]:
                    add(m)
            elif n in self.by_name:
                add(n)
            else:
                raise StackError("unknown service %r: one of %s" % (n, " ".join(self.names())))
        return out

    def names(self):
        return [i.name for i in self.instances] + list(self.groups)

    def optional(self, svc):
        return svc.name not in self.up

    def dependents(self, svc):
        return [i for i in self.instances if svc.name in i.deps]


def default():
    """ZooKeeper, Kafka, the registry and Cassandra on 127.0.0.1 with Compose's host ports; Airflow
    (Postgres, api-server :8080, scheduler, dag-processor) on request (`up --airflow`), and so is
    Compose's monitoring profile (Pushgateway :9091, Alertmanager :9093, node exporter :9100,
    Prometheus :9090, which also scrapes ZooKeeper, Kafka, the registry and Cassandra:
    `up --monitoring`)."""
    zookeeper = ZooKeeper()
    kafka = Kafka(zookeeper=zookeeper)
    registry = Registry()
    cassandra = Cassandra()
    postgres = Postgres()
    wiring = dict(postgres=postgres, kafka=kafka, registry=registry)
    api = ApiServer(**wiring)
    scheduler = Scheduler(api=api, **wiring)
    dag_processor = DagProcessor(api=api, **wiring)
    airflow = [postgres, api, scheduler, dag_processor]
    pushgateway, alertmanager, node_exporter = Pushgateway(), Alertmanager(), NodeExporter()
    prometheus = Prometheus(deps=["alertmanager", "pushgateway", "node-exporter"], alertmanager=alertmanager,
                            pushgateway=pushgateway, watched=[zookeeper, kafka, registry, cassandra, node_exporter])
    monitoring = [pushgateway, alertmanager, node_exporter, prometheus]
    return Topology("default", [zookeeper, kafka, registry, cassandra] + airflow + monitoring,
                    up=["zookeeper", "kafka", "registry", "cassandra"],
                    groups={"airflow": [s.name for s in airflow], "monitoring": [s.name for s in monitoring]})


def cluster():
    """ZooKeeper, 3 Kafka brokers, 3 Cassandra nodes and a registry, like ccm: each member on its own
    loopback address with the standard ports. 127.0.0.2-4, not 127.0.0.1-3: the default bed keeps
    127.0.0.1 and both run side by side (see README.md). Replicated like a production cluster:
    RF 3 and min.insync.replicas 2 for every topic, the group offsets and the transaction log."""
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    zookeeper = ZooKeeper(name="zookeeper-c", host=hosts[0], overrides={"clientPortAddress": hosts[0]})
    brokers, nodes = [], []
    for i, host in enumerate(hosts, 1):
        brokers.append(ClusterKafka(
            brokers, name="kafka-%d" % i, host=host, deps=["zookeeper-c"], zookeeper=zookeeper, broker_id=i,
            heap="384m", overrides={
                "broker.id": i, "zookeeper.connect": zookeeper.address(),
                "listeners": "PLAINTEXT://%s:9092" % host, "advertised.listeners": "PLAINTEXT://%s:9092" % host,
                "default.replication.factor": 3, "min.insync.replicas": 2,
                "offsets.topic.replication.factor": 3,
                "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2,
                # a broker back from a fault leads its partitions again within seconds (default:
                # 5 min, and only once 10 % of its partitions are led elsewhere: after many test
                # topics, one partition of __consumer_offsets never is), so each test starts from
                # balanced leaders, the group coordinator the blackhole test cuts included
                "leader.imbalance.check.interval.seconds": 10, "leader.imbalance.per.broker.percentage": 0}))
        # One after another, each joining the ring the previous ones form (seed: the first). Like
        # ccm's populate: balanced initial tokens and no bootstrap (nothing to stream in a new
        # cluster). The ring delay bounds the gossip shadow round at start: the default bed's
        # 100 ms makes a restarting node give up ("Unable to gossip with any peers") when the
        # seed is slow to answer; without bootstrap nothing sleeps for it, so 10 s costs nothing.
        # The default bed's superuser setup delay of 0 makes the role manager retry in a busy
        # loop while any node is down (half a gigabyte of "some nodes were not ready" per
        # cluster run); the bed's AllowAllAuthenticator never needs that role anyway.
        nodes.append(ClusterCassandra(
            nodes, name="cassandra-%d" % i, host=host, deps=["cassandra-%d" % (i - 1)] if i > 1 else [],
            heap="512m", overrides={
                "cluster_name": "'stack-cluster'", "listen_address": host, "rpc_address": host,
                "seeds": "%s:7000" % hosts[0], "auto_bootstrap": "false",
                "initial_token": -2 ** 63 + (i - 1) * (2 ** 64 // len(hosts))},
            properties={"cassandra.ring_delay_ms": 10000, "cassandra.superuser_setup_delay_ms": 10000}))
    registry = Registry(name="registry-c", host=hosts[0])
    members = [zookeeper] + brokers + [registry] + nodes
    # Its own Prometheus (with the repository's rules, no Alertmanager: the tests read the alerts
    # from its API) watching every member, so that a member's fault fires its alert on this bed.
    node_exporter = NodeExporter(name="node-exporter-c", host=hosts[0])
    prometheus = Prometheus(name="prometheus-c", host=hosts[0], deps=["node-exporter-c"],
                            watched=members + [node_exporter])
    members += [node_exporter, prometheus]
    return Topology("cluster", members, up=[m.name for m in members], groups={})


def secure():
    """ZooKeeper, Kafka (SASL_SSL, SCRAM), the registry behind a TLS + basic-auth proxy (nginx) and Cassandra
    (PasswordAuthenticator, client TLS) on 127.0.0.5 with the default ports: beside the default bed, whose
    127.0.0.1 ports stay free (see README.md). Certificates and passwords are made at the first start."""
    from services import secure as s
    zookeeper = s.SecureZooKeeper()
    registry = s.InternalRegistry()
    members = [zookeeper, s.SecureKafka(zookeeper=zookeeper), registry, s.RegistryProxy(upstream=registry),
               s.SecureCassandra()]
    return Topology("secure", members, up=[m.name for m in members], groups={})


TOPOLOGIES = {"default": default, "cluster": cluster, "secure": secure}


def load(argv=()):
    """The bed: `--<topology>` among the arguments (removed from them), else STACK_TOPOLOGY, else
    `default`; a service name that only another bed has (`tests/stack stop kafka-2`) picks that bed.
    Returns (topology, the remaining arguments)."""
    args = [a for a in argv if a[2:] not in TOPOLOGIES or not a.startswith("--")]
    flags = [a[2:] for a in argv if a.startswith("--") and a[2:] in TOPOLOGIES]
    name = flags[-1] if flags else (os.environ.get("STACK_TOPOLOGY") or None)   # empty = unset
    if name is None:
        names = [a for a in args if not a.startswith("-")]
        owners = [t for t in TOPOLOGIES if t != "default" and any(n in TOPOLOGIES[t]().names() for n in names[1:])]
        name = owners[0] if len(owners) == 1 and not any(n in default().names() for n in names[1:]) else "default"
    if name not in TOPOLOGIES:
        raise StackError("STACK_TOPOLOGY=%s: one of %s" % (name, " ".join(TOPOLOGIES)))
    return TOPOLOGIES[name](), args
