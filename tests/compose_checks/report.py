"""The result lines: one per check, as it is recorded, and the list main() tallies."""

results = []  # (name, ok, message)


def record(name, problems, info=""):
    results.append((name, not problems, problems))
    if problems:
        print("FAIL %s" % name)
        for p in problems:
            print("     - %s" % p)
    else:
        print("ok   %s%s" % (name, (": " + info) if info else ""))
