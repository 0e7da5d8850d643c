#!/bin/busybox sh
# /init of the nested Linux guest the linux-guest selftest boots in the reference VMM.
# Loads the SDEI test module (its rounds run in module init), unloads it, powers off.
# Its parameters come from the kernel command line, which hands unknown name=value words
# to init as environment variables: sdei_doorbell, sdei_rounds, sdei_suspend, sdei_states.
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
bb=/bin/busybox
echo "guest-init: userspace up at $($bb cut -d' ' -f1 /proc/uptime)s; $($bb uname -r)"
$bb dmesg | $bb grep -iE "sdei|page table isolation" | $bb sed "s/^/guest-dmesg: /"
if [ "${sdei_suspend:-0}" = 1 ]; then
  echo devices > /sys/power/pm_test || sdei_suspend=0
fi
$bb insmod /sdei_test.ko doorbell=${sdei_doorbell:-0} rounds=${sdei_rounds:-3} \
  suspend=${sdei_suspend:-0} states=${sdei_states:-0}
echo "guest-init: insmod status $?"
$bb dmesg | $bb grep 'sdei-test:' | $bb sed 's/^\[[ 0-9.]*\] //'
$bb rmmod sdei_test
echo "guest-init: rmmod status $?"
$bb dmesg | $bb grep 'sdei-test: unload' | $bb sed 's/^\[[ 0-9.]*\] //'
echo "guest-init: done at $($bb cut -d' ' -f1 /proc/uptime)s"
$bb poweroff -f
