#!/usr/bin/env python3
"""Helm's own Go library (PyPI: helm-python-sdk) for the jobs a helm binary would do here.

    .venv/bin/python deploy/helm.py manifests           # regenerate deploy/manifests/cw.yaml
    .venv/bin/python deploy/helm.py manifests --check   # fail if it is out of date with the chart
    .venv/bin/python deploy/helm.py install RELEASE NAMESPACE [-f values.yaml] [--set k=v ...]
    .venv/bin/python deploy/helm.py uninstall RELEASE NAMESPACE

install and uninstall use KUBECONFIG like helm does; scripts/e2e uses them when no helm
binary is on PATH.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import helm_python as helm
    import yaml
except ImportError as exc:
    sys.exit(f"deploy/helm.py needs helm-python-sdk and pyyaml ({exc}): run scripts/setup")

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "cw"
MANIFESTS = ROOT / "deploy" / "manifests"
RELEASE, NAMESPACE = "cw", "cw"

HEADER = """\
# cw quick start without Helm: the watcher, the ingest server and a bundled Chroma in namespace
# "{ns}". GENERATED from charts/cw with deploy/manifests/values.yaml; do not edit by hand.
# Regenerate: .venv/bin/python deploy/helm.py manifests   (tests/chart checks it is current)
#
# Before applying, create the two Secrets it references (see docs/deploy.md):
#   kubectl create namespace {ns}
#   kubectl -n {ns} create secret generic cw-token --from-literal=token="$(openssl rand -hex 20)"
#   kubectl -n {ns} create secret generic voyage --from-literal=api-key=<your Voyage AI key>
#   kubectl apply -f deploy/manifests/cw.yaml
"""


def render_manifests() -> str:
    values = yaml.safe_load((MANIFESTS / "values.yaml").read_text()) or {}
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    docs = [yaml.safe_dump(namespace, sort_keys=False).rstrip()]
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in rendered[path].split("\n---"):
            body = "\n".join(line.rstrip() for line in doc.strip("\n").splitlines()).strip("\n")
            if body.strip() and any(not line.lstrip().startswith("#") for line in body.splitlines() if line.strip()):
                docs.append(f"# Source: {path}\n{body}")
    return HEADER.format(ns=NAMESPACE) + "---\n" + "\n---\n".join(docs) + "\n"


def manifests(check: bool) -> int:
    target = MANIFESTS / "cw.yaml"
    text = render_manifests()
    if check:
        if not target.exists() or target.read_text() != text:
            print(f"{target.relative_to(ROOT)} is out of date with charts/cw: "
                  "run .venv/bin/python deploy/helm.py manifests", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


def parse_values(files: list[str], sets: list[str]) -> dict:
    values: dict = {}
    for f in files:
        values = merge(values, helm.values_from_yaml(Path(f).read_text()))
    for s in sets:
        values = merge(values, helm.parse_set_string(s))
    return values


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifests", help="render deploy/manifests/cw.yaml from the chart")
    m.add_argument("--check", action="store_true", help="fail if the committed file differs")
    i = sub.add_parser("install", help="install the chart (like helm install --wait)")
    i.add_argument("release")
    i.add_argument("namespace")
    i.add_argument("-f", "--values", action="append", default=[])
    i.add_argument("--set", action="append", default=[])
    i.add_argument("--timeout", type=int, default=300)
    u = sub.add_parser("uninstall", help="uninstall a release")
    u.add_argument("release")
    u.add_argument("namespace")
    args = parser.parse_args()

    if args.command == "manifests":
        return manifests(args.check)
    with helm.Config(namespace=args.namespace) as config:
        if args.command == "install":
            release = config.install(
                str(CHART), args.release, parse_values(args.values, args.set),
                namespace=args.namespace, create_namespace=True, wait="watcher",
                timeout=args.timeout,
            )
            print(f"installed {args.release} in {args.namespace}: {release.get('info', {}).get('status', release)}")
        else:
            config.uninstall(args.release, ignore_not_found=True, wait="watcher", timeout=120)
            print(f"uninstalled {args.release}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
