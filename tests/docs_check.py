#!/usr/bin/env python3
"""Static checks of README.md and docs/: links resolve, no page is orphaned, shell blocks are honest.

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

Python 3 standard library only.
"""
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


def main():
    rels = pages()
    results = []
    for name, (problems, info) in (("links", check_links(rels)), ("orphans", check_orphans(rels)),
                                   ("blocks", check_blocks(rels)), ("length", check_length())):
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
