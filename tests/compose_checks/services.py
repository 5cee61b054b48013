"""readiness and consumer-scale: how the services start, wait for one another and scale."""
from .model import consumer_services, env_of, services_of


def check_readiness(services):
    problems = []
    awaited_completion = set()
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append("service `%s`: depends_on is a list; give each dependency a condition" % name)
            continue
        for dep, spec in deps.items():
            cond = (spec or {}).get("condition")
            if cond not in ("service_healthy", "service_completed_successfully"):
                problems.append("service `%s`: depends_on %s has condition %r (want service_healthy "
                                "or service_completed_successfully)" % (name, dep, cond))
            if cond == "service_completed_successfully":
                awaited_completion.add(dep)
            if dep not in services:
                problems.append("service `%s`: depends_on unknown service %s" % (name, dep))
    for name, svc in services.items():
        restart_no = svc.get("restart") in (None, False, "no")
        if restart_no and name in awaited_completion:
            continue  # one-shot, awaited by a dependant: its "ready" is "exited 0"
        hc = svc.get("healthcheck") or {}
        if hc and not hc.get("disable") and hc.get("test"):
            continue
        if restart_no:
            problems.append("service `%s` has no healthcheck and, if it is one-shot, no service waits "
                            "for it with service_completed_successfully" % name)
        else:
            problems.append("service `%s` has no healthcheck" % name)
    return problems


def check_consumer_scale(m):
    problems = []
    consumers = consumer_services(services_of(m))
    if not consumers:
        return ["no consumer service found"]
    for name, svc in sorted(consumers.items()):
        if svc.get("container_name"):
            problems.append("service `%s` has container_name %r: a second replica cannot be created"
                            % (name, svc["container_name"]))
        if svc.get("hostname"):
            problems.append("service `%s` has a fixed hostname %r: every replica would share it"
                            % (name, svc["hostname"]))
        for port in svc.get("ports") or []:
            published = port.get("published") if isinstance(port, dict) else str(port).rsplit(":", 1)[0]
            if published not in (None, "", "0"):
                problems.append("service `%s` publishes host port %s: a second replica fails with "
                                "'port is already allocated' (publish no host port or an ephemeral one, "
                                "e.g. \"127.0.0.1::9400\")" % (name, published))
        addr = env_of(svc).get("CONSUMER_HTTP_ADDR", "0.0.0.0:9400")
        port = addr.rsplit(":", 1)[-1]
        exposed = {str(p).split("/")[0] for p in svc.get("expose") or []}
        if port not in exposed:
            problems.append("service `%s`: its /metrics port %s (CONSUMER_HTTP_ADDR) is not in `expose`"
                            % (name, port))
    return problems
