#!/usr/bin/env python3
"""Writes the protobuf schema table that kube-sim decodes kubectl's protobuf request bodies with
(crates/kube-sim/src/protobuf/schema.txt).

Structure (field numbers, wire kinds, message types) comes from the k8s-pb crate's prost
structs; the JSON side (JSON name, inlined embedded structs, whether a zero value is sent in
JSON) from the Go types' struct tags in kubernetes/api and kubernetes/apimachinery, because a
real API server decodes protobuf into those Go types and answers JSON from them.

    python3 crates/kube-sim/codegen/protobuf_schema.py K8S_PB_SRC KUBERNETES_API KUBERNETES_APIMACHINERY [GIT_REV_API GIT_REV_APIMACHINERY]

K8S_PB_SRC is the crate's src/ (e.g. ~/.cargo/registry/src/*/k8s-pb-0.9.0/src, fetched by
`cargo info k8s-pb`); the other two are checkouts of github.com/kubernetes/api and
github.com/kubernetes/apimachinery (a git directory works too: files are read at HEAD).

Table format, one record a line:
    M <message>                 a message (module path with dots, then the Rust type name)
    F <tag> <json> <kind> <flags>
        kind: string bool int32 int64 double bytes time microtime quantity intstr
              rawjson m:<message> map:<key kind>:<value kind>
        flags (or -): r repeated, z a zero value is kept (Go pointer, or no omitempty),
                      i inlined (the message's fields join the parent's JSON object)
    K <apiVersion> <kind> <message>   a top-level kind a request body may carry
"""

import os
import re
import subprocess
import sys

# Groups the simulator serves (k8s-pb module paths); messages they reference are added.
ROOTS = [
    "api.core.v1", "api.apps.v1", "api.batch.v1", "api.networking.v1", "api.rbac.v1",
    "api.coordination.v1", "api.discovery.v1", "api.events.v1", "api.autoscaling.v1",
    "api.autoscaling.v2",
]
# Messages with a JSON form of their own (see crates/kube-sim/src/protobuf/mod.rs).
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "microtime",
    "apimachinery.pkg.api.resource.Quantity": "quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "intstr",
    "apimachinery.pkg.runtime.RawExtension": "rawjson",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "rawjson",
}
SCALARS = {"string", "bool", "int32", "int64", "double"}
# Single messages of groups the simulator does not serve (with what they reference).
EXTRA_ROOTS = ["api.authentication.v1.TokenRequest"]
# Kinds a write body may carry that k8s-pb has no Resource impl for (subresource bodies:
# `.../scale`, and the TokenRequest of `kubectl create token`).
EXTRA_KINDS = [
    ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
    ("authentication.k8s.io/v1", "TokenRequest", "api.authentication.v1.TokenRequest"),
]


def parse_pb(src):
    """{message: [(tag, snake, kind, repeated, type_ref)]} and [(apiVersion, kind, message)]."""
    messages, kinds = {}, []
    for dirpath, _, files in os.walk(src):
        for f in files:
            if f != "mod.rs":
                continue
            path = os.path.join(dirpath, f)
            module = os.path.relpath(dirpath, src).replace(os.sep, ".")
            text = open(path).read()
            text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("//"))
            for m in re.finditer(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.S | re.M):
                name, body = m.group(1), m.group(2)
                fields = []
                for fm in re.finditer(r"#\[prost\((.*?)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),\s*(?=#\[prost|\Z)", body, re.S):
                    attr, snake, rtype = fm.group(1), fm.group(2), " ".join(fm.group(3).split())
                    rtype = re.sub(r",\s*>", ">", rtype).replace("< ", "<")
                    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
                    first = attr.split(",")[0].strip()
                    repeated = "repeated" in attr
                    ref = None
                    if first == "message":
                        kind = "m"
                        ref = resolve(module, innermost(rtype))
                    elif first.startswith("btree_map"):
                        k, v = re.search(r'btree_map = "(\w+), (\w+)"', attr).groups()
                        kind = f"map:{k}:{v}"
                        if v == "message":
                            ref = resolve(module, innermost(map_value(rtype)))
                    elif first.startswith("bytes"):
                        kind = "bytes"
                    elif first in SCALARS:
                        kind = first
                    else:
                        raise SystemExit(f"{path}: {name}.{snake}: unknown prost kind {attr}")
                    fields.append((tag, snake, kind, repeated, ref))
                messages[f"{module}.{name}"] = fields
            for m in re.finditer(r"impl crate::Resource for (\w+) \{(.*?)\}", text, re.S):
                av = re.search(r'API_VERSION: &\'static str = "([^"]*)"', m.group(2)).group(1)
                kind = re.search(r'KIND: &\'static str = "([^"]*)"', m.group(2)).group(1)
                seg = re.search(r'URL_PATH_SEGMENT: &\'static str = "([^"]*)"', m.group(2)).group(1)
                if "SubResourceScope" not in m.group(2) and "/" not in seg:
                    kinds.append((av, kind, f"{module}.{m.group(1)}"))
    return messages, kinds


