# shellcheck shell=sh
# ddctl: wait for eth1 before boot2docker makes its TLS certificates.
#
# /var/lib/boot2docker/profile is sourced by the VM's docker init script just before it
# generates the server certificate for every address of eth0 and eth1. When eth1 (the
# host-only network) comes up late, the certificate misses the VM's address and clients
# fail with "x509: certificate is valid for 127.0.0.1, 10.0.2.15, not 192.168.59.103"
# (boot2docker issues 824, 938, 953). `ddctl doctor profile --apply` appends this snippet
# to the profile (between marker lines, once, keeping every existing line).
#
# busybox sh. Waits until `ip a show eth1` says UP and shows an IPv4 address, at most
# WAIT4ETH1_TRIES times (30) every WAIT4ETH1_INTERVAL seconds (2), then WAIT4ETH1_SETTLE
# seconds (1) more. If eth1 never comes up it says so and gives up with status 0: the
# profile is sourced, so it must neither exit nor fail, and Docker must still start
# (with certificates for the addresses there are).
wait4eth1() {
  _w4_i=0
  while [ "$_w4_i" -lt "${WAIT4ETH1_TRIES:-30}" ]; do
    _w4_out=$(ip a show eth1 2>/dev/null)
    if echo "$_w4_out" | grep -q UP && echo "$_w4_out" | grep -q 'inet '; then
      sleep "${WAIT4ETH1_SETTLE:-1}"
      echo "wait4eth1: eth1 is up (after $_w4_i waits)"
      unset _w4_i _w4_out
      return 0
    fi
    _w4_i=$((_w4_i + 1))
    sleep "${WAIT4ETH1_INTERVAL:-2}"
  done
  echo "wait4eth1: eth1 is not up after ${WAIT4ETH1_TRIES:-30} tries; starting Docker anyway" >&2
  unset _w4_i _w4_out
  return 0
}
wait4eth1
