"""Rendering a shared config template with some keys replaced: a bed that differs from the
default one in a few settings (another address, broker id, replication) keeps following the
shared file for everything else, instead of carrying a copy of it."""
import re

import plumbing


def properties(text, overrides):
    """`key=value` files (Kafka, ZooKeeper): each key of overrides replaces its line, or is
    appended when the template lacks it."""
    left = dict(overrides)
    out = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip()
        if not line.lstrip().startswith("#") and "=" in line and key in left:
            out.append("%s=%s" % (key, left.pop(key)))
        else:
            out.append(line)
    out += ["%s=%s" % kv for kv in left.items()]
    return "\n".join(out) + "\n"


def yaml_top_level(text, overrides):
    """cassandra.yaml: top-level scalar keys (`key: value` at column 0) are replaced; the special
    key `seeds` replaces the value of the seed provider's `- seeds: "..."` line."""
    left = dict(overrides)
    out = []
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+):(\s.*)?$", line)
        s = re.match(r"^(\s*-\s*seeds:\s*).*$", line)
        if m and m.group(1) in left:
            out.append("%s: %s" % (m.group(1), left.pop(m.group(1))))
        elif s and "seeds" in left:
            out.append('%s"%s"' % (s.group(1), left.pop("seeds")))
        else:
            out.append(line)
    if "seeds" in left:
        raise plumbing.StackError("cassandra.yaml has no `- seeds:` line to override")
    out += ["%s: %s" % kv for kv in left.items()]
    return "\n".join(out) + "\n"


def render(src_rel, dst_name, overrides, kind, **subst):
    """plumbing.render, then the overrides (kind: properties or yaml_top_level)."""
    dst = plumbing.render(src_rel, dst_name, **subst)
    with open(dst) as f:
        text = f.read()
    plumbing.write(dst, {"properties": properties, "yaml": yaml_top_level}[kind](text, overrides))
    return dst
