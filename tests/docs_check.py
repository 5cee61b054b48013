#!/usr/bin/env python3
"""Static checks of README.md and docs/: links resolve, no page is orphaned, shell blocks are honest,
every error message of the code has its row in docs/troubleshooting.md.

  python3 tests/docs_check.py

Checks, one result line each, then `docs: N passed, M failed` (exit 1 if any failed):
  links    every relative link of README.md and docs/**/*.md (`[..](path)`, `[..](path#anchor)`,
           `(#anchor)`, `[ref]: path`, `<img src>`) names an existing file; an anchor into a
           markdown file names one of its headings (GitHub's slugs: lowercase, punctuation but `-`
           and `_` dropped, spaces -> `-`, `-1`, `-2` for repeated headings)
  orphans  every file under docs/ is reachable from README.md through those links
  blocks   every ```sh / ```bash / ```console block has, on the line right before its fence,
           <!-- compose-only -->      it needs Docker Compose or a cluster of one's own, or
           <!-- tested-by: PATH -->   PATH (a file of the repository) runs it: the program of each
                                      command line (first word after VAR=value prefixes) must
                                      appear in that file, or
           <!-- by-hand: REASON -->   no test runs it, and REASON says why (benchmarks print figures,
                                      not pass/fail); each one is listed, so none hides
  length   README.md stays a landing page: at most 200 lines
  errors   docs/troubleshooting.md maps every message a user sees to a fix, both ways:
           - rows: in its tables, the code spans of a row's first cell are messages; each, its
             lead-in dropped (`error: `, `stack: error: `, …: what a program prints before it), is
             cut at `…` (what varies) and at `: ` (where a message meets its cause), and each
             piece (spaces and .,;:()'"` trimmed off its ends) must be inside one string literal
             of the code below: a row cannot outlive its message;
           - sites: every message of the code must match a row (of this page, or of
             docs/airflow.md's tables, which map the DAG's await_cassandra messages). A site is, in
             the non-test code of crates/{common,consumer,producer}/src, the first string literal
             holding a space in the arguments of `bail!(`, `anyhow!(`, `.context(`,
             `.with_context(`, `Fault::fatal(`, `Fault::retry(`, `Fault::new(`, `Attempt::Fatal(`,
             `#[error(`, and every `format!(` string with 4 words or more outside `{}` (messages
             built apart, then raised); in tests/stack and tests/stack.d/**/*.py, the string of
             every `StackError(...)`; in dags/*.py, of every `...Error(...)`. Its head, from its
             first word up to the first value (`{...}`, `%s`) after its 8th word or its end, a
             value in it matching any text (`…` included), must be found in a row. ALLOWED lists,
             each with its reason, the sites that are no user's error line (a summary, an HTTP
             header, a dead letter's reason); an entry that matches no site fails too

Python 3 standard library only.
"""
import ast
import os
import re
import shlex
import sys
import urllib.parse

sys.dont_write_bytecode = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = "README.md"
DOCS = "docs"
README_MAX_LINES = 200