def innermost(rtype):
    """The message path in `Option<Vec<Box<path>>>`-like Rust types."""
    t = rtype
    while True:
        m = re.match(r"^[\w:]*(?:Option|Vec|Box)<(.*)>$", t)
        if not m:
            return t
        t = m.group(1).strip()


def map_value(rtype):
    inner = re.match(r"^[\w:]*BTreeMap<(.*)>$", rtype).group(1)
    depth = 0
    for i, c in enumerate(inner):
        depth += c == "<"
        depth -= c == ">"
        if c == "," and depth == 0:
            return inner[i + 1:].strip()
    raise SystemExit(f"no map value in {rtype}")


def resolve(module, path):
    parts = module.split(".")
    segs = path.split("::")
    if segs[0] == "crate":
        return ".".join(segs[1:])
    while segs and segs[0] == "super":
        parts.pop()
        segs.pop(0)
    return ".".join(parts + segs)


def read_go_dir(repo, sub):
    """Concatenated non-test Go sources of a directory of a checkout or a bare git directory."""
    if os.path.isdir(os.path.join(repo, sub)):
        d = os.path.join(repo, sub)
        return "\n".join(open(os.path.join(d, f)).read() for f in sorted(os.listdir(d))
                         if f.endswith(".go") and not f.endswith("_test.go"))
    names = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", "HEAD", sub + "/"],
                           capture_output=True, text=True, check=True).stdout.split()
    return "\n".join(subprocess.run(["git", "-C", repo, "show", f"HEAD:{n}"], capture_output=True,
                                    text=True, check=True).stdout
                     for n in names if n.endswith(".go") and not n.endswith("_test.go"))


def parse_go(text):
    """{struct: {tag: (json, omitempty, pointer, inline)}} from Go struct tags."""
    out = {}
    for m in re.finditer(r"^type (\w+) struct \{\n(.*?)^\}", text, re.S | re.M):
        fields = {}
        for line in m.group(2).splitlines():
            s = line.strip()
            if s.startswith("//") or "`" not in s or 'protobuf:"' not in s:
                continue
            decl, tags = s.split("`", 1)
            decl = decl.split()
            gotype = decl[-1]
            pb = re.search(r'protobuf:"\w+,(\d+),', tags)
            js = re.search(r'json:"([^"]*)"', tags)
            if not pb or not js:
                continue
            jparts = js.group(1).split(",")
            inline = jparts[0] == "" or "inline" in jparts[1:]
            fields[int(pb.group(1))] = (jparts[0], "omitempty" in jparts[1:],
                                        gotype.startswith("*"), inline)
        out[m.group(1)] = fields
    return out


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    pb_src, api_repo, machinery_repo = sys.argv[1:4]
    revs = sys.argv[4:6]
    messages, kinds = parse_pb(pb_src)

    go = {}
    for module in messages:
        pkg = module.rsplit(".", 1)[0]
        if pkg in go:
            continue
        parts = pkg.split(".")
        if parts[0] == "api":
            go[pkg] = parse_go(read_go_dir(api_repo, "/".join(parts[1:])))
        elif pkg == "apimachinery.pkg.apis.meta.v1":
            go[pkg] = parse_go(read_go_dir(machinery_repo, "pkg/apis/meta/v1"))
        else:
            go[pkg] = {}

    wanted, queue = set(), [m for m in messages if m.rsplit(".", 1)[0] in ROOTS]
    while queue:
        m = queue.pop()
        if m in wanted or m in SPECIAL:
            continue
        if m not in messages:
            raise SystemExit(f"unknown message {m}")
        wanted.add(m)
        queue.extend(ref for *_, ref in messages[m] if ref)

    out = ["# Generated by crates/kube-sim/codegen/protobuf_schema.py; do not edit.",
           f"# Sources: k8s-pb ({os.path.basename(os.path.dirname(os.path.abspath(pb_src)))}), "
           f"kubernetes/api {revs[0] if revs else '?'}, kubernetes/apimachinery {revs[1] if len(revs) > 1 else '?'}"]
    missing = 0
    for m in sorted(wanted):
        pkg, name = m.rsplit(".", 1)
        gofields = go.get(pkg, {}).get(name)
        out.append(f"M {m}")
        for tag, snake, kind, repeated, ref in messages[m]:
            if ref:
                target = SPECIAL.get(ref, f"m:{ref}")
                kind = target if kind == "m" else kind.replace("message", target)
            info = (gofields or {}).get(tag)
            if info is None:
                missing += gofields is not None
                info = (camel(snake), False, True, False)
            js, omitempty, pointer, inline = info
            flags = ("r" if repeated else "") + ("z" if pointer or not omitempty else "") + ("i" if inline else "")
            out.append(f"F {tag} {js or '-'} {kind} {flags or '-'}")
    for av, kind, m in sorted(kinds + EXTRA_KINDS):
        if m in wanted:
            out.append(f"K {av} {kind} {m}")
    sys.stdout.write("\n".join(out) + "\n")
    print(f"{len(wanted)} messages, {missing} fields without a Go tag", file=sys.stderr)


if __name__ == "__main__":
    main()
