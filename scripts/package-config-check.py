#!/usr/bin/env python3
"""package-config-check.py: .goreleaser.yaml must build what packaging/nfpm.yaml does.

goreleaser is not run in this project's tests (no approved release of it),
so its nfpms section, build flags and before hook are compared here with
packaging/nfpm.yaml and scripts/package.sh's build; scripts/package-check.sh
runs this. Exit 1 names each difference.

    python3 scripts/package-config-check.py [NFPM_YAML GORELEASER_YAML]
"""
import sys

import yaml


def main(nfpm_path, goreleaser_path):
    with open(nfpm_path) as f:
        nf = yaml.safe_load(f)
    with open(goreleaser_path) as f:
        gr = yaml.safe_load(f)
    bad = []

    def same(what, a, b, ref=nfpm_path):
        if a != b:
            bad.append(f"{what}: {ref} has {a!r}, {goreleaser_path} has {b!r}")

    gp = gr["nfpms"][0]
    same("package name", nf["name"], gp.get("package_name"))
    same("formats", ["deb", "rpm"], sorted(gp.get("formats", [])))
    for k in ("section", "priority", "maintainer", "vendor", "license", "description"):
        same(k, nf.get(k), gp.get(k))
    same("depends", nf.get("depends"), gp.get("dependencies"))
    for k in ("recommends", "suggests"):
        same(k, nf.get(k), gp.get(k))
    no = nf.get("overrides", {}).get("rpm", {})
    go = gp.get("overrides", {}).get("rpm", {})
    same("rpm depends", no.get("depends"), go.get("dependencies"))
    for k in ("recommends", "suggests"):
        same("rpm " + k, no.get(k), go.get(k))
    same("rpm group", nf.get("rpm", {}).get("group"), gp.get("rpm", {}).get("group"))

    def entry(c):
        return (c["src"], c["dst"], c.get("packager", ""), (c.get("file_info") or {}).get("mode"))

    binary = [c for c in nf["contents"] if c["dst"] == "/usr/bin/vlab"]
    same("binary", [("./bin/vlab", 0o755)], [(c["src"], (c.get("file_info") or {}).get("mode")) for c in binary])
    same("bindir", "/usr/bin", gp.get("bindir"))
    same("contents",
         sorted(entry(c) for c in nf["contents"] if c not in binary),
         sorted(entry(c) for c in gp.get("contents", [])))

    # The build scripts/package.sh does: static, trimmed, version stamped in.
    b = gr["builds"][0]
    same("build env", ["CGO_ENABLED=0"], b.get("env"), "scripts/package.sh")
    same("build flags", ["-trimpath"], b.get("flags"), "scripts/package.sh")
    same("ldflags", ["-s -w -X main.version={{.Version}}"], b.get("ldflags"), "scripts/package.sh")
    with open("scripts/package.sh") as f:
        if 'CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION"' not in f.read():
            bad.append("scripts/package.sh no longer builds with CGO_ENABLED=0 -trimpath -ldflags \"-s -w -X main.version=$VERSION\"")
    same("before hook", ["bash scripts/release-files.sh {{ .Version }}"], gr.get("before", {}).get("hooks"), "scripts/release-files.sh")
    same("archive files", ["README.md", "LICENSE", "man/*.1.gz", "completions/*"], gr["archives"][0].get("files"), "scripts/release-files.sh")

    for line in bad:
        print("package-config-check:", line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    args = sys.argv[1:] or ["packaging/nfpm.yaml", ".goreleaser.yaml"]
    if len(args) != 2:
        print("usage: package-config-check.py [NFPM_YAML GORELEASER_YAML]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*args))
