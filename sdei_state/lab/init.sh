#!/bin/busybox sh
# /init of the sdei-state lab initramfs (PID 1 of the TCG-emulated arm64 KVM host).
# Mounts the pseudo filesystems, loads the 9p modules, mounts the per-run share "lab" at
# /mnt/lab (cmd in; out, rc, times, kvm out) and the project share "host" at /mnt/host, runs
# /mnt/lab/cmd with its output on the console between two markers, then powers off.
# Without /mnt/lab/cmd it starts a shell on the console.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=${TERM:-vt100} TMPDIR=/tmp
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LANG=C.UTF-8
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
/bin/busybox mount -t tmpfs tmp /tmp
for m in $(cat /lib/modules/lab/ORDER 2>/dev/null); do
  insmod /lib/modules/lab/$m || echo "init: insmod $m failed"
done
o=trans=virtio,version=9p2000.L,msize=262144,cache=none
mount -t 9p -o $o lab /mnt/lab 2>/dev/null || echo "init: cannot mount the 'lab' share"
mount -t 9p -o $o host /mnt/host 2>/dev/null || echo "init: cannot mount the 'host' share"
up=$(cut -d' ' -f1 /proc/uptime)
echo "init: userspace up at ${up}s guest uptime; $(uname -r) $(uname -m)"
kvmline=$(dmesg | grep -E 'kvm \[[0-9]+\]: .*(mode initialized|initialized successfully)' | tail -1 | sed 's/^\[[ 0-9.]*\] //')
echo "init: ${kvmline:-no KVM initialisation message in dmesg}"
if [ ! -c /dev/kvm ]; then
  echo "init: no /dev/kvm; kvm lines of dmesg:"
  dmesg | grep -iE 'kvm|hyp' | sed 's/^/init:   /'
fi
export SDEI_STATE_LAB=1  # tests may fail, not skip, when the lab lacks what it promises
if [ -f /mnt/lab/cmd ]; then
  echo "${kvmline}" > /mnt/lab/kvm
  if [ -c /dev/kvm ]; then
    cd /mnt/host 2>/dev/null || cd /
    echo "@@sdei-lab begin@@"
    { sh /mnt/lab/cmd; echo $? > /mnt/lab/rc; } 2>&1 | tee /mnt/lab/out
    echo "@@sdei-lab end@@"
  else
    echo "no /dev/kvm" > /mnt/lab/nokvm
  fi
  echo "$up $(cut -d' ' -f1 /proc/uptime)" > /mnt/lab/times
  sync
  cd /
  umount /mnt/lab /mnt/host 2>/dev/null
  poweroff -f
fi
echo "init: no /mnt/lab/cmd; starting a shell (exit or 'poweroff -f' to stop QEMU)"
cd /mnt/host 2>/dev/null || cd /
setsid cttyhack sh
poweroff -f
