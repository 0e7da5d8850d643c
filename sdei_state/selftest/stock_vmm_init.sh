#!/bin/busybox sh
# /init of the Linux guest that Debian's QEMU boots inside the lab (stock-vmm suite).
# Shows the kernel's SDEI lines, loads sdei_hold.ko (when the lab could build it: its thread
# signals SDEI event 0 to its own CPU over and over, and each handler holds the CPU for a
# while, so a stop most likely lands inside one), then prints a tick every second: ticks that
# go on after `-incoming` show the guest carried on.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev
echo "stock-guest: up at $($bb cut -d' ' -f1 /proc/uptime)s; $($bb uname -r)"
$bb dmesg | $bb grep -i "sdei" | $bb sed "s/^/stock-guest-dmesg: /"
if [ -s /sdei_hold.ko ]; then
  $bb insmod /sdei_hold.ko
  echo "stock-guest: insmod status $?"
fi
n=0
while true; do
  n=$((n + 1))
  echo "stock-guest: tick $n"
  $bb sleep 1
done
