#!/usr/bin/env bash
# dropgate against OpenSSH's own sftp-server on local disk: same client, same files, same run.
#
#   bench/run.sh [--quick] [--runs N] [--only WORKLOAD] [--profile plain|realistic|wan]
#                [--latency-ms N] [--connection-rate BYTES_PER_SEC]
#
# Starts the emulator and dropgate (release builds) and a private sshd (internal-sftp on a
# local folder, its own config and host key) on loopback, then runs each workload with the same
# OpenSSH sftp client and flags against both. Per workload it prints
#   <workload> dropgate=<s> baseline=<s> ratio=<baseline/dropgate> emulator=<s>
# (medians of N runs, default 3; ratio 1.0 = as fast as OpenSSH on local disk; emulator = the
# emulator's own handling time for the Dropbox calls of the median dropgate run), and last
# rss_peak_mb=<N>: dropgate's peak resident memory during parallel_50.
# With --profile realistic the emulator runs its models of real Dropbox (rate limit, namespace
# write lock, lag, name rules, session expiry; off while the benchmark seeds its files), and
# each dropgate line also gives the calls those models refused (median run), e.g.
# `refused: rate_limit=0 write_lock=12`.
# With --profile wan the emulator is far away (40 ms added to every answer, 25 MB/s per TCP
# connection; --latency-ms and --connection-rate change them) while the baseline stays on local
# disk, so the ratio shows what distance costs. Each line then reads
#   <workload> dropgate=<s> baseline=<s> ratio=<r> floor=<s> x_floor=<dropgate/floor>
# where floor is what physics allows: the network's own time (a transfer of S bytes over the
# gateway's C connections per file needs S / (C x rate) + one round trip; small_1000 needs a
# round trip per file plus two, for the mkdir and the client's stat of the folder; ls_10k one
# per page of 2,000 plus the client's stat), and the work that is not the network's, taken
# from the baseline: added to the network time for small_1000 (the client does its work for
# each file between one answer and its next request), the larger of the two elsewhere (they
# overlap). The baseline part is an estimate (it includes OpenSSH's own disk work): where
# dropgate beats OpenSSH on local disk, x_floor can be below 1.
# SFTP_FLAGS (environment) adds client flags to both sides alike, e.g. SFTP_FLAGS="-c aes128-gcm@openssh.com".
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

quick=0
runs=3
only=
profile=plain
distance_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --runs) runs=$2; shift ;;
    --only) only=$2; shift ;;
    --profile) profile=$2; shift ;;
    --latency-ms|--connection-rate) distance_flags+=("$1" "$2"); shift ;;
    *) echo "usage: bench/run.sh [--quick] [--runs N] [--only WORKLOAD] [--profile plain|realistic|wan]" \
         "[--latency-ms N] [--connection-rate BYTES_PER_SEC]" >&2; exit 2 ;;
  esac
  shift
done
# The gateway's connections per file to Dropbox (uploads and downloads), also the floor's C.
transfer_connections=${TRANSFER_CONNECTIONS:-4}
if [ "$quick" = 1 ]; then
  big_mib=64; small_count=100; ls_count=1000; parallel=10; parallel_mib=2
else
  big_mib=1024; small_count=1000; ls_count=10000; parallel=50; parallel_mib=10
fi

# ---- what the benchmark needs -------------------------------------------------------------
if [ ! -x /usr/sbin/sshd ] || ! command -v sftp >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server openssh-client >/dev/null
fi
cargo build --release --quiet
bin=$PWD/target/release/dropgate

