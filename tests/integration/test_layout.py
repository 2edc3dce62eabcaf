#!/usr/bin/env python3
"""The include rule of docs/architecture.md ("The tree"), checked over every #include line.

The table in that section names each source folder and the folders it may include; this test
reads the table from the document itself, so the rule and its check cannot drift apart. It
fails when a file includes a project header from a folder its own folder may not include, when
a source file lies in a folder the table does not name, or when the table names a folder that
does not exist. Generated headers (build/gen: version.h, sunspec_models.h, proto/) and system
headers are not project folders and are always allowed.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DOC = "docs/architecture.md"
SOURCE_TOPS = ("common", "gateway", "sim", "reports", "headend")


def read_rule():
    text = open(os.path.join(ROOT, DOC), encoding="utf-8").read()
    m = re.search(r"^## The tree\n(.*?)(?=^## )", text, re.S | re.M)
    if not m:
        sys.exit(f"{DOC}: no section '## The tree'")
    rule = {}
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        folder = cells[0].strip("`")
        allowed = re.findall(r"`([^`]+)`", cells[2])
        rule[folder] = allowed
    if not rule:
        sys.exit(f"{DOC}: the tree table has no rows")
    return rule


def folder_of(path, rule):
    """The longest folder of the table that holds path (a file directly in it)."""
    d = os.path.dirname(path) + "/"
    return d if d in rule else None


def allowed(target_dir, allow):
    for a in allow:
        if a.endswith("**"):
            if target_dir.startswith(a[:-2]):
                return True
        elif target_dir == a:
            return True
    return False


# Violations being removed, each "file: included header"; an entry that no longer occurs is an
# error too, so this set can only shrink. Empty: the runner no longer includes reports/ (issue
# "house": reports/measure.c observes the run instead).
KNOWN = set()


def main():
    os.chdir(ROOT)
    rule = read_rule()
    errors = []
    for folder in rule:
        if not os.path.isdir(folder):
            errors.append(f"{DOC}: the table names {folder}, which does not exist")
    seen = set()
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    nfiles = nincl = 0
    for top in SOURCE_TOPS:
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if not n.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, n)
                own = folder_of(path, rule)
                if own is None:
                    errors.append(f"{path}: its folder {os.path.dirname(path)}/ is not in the "
                                  f"table of {DOC} (add it, with what it may include)")
                    continue
                nfiles += 1
                for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
                    m = inc.match(line)
                    if not m:
                        continue
                    target = m.group(1)
                    if not target.startswith(tuple(t + "/" for t in SOURCE_TOPS)):
                        continue  # generated headers (version.h, proto/...), same-folder names
                    nincl += 1
                    tdir = os.path.dirname(target) + "/"
                    if tdir not in rule:
                        errors.append(f"{path}:{lineno}: includes {target}, in a folder the "
                                      f"table does not name")
                    elif not allowed(tdir, rule[own]):
                        if f"{path}: {target}" in KNOWN:
                            seen.add(f"{path}: {target}")
                            continue
                        errors.append(f"{path}:{lineno}: includes {target}, but {own} may "
                                      f"include only {', '.join(rule[own])} ({DOC})")
    # Every module is named in the module tables ("`name`" somewhere in the document; `strat_*`
    # names the strategies): a new file without its row fails here.
    doc = open(os.path.join(ROOT, DOC), encoding="utf-8").read()
    named = set(re.findall(r"`([a-z_0-9*]+)`", doc))
    for top in SOURCE_TOPS:
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if not n.endswith((".c", ".h")):
                    continue
                mod = n[:-2]
                if mod in named or (mod.startswith("strat_") and "strat_*" in named
                                    and mod != "strat_util"):
                    continue
                errors.append(f"{os.path.join(dirpath, n)}: the module `{mod}` is not named in "
                              f"the module tables of {DOC}")
    for k in sorted(KNOWN - seen):
        errors.append(f"{k}: listed as a known violation but no longer occurs: remove it")
    for e in errors:
        print(e)
    print(f"layout: {nfiles} files, {nincl} project includes, {len(rule)} folders, "
          f"{len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
