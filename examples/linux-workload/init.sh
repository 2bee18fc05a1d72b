#!/bin/sh
# /init of the linux-workload initramfs: bring up eth0, tell dispatch "booted", run a tiny
# test, report its output, reboot. The firmware then asks dispatch for the next workload.
# Everything goes to the console (ttyS0), so a serial log shows each step.

/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
say() { echo "linux-workload: $*"; }

mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# The URL dispatch was reached at: dispatch.url= on the kernel command line if the image
# was built with one, else beacon reads it from the firmware's Boot#### variables (the
# option this boot came from), which needs efivarfs.
url=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    dispatch.url=*) url="${arg#dispatch.url=}" ;;
  esac
done

for m in $(cat /lib/modules/load-order); do
  insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
if [ -d /sys/firmware/efi ]; then
  mount -t efivarfs efivarfs /sys/firmware/efi/efivars || say "no efivarfs"
fi

# virtio_net registers eth0 when its module loads; give udev-less devtmpfs a moment.
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mac=$(cat /sys/class/net/eth0/address 2>/dev/null | tr -d :)
hostname "vm-${mac:-unknown}"
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
say "eth0 up as 10.0.2.15/24 via 10.0.2.2 ($(hostname)); uptime $(cut -d' ' -f1 /proc/uptime) s"

if [ -n "$url" ]; then
  set -- --server "$url" --no-mdns
else
  set -- --no-mdns
fi

beacon "$@" boot
say "beacon boot exited $?; uptime $(cut -d' ' -f1 /proc/uptime) s"

# The "test": whatever a real workload would run. Its output is the report's body.
body=/tmp/report.txt
{
  echo '```'
  uname -a
  head -n 3 /proc/meminfo
  echo "cpus: $(grep -c ^processor /proc/cpuinfo)"
  echo "cmdline: $(cat /proc/cmdline)"
  echo ok
  echo '```'
} > "$body" 2>&1

beacon "$@" report --title "linux-workload on $(hostname)" --body "$body"
say "beacon report exited $?; uptime $(cut -d' ' -f1 /proc/uptime) s"

say "rebooting"
sync
reboot -f
# reboot -f does not return; if it ever did, a panic (panic=-1) resets the machine.
sleep 5
exit 1