work=$(mktemp -d /tmp/dropgate-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for_port() { # port log
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing listens on port $1" >&2; cat "$2" >&2; exit 1
}

# ---- the gateway and its emulator ----------------------------------------------------------
emu_port=$(free_port); dg_port=$(free_port); sshd_port=$(free_port)
emu_url="http://127.0.0.1:$emu_port"
"$bin" keygen "$work/user" >/dev/null
cat > "$work/dropgate.toml" <<TOML
[server]
listen = "127.0.0.1:$dg_port"
host_key = "$work/dg_host_key"
[upload]
spool_dir = "$work/spool"
connections = $transfer_connections
[download]
connections = $transfer_connections
[limits]
# Every benchmark connection comes from 127.0.0.1: the per-address caps must admit 50 at once,
# logged in or not (the baseline sshd gets the same room: MaxStartups below).
max_connections_per_address = 200
max_unauthenticated_connections = 400
max_unauthenticated_per_address = 200
[[accounts]]
name = "bench"
api_url = "$emu_url"
app_key = "emu-demo-app-key"
app_secret = "emu-demo-app-secret"
refresh_token = "emu-refresh-personal-0000000000000000"
[[users]]
name = "$(id -un)"
account = "bench"
root = "/bench"
authorized_keys_file = "$work/user.pub"
TOML
"$bin" emulator --root "$work/dropbox" --listen "127.0.0.1:$emu_port" --page-size 2000 \
  --profile "$profile" "${distance_flags[@]}" 2>"$work/emulator.log" & pids+=($!)
wait_for_port "$emu_port" "$work/emulator.log"
# The profile's models and distance, put back once the benchmark's own files are seeded.
models=$(python3 bench/emulator_client.py realism "$emu_url")
distance=$(python3 bench/emulator_client.py distance "$emu_url")
python3 bench/emulator_client.py realism "$emu_url" '{}' >/dev/null
python3 bench/emulator_client.py distance "$emu_url" '{}' >/dev/null
RUST_LOG=warn "$bin" serve --config "$work/dropgate.toml" 2>"$work/gateway.log" & dg_pid=$!; pids+=($dg_pid)

# ---- the baseline: a private sshd serving internal-sftp on a local folder -----------------
mkdir -p "$work/local" /run/sshd 2>/dev/null || mkdir -p "$work/local"
ssh-keygen -q -t ed25519 -N "" -f "$work/sshd_host_key"
cp "$work/user.pub" "$work/authorized_keys"
cat > "$work/sshd_config" <<CONF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/sshd_host_key
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $work/local
MaxStartups 200:30:400
MaxSessions 200
CONF
/usr/sbin/sshd -f "$work/sshd_config" -E "$work/sshd.log"
for _ in $(seq 100); do [ -f "$work/sshd.pid" ] && break; sleep 0.05; done
pids+=("$(cat "$work/sshd.pid")")

{
  echo "[127.0.0.1]:$dg_port $(cat "$work/dg_host_key.pub")"
  echo "[127.0.0.1]:$sshd_port $(cat "$work/sshd_host_key.pub")"
} > "$work/known_hosts"
wait_for_port "$dg_port" "$work/gateway.log"
wait_for_port "$sshd_port" "$work/sshd.log"

# Same client, same flags, for both sides.
sftp_to() { # port batchfile; a failed transfer ends the benchmark (a timing of it means nothing)
  # shellcheck disable=SC2086
  sftp -q ${SFTP_FLAGS:-} -b "$2" -P "$1" -i "$work/user" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o UserKnownHostsFile="$work/known_hosts" "$(id -un)@127.0.0.1" >/dev/null \
    || { echo "sftp to port $1 failed running $2" >&2; kill -TERM $$; exit 1; }
}
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ---- the files (identical for both sides) --------------------------------------------------
mkdir -p "$work/files/small" "$work/files/par"
head -c "$((big_mib * 1024 * 1024))" /dev/urandom > "$work/files/big.bin"
for i in $(seq -w 1 "$small_count"); do head -c 4096 /dev/urandom > "$work/files/small/s$i.bin"; done
for i in $(seq 1 "$parallel"); do head -c "$((parallel_mib * 1024 * 1024))" /dev/urandom > "$work/files/par/p$i.bin"; done
# ls_10k's folder exists beforehand on both sides, outside the timing.
python3 bench/emulator_client.py seed "$emu_url" emu-static-personal-0000000000000000 /bench/many "$ls_count"
mkdir -p "$work/local/many"
(cd "$work/local/many" && for i in $(seq -w 1 "$ls_count"); do : > "entry$i.txt"; done)
python3 bench/emulator_client.py realism "$emu_url" "$models" >/dev/null
python3 bench/emulator_client.py distance "$emu_url" "$distance" >/dev/null

# ---- workloads: each prints the seconds it took, given the port ----------------------------
cd "$work/files"
put_1g()      { printf 'put big.bin big.bin\n' > b; local t=$(now); sftp_to "$1" b; echo "$(now) - $t" | bc; }
get_1g()      { printf 'get big.bin got.bin\n' > b; rm -f got.bin; local t=$(now); sftp_to "$1" b; local d=$(echo "$(now) - $t" | bc); cmp -s got.bin big.bin || { echo "get_1g: bytes differ" >&2; exit 1; }; echo "$d"; }
# A fresh folder per run ($run is the loop's), so every run creates it and puts 1,000 new files.
small_1000()  { printf 'mkdir small%s\nput small/* small%s/\n' "$run" "$run" > b; local t=$(now); sftp_to "$1" b; echo "$(now) - $t" | bc; }
ls_10k()      { printf 'ls -l many\n' > b; local t=$(now); sftp_to "$1" b; echo "$(now) - $t" | bc; }
parallel_50() {
  local t=$(now) ps=()
  for i in $(seq 1 "$parallel"); do
    printf 'put par/p%s.bin p%s.bin\n' "$i" "$i" > "b$i"
    sftp_to "$1" "b$i" & ps+=($!)
  done
  for p in "${ps[@]}"; do wait "$p" || { echo "a parallel session failed" >&2; kill -TERM $$; exit 1; }; done
  echo "$(now) - $t" | bc
}

# What physics allows for a workload at the distance in force (see the header), given the
# baseline's time for the client's own work.
wan_floor() { # workload baseline_seconds
  local count=0 size=0 network
  case "$1" in
    put_1g|get_1g) size=$((big_mib * 1024 * 1024)) ;;
    parallel_50) size=$((parallel_mib * 1024 * 1024)) ;;
    small_1000) count=$small_count ;;
    ls_10k) count=$ls_count ;;
  esac
  network=$(python3 "$repo/bench/emulator_client.py" floor "$emu_url" "$1" "$count" "$size" \
    "$transfer_connections")
  case "$1" in
    small_1000) echo "$network + $2" | bc -l ;;
    *) echo "if ($network > $2) $network else $2" | bc -l ;;
  esac
}

