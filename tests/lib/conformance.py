#!/usr/bin/env python3
"""conformance.py: keeps tests/CONFORMANCE.md and common/ARCHITECTURE.md true to the tree.

    conformance.py [--root DIR] [--list FILE] [--extra FILE]...

Checks, over every text file of the tree (git ls-files, else a walk without build*/ and run/),
plus each --extra FILE as if it were in the tree:
  1. every requirement ID cited (PREFIX-NN; ranges PREFIX-NN..PREFIX-MM and lists
     PREFIX-NN/MM expanded) has one row in the list (tests/CONFORMANCE.md, or --list FILE);
  2. every row says how it is shown: a `tests/...` reference or "not tested";
     every referenced file exists, and the name after a colon exists in it (a C file:
     START_TEST(name); a script: that text);
  3. every design decision Dn cited is a "### Dn." heading of common/ARCHITECTURE.md;
  4. no file points to documents outside the repository (by name, or by a section of one).
Prints one line per problem ("FAIL: ...") and a summary; exits 1 when there is a problem.
"""
import argparse
import os
import re
import subprocess
import sys

PREFIXES = "ALG|CAB|CIR|EID|LW|OCSP|RO|STS|TPR|TSA|TSP"
ID_RE = re.compile(r"\b(%s)-(\d{2})((?:(?:\.\.|/)(?:(?:%s)-)?\d{2})*)" % (PREFIXES, PREFIXES))
D_RE = re.compile(r"\bD(\d{1,2})\b")
# built from parts so that this file does not match itself
OUTSIDE = ["../" + "shared", "/work/" + "shared", "DESIGN" + ".md", "STANDARDS" + ".md",
           "STYLE" + ".md", "(pre" + "amble)"]
# a part of one of those documents: its name, then a section sign, a section number (digit,
# dot, capital) or a quoted rule name
OUTSIDE_RE = re.compile(r"\b(?:STANDARDS|DESIGN|STYLE),? +(?:§|\"[A-Z]|\d\.[A-Z]\b)")
LIST = "tests/CONFORMANCE.md"
ARCH = "common/ARCHITECTURE.md"


def expand(m):
    prefix, first, rest = m.group(1), int(m.group(2)), m.group(3)
    ids = [(prefix, first)]
    for sep, other, n in re.findall(r"(\.\.|/)(?:([A-Z]+)-)?(\d{2})", rest):
        n = int(n)
        if other and other != prefix:  # "CIR-01/TPR-12": two IDs
            ids.append((other, n))
        elif sep == "..":
            ids.extend((prefix, k) for k in range(ids[-1][1] + 1, n + 1))
        else:
            ids.append((prefix, n))
    return ["%s-%02d" % i for i in ids]


def tree_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True,
                             check=True).stdout.split("\n")
        return [f for f in out if f and os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            rel = os.path.relpath(d, root)
            dirs[:] = [x for x in dirs if not (rel == "." and (x.startswith("build") or
                                                                x in ("run", ".git")))]
            files += [os.path.normpath(os.path.join(rel, n)) for n in names]
        return files


def read_text(path):
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--list", default=None)
    ap.add_argument("--extra", action="append", default=[])
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    list_path = a.list or os.path.join(root, LIST)
    problems = []

    texts = {}
    for f in tree_files(root):
        t = read_text(os.path.join(root, f))
        if t is not None:
            texts[f] = t
    for f in a.extra:
        texts[f] = read_text(f) or ""
    texts.pop(LIST, None)
    list_text = read_text(list_path) or ""
    arch_text = texts.get(ARCH, "")

    # the list
    rows = {}
    for ln, line in enumerate(list_text.split("\n"), 1):
        m = re.match(r"^\| (%s)-(\d{2}) \|(.*)\|\s*$" % PREFIXES, line)
        if not m:
            continue
        rid = "%s-%s" % (m.group(1), m.group(2))
        if rid in rows:
            problems.append("%s:%d: %s has a second row" % (LIST, ln, rid))
        rows[rid] = (ln, m.group(3))
    for rid, (ln, rest) in sorted(rows.items()):
        cells = [c.strip() for c in rest.split(" | ")]
        shown = cells[-1] if cells else ""
        if len(cells) < 3 or not cells[0] or not cells[1]:
            problems.append("%s:%d: %s needs a meaning, a source and its tests" % (LIST, ln, rid))
        refs = [r for r in re.findall(r"`([^`]+)`", shown) if r.startswith("tests/")]
        if not refs and "not tested" not in shown:
            problems.append("%s:%d: %s names no test (say \"not tested\" if so)" % (LIST, ln, rid))
        for ref in refs:
            path, _, name = ref.partition(":")
            full = os.path.join(root, path)
            if not os.path.isfile(full):
                problems.append("%s:%d: %s: no file %s" % (LIST, ln, rid, path))
                continue
            if not name:
                continue
            body = read_text(full) or ""
            if path.endswith(".c"):
                if "START_TEST(%s)" % name not in body:
                    problems.append("%s:%d: %s: no START_TEST(%s) in %s" % (LIST, ln, rid, name,
                                                                            path))
            elif name not in body:
                problems.append("%s:%d: %s: %s does not contain \"%s\"" % (LIST, ln, rid, path,
                                                                           name))

    # citations
    cited = {}
    for f, t in sorted(texts.items()):
        for ln, line in enumerate(t.split("\n"), 1):
            for m in ID_RE.finditer(line):
                for rid in expand(m):
                    cited.setdefault(rid, "%s:%d" % (f, ln))
    for rid, where in sorted(cited.items()):
        if rid not in rows:
            problems.append("%s cites %s, which has no row in %s" % (where, rid, LIST))

    # design decisions
    defined = set(re.findall(r"^### D(\d+)\.", arch_text, re.M))
    if not defined:
        problems.append("%s defines no decision (### Dn.)" % ARCH)
    for f, t in sorted(texts.items()):
        for ln, line in enumerate(t.split("\n"), 1):
            for m in D_RE.finditer(line):
                if m.group(1) not in defined:
                    problems.append("%s:%d cites D%s, not defined in %s" % (f, ln, m.group(1),
                                                                           ARCH))

    # nothing outside the repository
    for f, t in sorted(list(texts.items()) + [(LIST, list_text)]):
        for ln, line in enumerate(t.split("\n"), 1):
            for p in OUTSIDE:
                if p in line:
                    problems.append("%s:%d refers to %s, outside the repository" % (f, ln, p))
            m = OUTSIDE_RE.search(line)
            if m:
                problems.append("%s:%d refers to a part of a document outside the repository "
                                "(\"%s\")" % (f, ln, m.group(0)))

    for p in problems:
        print("FAIL: " + p)
    n_refs = sum(len(re.findall(r"`tests/[^`]+`", r[1])) for r in rows.values())
    print("conformance: %d IDs cited, %d rows, %d test references, %d decisions, %d problem(s)"
          % (len(cited), len(rows), n_refs, len(defined), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
