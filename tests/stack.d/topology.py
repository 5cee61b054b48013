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
from services.kafka import Kafka
from services.postgres import Postgres
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
    (Postgres, api-server :8080, scheduler, dag-processor) on request (`up --airflow`)."""
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
    return Topology("default", [zookeeper, kafka, registry, cassandra] + airflow,
                    up=["zookeeper", "kafka", "registry", "cassandra"],
                    groups={"airflow": [s.name for s in airflow]})


TOPOLOGIES = {"default": default}


def load():
    name = os.environ.get("STACK_TOPOLOGY", "default")
    if name not in TOPOLOGIES:
        raise StackError("STACK_TOPOLOGY=%s: one of %s" % (name, " ".join(TOPOLOGIES)))
    return TOPOLOGIES[name]()
