#!/bin/busybox sh
# /init of the Linux guest that Debian's QEMU boots inside the lab (stock-vmm suite).
# Shows the kernel's SDEI lines, loads the linux-guest SDEI test module once (when the lab
# could build it) and leaves it loaded, so SDEI event 0 stays registered and enabled across
# the migrations, then prints a tick every second: ticks that go on after `-incoming` show
# the guest carried on.
bb=/bin/busybox
$bb mkdir -p /proc /sys /dev
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mount -t devtmpfs dev /dev
echo "stock-guest: up at $($bb cut -d' ' -f1 /proc/uptime)s; $($bb uname -r)"
$bb dmesg | $bb grep -i "sdei" | $bb sed "s/^/stock-guest-dmesg: /"
if [ -s /sdei_test.ko ]; then
  $bb insmod /sdei_test.ko rounds=1
  echo "stock-guest: insmod status $?"
  $bb dmesg | $bb grep 'sdei-test:' | $bb sed 's/^\[[ 0-9.]*\] /stock-guest-dmesg: /'
fi
n=0
while true; do
  n=$((n + 1))
  echo "stock-guest: tick $n"
  $bb sleep 1
done
