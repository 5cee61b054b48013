"""heap, memory, light-probes: the stack fits a laptop (explicit JVM heaps, a mem_limit on every
service within a budget, healthchecks that start no JVM)."""
import re

from .model import env_of, image_name, one_shots, services_of

GIB = 1024 ** 3
MEMORY_BUDGET = 6 * GIB       # what the long-running services' mem_limits may add up to
MONITORING_MEMORY_BUDGET = 7 * GIB   # the same with `--profile monitoring`
HEAP_SHARE = 0.75             # a JVM's heap leaves at least a quarter of its limit to the rest

# Heap variable of each JVM image (image name without registry and tag).
HEAP_VARS = {
    "confluentinc/cp-zookeeper": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-kafka": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-server": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-enterprise-kafka": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-kafka-connect": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-server-connect": ["KAFKA_HEAP_OPTS"],
    "confluentinc/cp-schema-registry": ["SCHEMA_REGISTRY_HEAP_OPTS"],
    "confluentinc/cp-enterprise-control-center": ["CONTROL_CENTER_HEAP_OPTS"],
    "confluentinc/cp-ksqldb-server": ["KSQL_HEAP_OPTS"],
    "cassandra": ["MAX_HEAP_SIZE", "HEAP_NEWSIZE"],
}
# Images that run a JVM but are missing above: a new one must be added with its heap variable.
JVM_HINT = re.compile(r"confluentinc/|kafka|zookeeper|cassandra|elasticsearch|opensearch|flink|spark|"
                      r"openjdk|temurin|eclipse-temurin|java", re.I)
# Commands that start a JVM (Kafka/Confluent CLI tools, Cassandra's nodetool, Confluent's cub).
JVM_CLI = re.compile(r"(?<![\w/-])(?:\S*/)?(kafka-[a-z-]+|zookeeper-[a-z-]+|schema-registry-[a-z-]+|"
                     r"nodetool|cub|java|jcmd|jps|jstat|ksql)(?![\w-])")


def mem_limit(svc):
    v = svc.get("mem_limit")
    if v is None:
        v = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}).get("memory")
    return to_bytes(v) if v is not None else None


def to_bytes(v):
    """512m, 1g, 1G, 536870912 -> bytes (Compose's and the JVM's size units)."""
    if isinstance(v, (int, float)):
        return int(v)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(v), re.I)
    if not m:
        return None
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def mib(n):
    return "%d MiB" % (n // (1024 * 1024))


def check_heap(m):
    problems = []
    for name, svc in sorted(services_of(m).items()):
        img = image_name(svc)
        env = env_of(svc)
        limit = mem_limit(svc)
        if img not in HEAP_VARS:
            if JVM_HINT.search(img):
                problems.append("service `%s`: image %s looks like a JVM whose heap variable this check "
                                "does not know: add it to HEAP_VARS" % (name, img))
            continue
        missing = [v for v in HEAP_VARS[img] if not env.get(v)]
        if missing:
            problems.append("service `%s` (%s) sets no %s: its JVM sizes its heap from the host's memory"
                            % (name, img, " / ".join(missing)))
            continue
        if img == "cassandra":
            heap = to_bytes(env["MAX_HEAP_SIZE"])
        else:
            xmx = re.findall(r"-Xmx(\d+[kKmMgG]?)", env[HEAP_VARS[img][0]])
            heap = to_bytes(xmx[-1]) if xmx else None
            if heap is None:
                problems.append("service `%s`: %s=%r has no -Xmx" % (name, HEAP_VARS[img][0], env[HEAP_VARS[img][0]]))
                continue
        if limit is None:
            continue  # reported by `memory`
        if heap is None or heap > HEAP_SHARE * limit:
            problems.append("service `%s`: heap %s is more than %d%% of its mem_limit %s (metaspace, threads, "
                            "off-heap buffers need the rest)" % (name, heap and mib(heap), HEAP_SHARE * 100, mib(limit)))
    return problems


def memory_table(m):
    services = services_of(m)
    once = one_shots(services)
    rows = [(n, mem_limit(s), n in once) for n, s in sorted(services.items())]
    return rows


def check_memory(m, budget=MEMORY_BUDGET):
    rows = memory_table(m)
    problems = ["service `%s` has no mem_limit" % n for n, lim, _ in rows if lim is None]
    total = sum(lim or 0 for _, lim, once in rows if not once)
    if total > budget:
        problems.append("the long-running services' mem_limits add up to %s, over the %s budget"
                        % (mib(total), mib(budget)))
    return problems


def memory_info(m, budget=MEMORY_BUDGET):
    rows = memory_table(m)
    total = sum(lim or 0 for _, lim, once in rows if not once)
    once = sum(lim or 0 for _, lim, o in rows if o)
    return "long-running %s of %s (%s), one-shots %s" % (
        mib(total), mib(budget),
        ", ".join("%s %s" % (n, mib(lim or 0)) for n, lim, o in rows if not o), mib(once))


def check_light_probes(m):
    problems = []
    for name, svc in sorted(services_of(m).items()):
        test = (svc.get("healthcheck") or {}).get("test") or []
        text = " ".join(test) if isinstance(test, list) else str(test)
        hit = JVM_CLI.search(text)
        if hit and "_HEAP_OPTS=" not in text:
            problems.append("service `%s`: healthcheck runs `%s`, a JVM (and inherits the service's heap "
                            "settings) on every probe; probe with bash /dev/tcp, curl or a small "
                            "*_HEAP_OPTS=-Xmx64m" % (name, hit.group(1)))
    return problems
