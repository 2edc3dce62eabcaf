#!/usr/bin/python3
"""Every Python module the tests import at run time comes from a Debian package that `make deps`
installs, or from one in the Depends/Pre-Depends closure of those packages (issue 16: Debian's
python3-pymodbus imports serial_asyncio, which is only a Recommends, and `make deps` installs
with --no-install-recommends, so a fresh machine failed where this one passed).

How: the imports of every Python file under tests/ (and of the Python heredocs in the shell
tests) and of the generated stubs in $BUILD/gen/py are read with `ast`; a child interpreter
imports each module that is not a project file, and reports the file of every module that the
imports added to sys.modules; `dpkg -S` names the package of each file. DEB_PKGS is read from
the Makefile (`make -pn deps`), the closure is computed from dpkg's status of the installed
packages (so no apt lists are needed). Project files (tests/, $BUILD/gen/py) are skipped:
their own imports are read instead. Modules already loaded when the interpreter starts (site,
.pth files) are not counted; the interpreter binary itself is."""

import ast
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD", "build"))
GEN_PY = os.path.join(BUILD, "gen", "py")
# the directories the tests put on sys.path, in their order
TEST_PATH = [os.path.join(ROOT, "tests", "integration", "lib"),
             os.path.join(ROOT, "tests", "integration"),
             os.path.join(ROOT, "tests", "hostile", "lib"), GEN_PY]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def heredocs(path):
    """The Python programs a shell test feeds to `python3 - ... <<'TAG'`."""
    out, tag, buf = [], None, []
    with open(path) as f:
        for line in f:
            if tag is None:
                m = re.search(r"\bpython3\b.*<<-?\s*'?\"?(\w+)", line)
                if m:
                    tag, buf = m.group(1), []
            elif line.strip() == tag:
                out.append("".join(buf))
                tag = None
            else:
                buf.append(line)
    if tag is not None:
        fail("%s: unterminated heredoc %s" % (path, tag))
    return out


def imports(source, where):
    """(module, attribute or None) for every absolute import in source."""
    try:
        tree = ast.parse(source, where)
    except SyntaxError as e:
        fail("%s: %s" % (where, e))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for a in node.names:
                yield node.module, (None if a.name == "*" else a.name)


# ---- what the tests import -----------------------------------------------------------------
if not os.path.isdir(GEN_PY):
    fail("%s missing: the test targets build the Python stubs first" % GEN_PY)
py_files = sorted(glob.glob(os.path.join(ROOT, "tests", "**", "*.py"), recursive=True)
                  + glob.glob(os.path.join(GEN_PY, "**", "*.py"), recursive=True))
sources = []
for p in py_files:
    with open(p) as f:
        sources.append((os.path.relpath(p, ROOT), f.read()))
for p in sorted(glob.glob(os.path.join(ROOT, "tests", "**", "*.sh"), recursive=True)):
    for i, src in enumerate(heredocs(p)):
        sources.append(("%s (heredoc %d)" % (os.path.relpath(p, ROOT), i + 1), src))
wanted = {}
for where, src in sources:
    for mod, attr in imports(src, where):
        wanted.setdefault(json.dumps([mod, attr]), where)
print("%d Python sources, %d distinct imports" % (len(sources), len(wanted)))

# ---- import them in a child interpreter ----------------------------------------------------
CHILD = r"""
import importlib, importlib.util, json, os, sys
root, path, wanted = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
before = set(sys.modules)
sys.path[0:0] = path
def project(name):
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ModuleNotFoundError("No module named %r" % name)
    locs = list(spec.submodule_search_locations or []) + [spec.origin or ""]
    return any(os.path.realpath(l).startswith(root + os.sep) for l in locs if l)
errors = []
for key, where in sorted(wanted.items()):
    mod, attr = json.loads(key)
    try:
        if project(mod.split(".")[0]):
            continue  # a project file: its own imports are in the list
        m = importlib.import_module(mod)
        if attr and not hasattr(m, attr):
            importlib.import_module(mod + "." + attr)
    except Exception as e:
        errors.append("%s: import %s%s: %s: %s" % (where, mod, " (%s)" % attr if attr else "",
                                                 type(e).__name__, e))
files = {}
for name, m in list(sys.modules.items()):
    f = getattr(m, "__file__", None)
    if name in before or not f:
        continue
    f = os.path.realpath(f)
    if not f.startswith(root + os.sep):
        files[f] = name
files[os.path.realpath(sys.executable)] = "(the interpreter)"
print(json.dumps({"errors": errors, "files": files}))
"""
child = subprocess.run([sys.executable, "-c", CHILD, ROOT, json.dumps(TEST_PATH), json.dumps(wanted)],
                       cwd=ROOT, capture_output=True, text=True)
