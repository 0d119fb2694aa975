#!/usr/bin/env bash
# Builds spool's base image without any image registry: a root file system holding only what
# the spool binary needs at run time, imported with `docker import`.
#
#   docker/base-image.sh BINARY [TAG]      (TAG defaults to spool-base:local)
#
# The tree holds the shared libraries `ldd BINARY` lists, with the dynamic loader; glibc's
# name-service modules and resolver, for a glibc older than 2.34 where they are not part of
# libc (compose nodes find each other by service name through the engine's DNS server);
# /etc/passwd and /etc/group with root and a `spool` user and group (10001); /etc/nsswitch.conf
# (host names from /etc/hosts, then DNS); empty /etc/hosts, /etc/resolv.conf and /etc/hostname
# for the engine to mount over; and /tmp (mode 1777). No shell, no package manager, no CA
# certificates (spool serves PLAINTEXT only and makes no TLS connections). The binary itself is
# not included: docker/Dockerfile adds it.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BINARY [TAG]" >&2
    exit 2
fi
binary=$1
tag=${2:-spool-base:local}
if [ ! -x "$binary" ]; then
    echo "base-image: $binary is not an executable file" >&2
    exit 1
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/spool-base.XXXXXX")
trap 'rm -rf "$root"' EXIT

# Copies a file (following links) into the tree at the same path, and keeps the path the
# binary or the loader asks for when it is a link (/lib64/ld-linux-x86-64.so.2, say).
add() {
    local path=$1
    mkdir -p "$root$(dirname "$path")"
    cp -L "$path" "$root$path"
}

# `ldd` lines are "name => /path (addr)", "/path (addr)" for the loader, or the vDSO (no path).
libs=$(ldd "$binary" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }' | sort -u)
if [ -z "$libs" ]; then
    echo "base-image: ldd lists no libraries for $binary (a static binary needs none)" >&2
fi
for lib in $libs; do
    add "$lib"
done

# Before glibc 2.34 the files and dns NSS modules and libresolv were libraries of their own,
# loaded when a host name is first resolved; since 2.34 they are stubs and libc does the work.
# Either way they are small: take them when they sit beside libc.
libc=$(printf '%s\n' "$libs" | grep '/libc\.so\.' | head -n 1 || true)
if [ -n "$libc" ]; then
    libdir=$(dirname "$libc")
    for extra in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
        if [ -e "$libdir/$extra" ]; then
            add "$libdir/$extra"
        fi
    done
fi

mkdir -p "$root/etc" "$root/tmp" "$root/usr/local/bin"
chmod 1777 "$root/tmp"
cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
spool:x:10001:10001:spool:/var/lib/spool:/sbin/nologin
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
spool:x:10001:
EOF
cat > "$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group:  files
hosts:  files dns
EOF
# The engine mounts its own over these three; they exist so that the image also makes sense
# without it (`docker export`, other runtimes).
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
: > "$root/etc/resolv.conf"
: > "$root/etc/hostname"

# Owned by root, files as they are on the host, directories 0755.
tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
    docker import \
        --change 'ENV PATH=/usr/local/bin' \
        --message "spool base: the run-time libraries of $(basename "$binary")" \
        - "$tag" >/dev/null
echo "base-image: built $tag ($(du -sh "$root" | cut -f1) of files)"