SHELL_LANGS = {"sh", "bash", "shell", "console"}
COMPOSE_ONLY = re.compile(r"^<!--\s*compose-only\s*-->$")
TESTED_BY = re.compile(r"^<!--\s*tested-by:\s*(\S+)\s*-->$")
BY_HAND = re.compile(r"^<!--\s*by-hand:\s*(\S.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"""<a\s[^>]*\b(?:name|id)=["']([^"']+)["']""")
# Link text may wrap onto the next line, so these run over a whole page, not line by line.
INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
IMG_SRC = re.compile(r"""<img\s[^>]*\bsrc=["']([^"']+)["']""")
# A code span does not cross a blank line; its text is not a link.
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Binaries are named by cargo's output path (target/debug/x, target/release/x); tests name x.
CARGO_OUTPUT = re.compile(r"^(?:\./)?target/[^/]+/([^/]+)$")


class Page:
    """A markdown file split into what the checks need: prose, fenced blocks, headings."""

    def __init__(self, rel):
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            self.lines = f.read().split("\n")
        self.blocks = []      # (line number of the fence, info string, [(line number, text)])
        prose = []
        fence = None
        for n, line in enumerate(self.lines, 1):
            m = FENCE.match(line)
            if fence is None:
                if m:
                    fence = (m.group(2)[0], len(m.group(2)))
                    self.blocks.append((n, m.group(3).lower(), []))
                    prose.append("")
                else:
                    prose.append(line)
            else:
                if m and m.group(2)[0] == fence[0] and len(m.group(2)) >= fence[1] \
                        and not line[m.end(2):].strip():
                    fence = None
                else:
                    self.blocks[-1][2].append((n, line))
                prose.append("")
        # Same length, same newlines: match offsets still give line numbers.
        self.prose = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), "\n".join(prose))
        self.anchors = set()
        seen = {}
        for line in prose:
            h = HEADING.match(line)
            if h:
                s = slug(h.group(1))
                self.anchors.add(s if s not in seen else "%s-%d" % (s, seen[s]))
                seen[s] = seen.get(s, 0) + 1
            self.anchors.update(HTML_ID.findall(line))

    def links(self):
        """(line number, target) of every link of the page, in order."""
        found = []
        for pattern in (INLINE_LINK, REFERENCE_LINK, IMG_SRC):
            for m in pattern.finditer(self.prose):
                found.append((self.prose.count("\n", 0, m.start(1)) + 1, m.group(1)))
        return sorted(found)


def slug(heading):
    """The anchor GitHub gives a heading."""
    # Slugs come from the rendered text: a link's text, no tags, no markup characters.
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def pages():
    rels = [README]
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, DOCS)):
        dirnames.sort()
        rels += [os.path.relpath(os.path.join(dirpath, f), ROOT) for f in sorted(filenames) if f.endswith(".md")]
    return rels


_cache = {}


def page(rel):
    if rel not in _cache:
        _cache[rel] = Page(rel)
    return _cache[rel]


def resolve(source, target):
    """(repository-relative path, anchor) of a relative link; None for an external one."""
    if EXTERNAL.match(target):
        return None
    path, _, anchor = target.partition("#")
    path = urllib.parse.unquote(path)
    if not path:
        return source, anchor
    base = ROOT if path.startswith("/") else os.path.dirname(os.path.join(ROOT, source))
    return os.path.relpath(os.path.normpath(os.path.join(base, path.lstrip("/"))), ROOT), anchor


def check_links(rels):
    problems, count, anchored = [], 0, 0
    for rel in rels:
        for n, target in page(rel).links():
            resolved = resolve(rel, target)
            if resolved is None:
                continue
            count += 1
            path, anchor = resolved
            where = "%s:%d: link `%s`" % (rel, n, target)
            if path.startswith(".."):
                problems.append("%s leaves the repository: link inside it" % where)
                continue
            if not os.path.exists(os.path.join(ROOT, path)):
                problems.append("%s: %s does not exist: fix the path, or write the page" % (where, path))
                continue
            if anchor and path.endswith(".md"):
                anchored += 1
                if anchor not in page(path).anchors:
                    problems.append("%s: %s has no heading with the anchor #%s: link one of its headings "
                                    "(%s)" % (where, path, anchor, ", ".join(sorted(page(path).anchors)) or "none"))
    return problems, "%d relative links in %d pages, %d with an anchor into a page" % (count, len(rels), anchored)


def check_orphans(rels):
    reached, todo = {README}, [README]
    while todo:
        rel = todo.pop()
        for _, target in page(rel).links():
            resolved = resolve(rel, target)
            if resolved is None or resolved[0] in reached or not os.path.isfile(os.path.join(ROOT, resolved[0])):
                continue
            reached.add(resolved[0])
            if resolved[0] in rels:
                todo.append(resolved[0])
    problems, count = [], 0
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, DOCS)):
        dirnames.sort()
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            count += 1
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
            if rel not in reached:
                problems.append("%s: no link reaches it from %s: link it from a page that is reached, or "
                                "delete it" % (rel, README))
    return problems, "all %d files under %s/ reachable from %s" % (count, DOCS, README)


def commands(lines, console):
    """(line number, program) of each command line of a shell block."""
    continued = False
    for n, line in lines:
        text = line.strip()
        if console:
            # A console block shows `$ command` lines between their output.
            if not continued and not text.startswith("$ "):
                continue
            text = text[2:] if not continued else text
        was_continued, continued = continued, text.endswith("\\")
        if was_continued or not text or text.startswith("#"):
            continue
        try:
            words = shlex.split(text, comments=True)
        except ValueError:  # an unclosed quote that a later line closes
            words = text.split()
        program = next((w for w in words if not ASSIGNMENT.match(w)), None)
        if program:
            yield n, program


def check_blocks(rels):
    problems, tally, by_hand = [], {"compose-only": 0, "tested-by": 0}, []
    for rel in rels:
        p = page(rel)
        for fence_line, lang, lines in p.blocks:
            if lang not in SHELL_LANGS:
                continue
            marker = p.lines[fence_line - 2].strip() if fence_line > 1 else ""
            where = "%s:%d: ```%s block" % (rel, fence_line, lang)
            if COMPOSE_ONLY.match(marker):
                tally["compose-only"] += 1
                continue
            hand = BY_HAND.match(marker)
            if hand:
                by_hand.append("%s:%d (%s)" % (rel, fence_line, hand.group(1)))
                continue
            m = TESTED_BY.match(marker)
            if not m:
                problems.append("%s has no marker: put <!-- tested-by: PATH --> (the test that runs it) or "
                                "<!-- compose-only --> (it needs Docker Compose) on the line before the fence"
                                % where)
                continue
            tested_by = m.group(1)
            if not os.path.isfile(os.path.join(ROOT, tested_by)):
                problems.append("%s: tested-by %s: no such file in the repository" % (where, tested_by))
                continue
            tally["tested-by"] += 1
            with open(os.path.join(ROOT, tested_by), encoding="utf-8", errors="replace") as f:
                runner = f.read()
            for n, program in commands(lines, lang == "console"):
                cargo_output = CARGO_OUTPUT.match(program)
                name = cargo_output.group(1) if cargo_output else program
                if name not in runner:
                    problems.append("%s:%d: `%s` does not appear in %s: name the test that runs this command, "
                                    "or mark the block compose-only if only Compose can run it"
                                    % (rel, n, program, tested_by))
    total = tally["compose-only"] + tally["tested-by"] + len(by_hand)
    return problems, "%d shell blocks: %d tested-by, %d compose-only, %d by hand%s" % (
        total, tally["tested-by"], tally["compose-only"], len(by_hand),
        "".join("\n       by hand: " + b for b in by_hand))


def check_length():
    n = len(page(README).lines) - (1 if page(README).lines[-1] == "" else 0)
    if n > README_MAX_LINES:
        return ["%s has %d lines, more than %d: move a section into a page under %s/ and link it"
                % (README, n, README_MAX_LINES, DOCS)], ""
    return [], "%s: %d lines (at most %d)" % (README, n, README_MAX_LINES)


# ----------------------------------------------------------------------------------------------- errors
TROUBLESHOOTING = "docs/troubleshooting.md"
DAG_MESSAGES = "docs/airflow.md"        # its table maps the await_cassandra task's `error:` lines
RUST_MESSAGES = ["crates/common/src", "crates/consumer/src", "crates/producer/src"]
# Looked up for rows only: a message the producer passes on from the domain crate (a page
# whose every record was rejected) may be quoted, but the crate raises nothing itself.
RUST_QUOTED = RUST_MESSAGES + ["crates/domain/src"]
PYTHON_MESSAGES = ["tests/stack", "tests/stack.d", "dags"]
# What the programs print before a message, written in rows as the user sees it: `cli::exit`
# (`error: `), `consumer --healthcheck` (`unhealthy: `), tests/stack's main (`stack: error: `), a
# service it could not start (`stack: FAILED <service>: `) and the probe error under it
# (`last probe error: StackError: `).
LEAD_INS = ("error: ", "unhealthy: ", "stack: error: ", "stack: FAILED …: ", "last probe error: StackError: ")
HEAD_WORDS = 8
RUST_OPENER = re.compile(r"\b(?:bail!|anyhow!|format!)\s*\(|\.(?:with_)?context\s*\(|"
                         r"\bFault::(?:fatal|retry|new)\s*\(|\bAttempt::Fatal\s*\(|#\[error\s*\(")
RUST_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{[^{}]*\}")
PYTHON_PLACEHOLDER = re.compile(r"%%|%[-#0 +]*\d*(?:\.\d+)?[sdrfxi]")
WORD = re.compile(r"\w+")
TRIM = " \t\n.,;:()'\"`"
# Sites that are no user's error line, by file and the start of their head, each with why.
ALLOWED = [
    ("crates/consumer/src/sink.rs", "writing a batch of … rows", "a batch's failure: retried while it "
     "is transient (a retry warning), and when refused its rows go on one by one, so the error a user "
     "sees is a row's"),
    ("crates/common/src/generated.rs", "differs from what the code defines", "a unit test's "
     "failure (a generated part of the docs out of date), seen by whoever changes a flag or a metric"),
    ("crates/consumer/src/http.rs", "HTTP/1.1", "the /healthz and /metrics answer's HTTP header"),
    ("crates/consumer/src/main.rs", "users written to Cassandra in", "await-run's summary line: success"),
    ("crates/consumer/src/pipeline/mod.rs", "summary", "the `summary:` line under the error line, "
     "not the error"),
    ("crates/producer/src/run.rs", "summary", "the `summary:` line under the error line, not the error"),
    ("crates/consumer/src/decode.rs", "not Confluent wire format", "a dead letter's reason (its "
     "dlq.error header: schema-and-dead-letters.md), the run goes on"),
    ("crates/consumer/src/decode.rs", "the value does not decode as", "a dead letter's reason"),
    ("crates/consumer/src/decode.rs", "schema id … is not in the registry at … asked", "a dead letter's reason"),
    ("crates/consumer/src/decode.rs", "schema id … is not in the registry at … yet", "a record waiting "
     "for its schema (retried for CONSUMER_UNKNOWN_SCHEMA_RETRY, then dead-lettered): nothing to do"),
    ("crates/consumer/src/pipeline/writer.rs", "Cassandra refuses this row", "a dead letter's reason"),
    ("crates/consumer/src/pipeline/rebalance.rs", "offset commit failed", "a warning: retried with the "
     "next commit, nothing to do"),
    ("crates/producer/src/publish.rs", "flushing the Kafka producer failed", "logged, not raised: the "
     "run goes on to count the records lost, and fails with `record(s) not published`"),
    ("crates/producer/src/source.rs", "HTTP 429", "a retry's reason: shown after `last:` in the Random "
     "User API's `failed … times` row"),
    ("crates/producer/src/source.rs", "request to … timed out", "a retry's reason (`last:`)"),
    ("crates/producer/src/source.rs", "could not connect to", "a retry's reason (`last:`)"),
    ("crates/common/src/cassandra/tls.rs", "TLS protocol versions", "rustls refuses only a build without "
     "TLS 1.2 and 1.3: no setting changes it"),
    ("crates/common/src/registry.rs", "building the schema registry HTTP client", "reqwest fails only "
     "when its TLS backend cannot start: no setting changes it"),
    ("crates/producer/src/source.rs", "building the HTTP client", "as for the registry's HTTP client"),
    ("crates/producer/src/publish.rs", "flush task", "the flush thread panicked: a bug, not a setting"),
    ("crates/producer/src/source.rs", "parsing the page panicked", "a bug, not a setting"),
]


def rust_literals(text):
    """(offset, decoded text) of each string literal, and the code with literals and comments
    blanked (same length, same newlines): what a literal says is never taken for code."""
    found, code, i, n = [], list(text), 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if code[k] != "\n":
                code[k] = " "
    while i < n:
        ident = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        if text.startswith("//", i) or text.startswith("/*", i):
            end = text.find("\n", i) if text[i + 1] == "/" else text.find("*/", i) + 2
            end = n if end < 2 else end
            blank(i, end)
            i = end
            continue
        raw = None if ident else re.compile(r'b?r(#*)"').match(text, i)
        if raw:
            end = text.find('"' + raw.group(1), raw.end())
            end = n if end < 0 else end
            found.append((i, text[raw.end():end]))
            blank(i, end + 1 + len(raw.group(1)))
            i = end + 1 + len(raw.group(1))
            continue
        if text[i] == '"' or (not ident and text.startswith('b"', i)):
            j, out = text.index('"', i) + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    if text[j + 1] == "\n":   # a continued line: its leading spaces are not text
                        j += 2
                        while j < n and text[j] in " \t\n":
                            j += 1
                        continue
                    out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(text[j + 1], text[j + 1]))
                    j += 2
                    continue
                out.append(text[j])
                j += 1
            found.append((i, "".join(out)))
            blank(i, j + 1)
            i = j + 1
            continue
        if text[i] == "'":   # a char literal ('"' must not open a string); else a lifetime
            char = re.compile(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'").match(text, i)
            if char:
                blank(i, char.end())
                i = char.end()
                continue
        i += 1
    return found, "".join(code)


def rust_sources(dirs):
    for d in dirs:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, d)):
            dirnames.sort()
            for f in sorted(filenames):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                if f.endswith(".rs") and f != "tests.rs":
                    with open(os.path.join(ROOT, rel), encoding="utf-8") as fh:
                        text = fh.read()
                    # A module's own tests come last (`#[cfg(test)] mod tests {`): no one's error.
                    m = re.search(r"^\s*#\[cfg\(test\)\]\s*mod \w+\s*\{", text, re.M)
                    yield rel, text[:m.start()] if m else text


def python_sources(paths):
    for p in paths:
        full = os.path.join(ROOT, p)
        files = [full] if os.path.isfile(full) else sorted(
            os.path.join(dp, f) for dp, _, fs in os.walk(full) for f in fs if f.endswith(".py"))
        for f in files:
            with open(f, encoding="utf-8") as fh:
                yield os.path.relpath(f, ROOT), ast.parse(fh.read(), f)


def pieces(fmt, placeholder):
    """The fixed text of a format string, split where a value goes in (`{{` is `{`, `%%` is `%`)."""
    parts, current, last = [], "", 0
    for m in placeholder.finditer(fmt):
        current += fmt[last:m.start()]
        if m.group(0) in ("{{", "}}", "%%"):
            current += m.group(0)[0]
        else:
            parts.append(current)
            current = ""
        last = m.end()
    return parts + [current + fmt[last:]]


def head(parts):
    """From the first word to the end of the fixed text that holds the HEAD_WORDS-th (up to the
    next value, so that `did not answer:` and `did not answer within` differ), as the pieces it
    spans; None if there is no word."""
    out, words = [], 0
    for p in parts:
        found = list(WORD.finditer(p))
        if not out:
            if not found:
                continue
            p = p[found[0].start():]
            found = list(WORD.finditer(p))
        if words + len(found) >= HEAD_WORDS:
            return out + [p.rstrip()]
        words += len(found)
        out.append(p)
    return out or None


def head_text(h):
    return " … ".join(p.strip() for p in h)


def head_pattern(h):
    # A value (`{...}`, `%s`) matches any text, the row's `…` included; spacing is free.
    return re.compile(".*?".join(r"\s*".join(re.escape(w) for w in p.split()) for p in h), re.S)


def message_sites():
    """(file, line, literal, head) of every message site (the rule in the docstring)."""
    sites = []
    for rel, text in rust_sources(RUST_MESSAGES):
        literals, code = rust_literals(text)
        seen = set()
        for m in RUST_OPENER.finditer(code):
            depth, j = 1, m.end()
            while j < len(code) and depth:
                depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(code[j], 0)
                j += 1
            inside = [lit for lit in literals if m.end() <= lit[0] < j]
            if m.group(0).startswith("format!"):
                inside = inside[:1]
                if not inside or len(WORD.findall("".join(pieces(inside[0][1], RUST_PLACEHOLDER)))) < 4:
                    continue
            lit = next((lit for lit in inside if " " in lit[1]), None)
            h = lit and head(pieces(lit[1], RUST_PLACEHOLDER))
            if h and lit[0] not in seen:   # a format! inside a bail! is one site
                seen.add(lit[0])
                sites.append((rel, text.count("\n", 0, lit[0]) + 1, lit[1], h))
    for rel, tree in python_sources(PYTHON_MESSAGES):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
            if name != "StackError" and not (rel.startswith("dags/") and name.endswith("Error")):
                continue
            arg = node.args[0]
            while isinstance(arg, ast.BinOp):   # "..." % values, "..." + text
                arg = arg.left
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                h = head(pieces(arg.value, PYTHON_PLACEHOLDER))
                if h:
                    sites.append((rel, node.lineno, arg.value, h))
    return sites


def code_literals():
    """Every string literal of the code, as written and with a value's place (`{...}`, `%s`)
    written ` … ` (a literal is a format string or not: `.context("…")` is not)."""
    def shown(literal, placeholder):
        return " ".join(literal.split()) + "\n" + " ".join(" … ".join(pieces(literal, placeholder)).split())
    texts = []
    for _, text in rust_sources(RUST_QUOTED):
        texts += [shown(lit, RUST_PLACEHOLDER) for _, lit in rust_literals(text)[0]]
    for _, tree in python_sources(PYTHON_MESSAGES):
        texts += [shown(n.value, PYTHON_PLACEHOLDER) for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return texts


def table_messages(rel):
    """(line, message) of each code span in the first cell of each table row of a page."""
    found = []
    for n, line in enumerate(page(rel).lines, 1):
        cells = line.split(" | ")
        if line.startswith("|") and not re.match(r"^\|[\s|:-]*$", line):
            # A message holding a backtick is written ``like `this` ``.
            for m in CODE_SPAN.finditer(cells[0]):
                found.append((n, " ".join(m.group(2).split())))
    return found


def check_errors():
    if not os.path.isfile(os.path.join(ROOT, TROUBLESHOOTING)):
        return ["%s is missing: write it (the messages of the code and their fixes)" % TROUBLESHOOTING], ""
    problems = []
    rows = table_messages(TROUBLESHOOTING)
    literals = code_literals()
    for n, message in rows:
        text = message
        for lead in LEAD_INS:
            if text.startswith(lead):
                text = text[len(lead):]
        # Cut where a value goes (`…`), and where anyhow joins a message to its cause (`: `).
        for piece in re.split(r"…|: ", text):
            piece = piece.strip(TRIM)
            if WORD.search(piece) and not any(piece in lit for lit in literals):
                problems.append("%s:%d: `%s` is in no string of the code (crates, tests/stack, dags): quote "
                                "the message as the code writes it, `…` where a value goes, or drop the "
                                "row if the message is gone" % (TROUBLESHOOTING, n, piece))
    mapped = rows + table_messages(DAG_MESSAGES)
    sites = message_sites()
    used = set()
    for rel, line, literal, h in sites:
        shown = " … ".join(pieces(literal, RUST_PLACEHOLDER if rel.endswith(".rs") else PYTHON_PLACEHOLDER))
        allowed = [a for a in ALLOWED if a[0] == rel and head_pattern(a[1].split("…")).search(shown)]
        if allowed:
            used.add(allowed[0])
            continue
        if not any(head_pattern(h).search(message) for _, message in mapped):
            problems.append("%s:%d: `%s` has no row: add one to %s quoting `%s` (and what to do), or "
                            "add it to ALLOWED in tests/docs_check.py with the reason no user sees it"
                            % (rel, line, " ".join(literal.split())[:90], TROUBLESHOOTING, head_text(h)))
    for a in ALLOWED:
        if a not in used:
            problems.append("tests/docs_check.py: ALLOWED names `%s` in %s, which no message of the code "
                            "matches any more: remove it" % (a[1], a[0]))
    return problems, "%d messages in the code (%d no user's error: ALLOWED), each with a row; %d rows of %s " \
        "quote %d messages, each still in the code" % (len(sites), len(used), len(set(n for n, _ in rows)),
                                                       TROUBLESHOOTING, len(rows))


def main():
    rels = pages()
    results = []
    for name, (problems, info) in (("links", check_links(rels)), ("orphans", check_orphans(rels)),
                                   ("blocks", check_blocks(rels)), ("length", check_length()),
                                   ("errors", check_errors())):
        results.append(not problems)
        if problems:
            print("FAIL %s" % name)
            for p in problems:
                print("     - %s" % p)
        else:
            print("ok   %s: %s" % (name, info))
    failed = results.count(False)
    print("docs: %d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
