#!/usr/bin/env bash
# The guest image recipe, run by `zfs-testhost build` as root inside the debootstrapped chroot.
# Its text (with the ZFS series) keys the image cache: change it and the next `up` rebuilds.
# Inputs (environment): ZFS_SERIES=2.3|2.1, MIRROR, SSH_PUBKEY.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8

cat >/etc/apt/sources.list <<SRC
deb $MIRROR bookworm main contrib
deb $MIRROR bookworm-updates main contrib
deb $MIRROR bookworm-backports main contrib
SRC
# Pin only the ZFS packages to backports: a plain `-t bookworm-backports` drags in other backports.
if [ "$ZFS_SERIES" = "2.3" ]; then
  cat >/etc/apt/preferences.d/zfs <<'PIN'
Package: zfs-dkms zfsutils-linux zfs-zed libzfs* libzpool* libnvpair* libuutil* libzfsbootenv* libzfslinux*
Pin: release n=bookworm-backports
Pin-Priority: 990
PIN
fi
# No daemon may start inside the chroot.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  linux-image-amd64 linux-headers-amd64 dkms build-essential \
  zfs-dkms zfsutils-linux \
  openssh-server iproute2 procps psmisc kmod udev systemd-sysv \
  python3 python3-venv redis-server zstd gzip coreutils e2fsprogs ca-certificates >/dev/null

KVER=$(ls /lib/modules | sort -V | tail -n 1)
ZVER=$(dpkg-query -W -f='${Version}' zfs-dkms | sed -E 's/^[0-9]+://; s/-.*$//')
# dkms in a chroot usually builds for the installed guest kernel by itself; make sure of it.
if ! modinfo -k "$KVER" zfs >/dev/null 2>&1; then
  dkms install -m zfs -v "$ZVER" -k "$KVER" >/dev/null
fi
modinfo -k "$KVER" zfs | grep -E '^version' >/dev/null

# Small initramfs: only what mounting an ext4 root on virtio needs (MODULES=dep would look at the host).
printf 'MODULES=list\nCOMPRESS=gzip\n' >/etc/initramfs-tools/conf.d/zfsapi-testhost
printf 'virtio_pci\nvirtio_blk\next4\n' >>/etc/initramfs-tools/modules
update-initramfs -u -k "$KVER" >/dev/null

echo zfstesthost >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 zfstesthost\n::1 localhost\n' >/etc/hosts
printf '/dev/vda / ext4 rw,noatime 0 0\n' >/etc/fstab
mkdir -p /etc/systemd/network /root/.ssh /opt/zfsapi-venv
printf '[Match]\nName=eth0\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nLinkLocalAddressing=no\n' \
  >/etc/systemd/network/10-eth0.network
systemctl enable systemd-networkd ssh >/dev/null 2>&1
printf '%s\n' "$SSH_PUBKEY" >/root/.ssh/authorized_keys
chmod 700 /root/.ssh && chmod 600 /root/.ssh/authorized_keys
printf 'UseDNS no\nPermitRootLogin prohibit-password\nMaxSessions 64\nMaxStartups 64\n' >/etc/ssh/sshd_config.d/zfsapi.conf
# Boot only what the tests need; zfs is loaded after ssh is up, pools are made by the tests.
for unit in systemd-udev-settle.service zfs-import-cache.service zfs-import-scan.service zfs-mount.service \
  zfs-share.service zfs-zed.service zfs-volume-wait.service zfs-load-module.service zfs-import.target \
  redis-server.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer man-db.timer systemd-timesyncd.service getty@tty1.service; do
  systemctl mask "$unit" >/dev/null 2>&1 || true
done
passwd -l root >/dev/null
rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /var/cache/debconf/*-old
echo "$KVER $ZVER" >/etc/zfsapi-testhost
