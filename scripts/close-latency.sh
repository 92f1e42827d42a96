#!/usr/bin/env bash
# Measures, for one large upload over loopback, the time from the client's last byte to the
# CLOSE reply, and then the CPU the gateway spends to download the same file again: release
# builds of the emulator and the gateway, the real OpenSSH sftp client.
#
#   scripts/close-latency.sh [SIZE_MIB]      (default 1024)
#
# Prints the gateway's own measurement (after_last_write_ms: last WRITE spooled → commit done,
# commit_ms: CLOSE received → commit done), the client's wall time for the whole put, and the
# CPU seconds (user + system) the gateway and the emulator spent during it: on a noisy machine
# CPU time varies much less than wall time, so compare those when judging a change. The second
# line is the download (get_gateway_cpu_s_per_gib: the gateway's CPU per GiB read).
# With PROFILE=FILE the gateway runs under `perf record -e cpu-clock -g` writing FILE
# (read it with `perf report -i FILE`). With PROFILE_ALL=FILE every process on the machine is
# recorded during the put only (client, gateway, emulator): `perf report -i FILE --sort comm`.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}

cargo build --release --quiet
bin=target/release/dropgate
work=$(mktemp -d)
trap 'kill -INT $(jobs -p) 2>/dev/null || true; sleep 1; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
emu_port=$(free_port)
ssh_port=$(free_port)

"$bin" keygen "$work/user" >/dev/null
cat > "$work/dropgate.toml" <<TOML
[server]
listen = "127.0.0.1:$ssh_port"
host_key = "$work/host_key"
[upload]
spool_dir = "$work/spool"
[[accounts]]
name = "bench"
api_url = "http://127.0.0.1:$emu_port"
app_key = "emu-demo-app-key"
app_secret = "emu-demo-app-secret"
refresh_token = "emu-refresh-personal-0000000000000000"
[[users]]
name = "bench"
account = "bench"
root = "/bench"
authorized_keys_file = "$work/user.pub"
TOML

"$bin" emulator --root "$work/dropbox" --listen "127.0.0.1:$emu_port" 2>"$work/emulator.log" &
emu_pid=$!
if [ -n "${PROFILE:-}" ]; then
  RUST_LOG=info perf record -q -e cpu-clock -g -o "$PROFILE" -- \
    "$bin" serve --config "$work/dropgate.toml" 2>"$work/gateway.log" &
else
  RUST_LOG=info "$bin" serve --config "$work/dropgate.toml" 2>"$work/gateway.log" &
fi
gateway_pid=$!
for _ in $(seq 100); do
  grep -q "listening for SFTP" "$work/gateway.log" 2>/dev/null && break
  sleep 0.1
done
echo "[127.0.0.1]:$ssh_port $(cat "$work/host_key.pub")" > "$work/known_hosts"

head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/big.bin"
if [ -n "${PROFILE_ALL:-}" ]; then
  perf record -q -a -g -e cpu-clock -o "$PROFILE_ALL" &
  perf_pid=$!
  sleep 0.5
fi
# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
gateway_before=$(cpu_ticks "$gateway_pid")
emu_before=$(cpu_ticks "$emu_pid")
start=$(date +%s.%N)
sftp -q -b - -P "$ssh_port" -i "$work/user" -o IdentitiesOnly=yes \
  -o UserKnownHostsFile="$work/known_hosts" -o BatchMode=yes bench@127.0.0.1 >/dev/null <<SFTP
put $work/big.bin big.bin
SFTP
end=$(date +%s.%N)
ticks=$(getconf CLK_TCK)
gateway_cpu=$(echo "scale=2; ($(cpu_ticks "$gateway_pid") - $gateway_before) / $ticks" | bc)
emu_cpu=$(echo "scale=2; ($(cpu_ticks "$emu_pid") - $emu_before) / $ticks" | bc)
if [ -n "${PROFILE_ALL:-}" ]; then
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
fi

line=$(grep "upload committed" "$work/gateway.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g')
after_last=$(sed -n 's/.*after_last_write_ms=\([0-9]*\).*/\1/p' <<<"$line")
commit=$(sed -n 's/.*commit_ms=\([0-9]*\).*/\1/p' <<<"$line")
echo "size_mib=$size_mib put_wall_s=$(echo "$end - $start" | bc) last_byte_to_close_reply_ms=$after_last commit_ms=$commit gateway_cpu_s=$gateway_cpu emulator_cpu_s=$emu_cpu"

gateway_before=$(cpu_ticks "$gateway_pid")
start=$(date +%s.%N)
sftp -q -b - -P "$ssh_port" -i "$work/user" -o IdentitiesOnly=yes \
  -o UserKnownHostsFile="$work/known_hosts" -o BatchMode=yes bench@127.0.0.1 >/dev/null <<SFTP
get big.bin $work/back.bin
SFTP
end=$(date +%s.%N)
gateway_cpu=$(echo "scale=2; ($(cpu_ticks "$gateway_pid") - $gateway_before) / $ticks" | bc)
cmp -s "$work/big.bin" "$work/back.bin" || { echo "the download differs from the upload" >&2; exit 1; }
echo "size_mib=$size_mib get_wall_s=$(echo "$end - $start" | bc) get_gateway_cpu_s=$gateway_cpu" \
  "get_gateway_cpu_s_per_gib=$(echo "scale=2; $gateway_cpu * 1024 / $size_mib" | bc)"
