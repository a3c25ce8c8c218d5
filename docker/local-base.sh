#!/usr/bin/env bash
# Build a python3.11 base image from Debian's own packages, for machines that can reach a Debian mirror but no
# container registry. The image stands in for python:3.11-slim: python, python3 and pip's needs (venv, CA certs)
# where the Dockerfile expects them (/usr/local/bin/python3 -> Debian's /usr/bin/python3.11).
#
#   docker/local-base.sh [IMAGE]       (default IMAGE: ctrp3-local-base:bookworm; needs root and a running dockerd)
#
# The root file system is cached as a tarball (BASE_CACHE, default /var/cache/ctrp3-docker), so a rerun imports it in
# seconds instead of running debootstrap (~1-2 min) again. Delete the tarball to rebuild it.
set -euo pipefail

IMAGE=${1:-ctrp3-local-base:bookworm}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE_DIR=${BASE_CACHE:-/var/cache/ctrp3-docker}
TARBALL="$CACHE_DIR/$SUITE-python3.11-rootfs.tar"
DOCKER=${DOCKER:-docker}
# python3-venv brings ensurepip (Debian's python3 refuses `pip install` outside a venv: externally-managed-environment).
PACKAGES=python3,python3-venv,ca-certificates

if [[ ! -s "$TARBALL" ]]; then
    # A fresh CI machine may lack it, as docker/test.sh's engine may lack docker.io: install it the same way.
    if ! command -v debootstrap >/dev/null; then
        echo "local-base: installing Debian's debootstrap ..." >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap) >/dev/null \
            || { echo "local-base: debootstrap is missing and apt-get could not install it" >&2; exit 1; }
    fi
    mkdir -p "$CACHE_DIR"
    root=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
    chmod 755 "$root"  # it becomes the image's /: mktemp's 0700 would lock every non-root user out
    trap 'rm -rf "$root"' EXIT
    echo "local-base: debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR ..." >&2
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE_DIR/debootstrap.log" >&2; echo "local-base: debootstrap failed (log: $CACHE_DIR/debootstrap.log)" >&2; exit 1; }
    # Where python:3.11-slim has its interpreter, so the Dockerfile runs unchanged on either base.
    ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
    ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
    # What a slim image leaves out: apt's package lists and caches, documentation.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
           "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
    tar -C "$root" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    echo "local-base: cached $TARBALL ($(du -h "$TARBALL" | cut -f1))" >&2
fi
# Imported once per tarball: the label names the tarball's size and time, so a rerun reuses the image.
STAMP=$(stat -c '%s-%Y' "$TARBALL")
if [[ $("$DOCKER" image inspect -f '{{index .Config.Labels "ctrp3.rootfs"}}' "$IMAGE" 2>/dev/null) != "$STAMP" ]]; then
    "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL ctrp3.rootfs=$STAMP" \
        --change 'CMD ["python3"]' \
        "$TARBALL" "$IMAGE" >/dev/null
fi
echo "$IMAGE"