if child.returncode != 0:
    fail("the importing child failed (exit %d):\n%s" % (child.returncode, child.stderr))
res = json.loads(child.stdout)
files = res["files"]
print("%d module files outside the project" % len(files))

# ---- the packages make deps installs, and their Depends closure ----------------------------
env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
mk = subprocess.run(["make", "-s", "-pn", "deps"], cwd=ROOT, env=env, capture_output=True,
                    text=True)
m = re.search(r"^DEB_PKGS := (.*)$", mk.stdout, re.M)
if not m:
    fail("no DEB_PKGS in `make -pn deps`:\n" + mk.stderr)
deb_pkgs = m.group(1).split()
print("DEB_PKGS: " + " ".join(deb_pkgs))

q = subprocess.run(["dpkg-query", "-W", "-f",
                    "${Package}\t${db:Status-Abbrev}\t${Provides}\t${Depends}\t${Pre-Depends}\n"],
                   capture_output=True, text=True, check=True)
installed, provides, depends = set(), {}, {}


def names(field):
    """[[alternative, ...], ...] from a Depends-like field, without versions and arch tags."""
    out = []
    for group in filter(None, (g.strip() for g in field.split(","))):
        out.append([re.sub(r"[ (:].*", "", a.strip()) for a in group.split("|")])
    return out


for line in q.stdout.splitlines():
    pkg, status, prov, dep, predep = (line.split("\t") + [""] * 5)[:5]
    if not status.startswith("ii"):
        continue
    installed.add(pkg)
    for (p,) in names(prov):
        provides.setdefault(p, set()).add(pkg)
    depends.setdefault(pkg, []).extend(names(dep) + names(predep))

missing = [p for p in deb_pkgs if p not in installed]
if missing:
    print("FAIL: DEB_PKGS not installed (run make deps): " + " ".join(missing), file=sys.stderr)
closure, todo = set(), [p for p in deb_pkgs if p in installed]
while todo:
    p = todo.pop()
    if p in closure:
        continue
    closure.add(p)
    for alts in depends.get(p, []):
        for a in alts:  # any installed alternative, or an installed provider of a virtual one
            todo.extend(({a} & installed) | provides.get(a, set()))
print("closure: %d packages" % len(closure))

# ---- which package ships each file ---------------------------------------------------------
owner = {}
paths = sorted(files)
for i in range(0, len(paths), 200):
    out = subprocess.run(["dpkg", "-S"] + paths[i:i + 200], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("diversion "):
            continue
        pkgs, _, path = line.partition(": /")
        owner["/" + path] = [re.sub(r":.*", "", p.strip()) for p in pkgs.split(",")]
for f in paths:  # merged /usr: dpkg may know a file under /lib as /usr/lib, or the other way
    if f not in owner:
        alt = f[4:] if f.startswith("/usr/") else "/usr" + f
        out = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
        if out.returncode == 0:
            owner[f] = [re.sub(r":.*", "", p.strip())
                        for p in out.stdout.splitlines()[-1].partition(": /")[0].split(",")]

bad = list(res["errors"])
outside = {}  # package(s) -> modules
for f in paths:
    if f not in owner:
        bad.append("%s (module %s) is in no Debian package" % (f, files[f]))
    elif not set(owner[f]) & closure:
        outside.setdefault(", ".join(owner[f]), []).append(files[f])
for pkgs, mods in sorted(outside.items()):
    bad.append("modules %s come from %s, which make deps does not install (add it to DEB_PKGS "
               "in the Makefile)" % (" ".join(sorted(mods)), pkgs))
used = sorted({p for f in paths for p in owner.get(f, []) if p in closure})
print("packages the imported modules come from: " + " ".join(used))
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
if bad or missing:
    sys.exit(1)
print("python deps: ok")