rss_peak_kb=0
sample_rss() { # samples dropgate's resident memory until killed
  local peak=0 kb
  while kb=$(awk '/VmRSS/ {print $2}' "/proc/$dg_pid/status" 2>/dev/null); do
    [ "${kb:-0}" -gt "$peak" ] && peak=$kb && echo "$peak" > "$work/rss_peak_kb"
    sleep 0.02
  done
}

# get_1g reads what put_1g wrote, so put runs first on each side.
for workload in put_1g get_1g small_1000 ls_10k parallel_50; do
  # get_1g needs put_1g's file on both sides.
  case "$only" in ""|"$workload") ;; get_1g) [ "$workload" = put_1g ] || continue ;; *) continue ;; esac
  dg_times=(); base_times=(); emu_times=(); refusals=()
  for run in $(seq 1 "$runs"); do
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    python3 "$repo/bench/emulator_client.py" reset-stats "$emu_url"
    if [ "$workload" = parallel_50 ]; then sample_rss & sampler=$!; fi
    dg_times+=("$($workload "$dg_port")")
    if [ "$workload" = parallel_50 ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
    emu_times+=("$(python3 "$repo/bench/emulator_client.py" busy-seconds "$emu_url")")
    refusals+=("$(python3 "$repo/bench/emulator_client.py" refusals "$emu_url")")
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    base_times+=("$($workload "$sshd_port")")
  done
  dg=$(printf '%s\n' "${dg_times[@]}" | median)
  base=$(printf '%s\n' "${base_times[@]}" | median)
  emu=$(printf '%s\n' "${emu_times[@]}" | median)
  refused=""
  if [ "$profile" != plain ]; then
    for i in "${!dg_times[@]}"; do [ "${dg_times[$i]}" = "$dg" ] && refused=" refused: ${refusals[$i]}"; done
  fi
  ratio=$(echo "$base / $dg" | bc -l)
  if [ "$profile" = wan ]; then
    floor=$(wan_floor "$workload" "$base")
    printf '%s dropgate=%.3f baseline=%.3f ratio=%.2f floor=%.3f x_floor=%.2f\n' \
      "$workload" "$dg" "$base" "$ratio" "$floor" "$(echo "$dg / $floor" | bc -l)"
  else
    printf '%s dropgate=%.3f baseline=%.3f ratio=%.2f emulator=%.3f%s\n' \
      "$workload" "$dg" "$base" "$ratio" "$emu" "$refused"
  fi
done
[ -z "$only" ] || [ "$only" = parallel_50 ] || exit 0
echo "rss_peak_mb=$(( $(cat "$work/rss_peak_kb" 2>/dev/null || echo 0) / 1024 ))"
