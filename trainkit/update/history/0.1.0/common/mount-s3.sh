#!/usr/bin/env bash
# Mount the platform's S3 bucket (MinIO) at $MINIO_ROOT with s3fs, after exchanging the OIDC
# access token for temporary S3 keys (STS AssumeRoleWithWebIdentity, s3_credentials.py).
#
#   mount-s3.sh                      # everything from the environment (preferred)
#   mount-s3.sh -s HOST -b BUCKET -m MOUNTPOINT [-t TOKEN]   # the platform script's options
#
# Environment: S3_HOST, S3_BUCKET_NAME, OID_ACCESS_TOKEN, MINIO_ROOT (default /minio),
# S3_ROLE_ARN (sent only when set), S3_INSECURE=1 (skip TLS verification: not recommended),
# S3_REGION, S3FS_CACHE_DIR (local file cache, default ${TMPDIR:-/tmp}/s3fs-cache),
# S3FS_STAT_CACHE_SIZE (entries, default 500000), S3FS_STAT_CACHE_EXPIRE (s, default 604800),
# S3FS_PARALLEL_COUNT (8), S3FS_MULTIREQ_MAX (20), S3FS_ENSURE_DISKFREE (MB kept free, 1024),
# S3FS_MOUNT_TIMEOUT (s, 30), S3FS_DBGLEVEL (warn), S3FS_OPTIONS (extra `-o` options, comma
# separated), AWS_SHARED_CREDENTIALS_FILE (where profile `dataset` is written), AWS_CA_BUNDLE
# (a private CA for S3_HOST; passed to s3fs as CURL_CA_BUNDLE).
#
# -t is accepted for compatibility only: a token on a command line is readable by every user
# in `ps`. It is moved to the environment at once, but this process's argv still shows it, so
# pass OID_ACCESS_TOKEN in the environment instead (docker-entrypoint.sh does).
#
# Skips the mount when $MINIO_ROOT/datasets already exists and is not empty (a mocked folder
# for a local run) or when $MINIO_ROOT is already an s3fs mount (`docker start` again).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'mount-s3: %s\n' "$*"; }
die() {
  printf 'mount-s3: error: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<EOF
Usage: $0 [-s S3_HOST] [-b S3_BUCKET_NAME] [-m MOUNTPOINT] [-t OID_ACCESS_TOKEN]
Options default to the environment variables of the same names (MOUNTPOINT: MINIO_ROOT,
default /minio). Prefer OID_ACCESS_TOKEN in the environment: -t shows the token in 'ps'.
EOF
}

parse_args() {
  local opt
  OPTIND=1
  while getopts ":t:s:b:m:h" opt; do
    case "$opt" in
      t)
        export OID_ACCESS_TOKEN="$OPTARG"
        log "warning: -t puts the token on the command line (visible in 'ps'); pass OID_ACCESS_TOKEN in the environment instead"
        ;;
      s) export S3_HOST="$OPTARG" ;;
      b) export S3_BUCKET_NAME="$OPTARG" ;;
      m) export MINIO_ROOT="$OPTARG" ;;
      h)
        usage
        exit 0
        ;;
      :)
        usage >&2
        die "option -$OPTARG needs an argument"
        ;;
      *)
        usage >&2
        die "option -$OPTARG is not a valid option"
        ;;
    esac
  done
  shift $((OPTIND - 1))
  (($# == 0)) || die "unexpected arguments: $*"
}

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3 python; do
    if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  die "no python interpreter found (needed for the STS exchange)"
}

find_helper() {
  local dir
  for dir in "$script_dir" "$PWD" /workspace; do
    if [[ -f "$dir/s3_credentials.py" ]]; then
      printf '%s\n' "$dir/s3_credentials.py"
      return 0
    fi
  done
  die "s3_credentials.py not found next to $0, in $PWD or in /workspace"
}

# The fstype of the mount whose mount point is exactly $1 (a canonical path), or nothing.
mount_fstype() {
  local target="$1" mountpoint fstype
  while read -r _ mountpoint fstype _; do
    # /proc/self/mounts escapes space, tab, newline and backslash as \ooo octal.
    mountpoint="$(printf '%b' "${mountpoint//\\/\\0}")"
    if [[ "$mountpoint" == "$target" ]]; then
      printf '%s\n' "$fstype"
    fi
  done </proc/self/mounts | tail -n 1
}

is_empty_dir() {
  [[ -z "$(find "$1" -mindepth 1 -maxdepth 1 -print -quit 2>/dev/null)" ]]
}

is_mocked_folder() {
  local datasets="$1/datasets"
  [[ -d "$datasets" ]] && ! is_empty_dir "$datasets"
}

allow_other_permitted() {
  [[ "$(id -u)" -eq 0 ]] && return 0
  [[ -r /etc/fuse.conf ]] && grep -qE '^[[:space:]]*user_allow_other[[:space:]]*$' /etc/fuse.conf
}

# Fills the global array S3FS_OPTS.
build_s3fs_options() {
  local cache_dir="$1" log_file="$2"
  S3FS_OPTS=(
    -o "url=${S3_HOST}"
    -o use_path_request_style
    -o use_session_token
    -o "use_cache=${cache_dir}"
    -o "ensure_diskfree=${S3FS_ENSURE_DISKFREE:-1024}"
    -o "max_stat_cache_size=${S3FS_STAT_CACHE_SIZE:-500000}"
    -o "stat_cache_expire=${S3FS_STAT_CACHE_EXPIRE:-604800}"
    -o enable_noobj_cache
    -o "parallel_count=${S3FS_PARALLEL_COUNT:-8}"
    -o "multireq_max=${S3FS_MULTIREQ_MAX:-20}"
    -o multipart_size=128
    -o "dbglevel=${S3FS_DBGLEVEL:-warn}"
    -o "logfile=${log_file}"
  )
  if [[ -n "${S3_REGION:-}" ]]; then
    S3FS_OPTS+=(-o "endpoint=${S3_REGION}")
  fi
  if [[ "${S3_INSECURE:-}" =~ ^(1|true|yes|on)$ ]]; then
    log "WARNING: S3_INSECURE is set: s3fs will NOT verify the TLS certificate of ${S3_HOST}"
    S3FS_OPTS+=(-o no_check_certificate -o ssl_verify_hostname=0)
  fi
  if allow_other_permitted; then
    S3FS_OPTS+=(-o allow_other)
  fi
  if [[ -n "${S3FS_OPTIONS:-}" ]]; then
    S3FS_OPTS+=(-o "${S3FS_OPTIONS}")
  fi
}

show_s3fs_errors() {
  local stderr_file="$1" log_file="$2"
  {
    echo "mount-s3: s3fs said:"
    if [[ -s "$stderr_file" ]]; then tail -n 20 "$stderr_file"; fi
    if [[ -s "$log_file" ]]; then tail -n 20 "$log_file"; fi
    if [[ ! -s "$stderr_file" && ! -s "$log_file" ]]; then echo "(nothing)"; fi
  } >&2
}

wait_for_mount() {
  local target="$1" timeout="$2" pid="$3" log_file="$4" deadline
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if [[ "$(mount_fstype "$target")" == "fuse.s3fs" ]]; then
      return 0
    fi
    # s3fs 1.90 checks bucket and keys after daemonizing and logs why it gives up.
    if grep -qE '\[CRT\]|s3fs_exit_fuseloop' "$log_file" 2>/dev/null; then
      return 1
    fi
    # s3fs daemonizes once the mount is set up; a foreground exit before that is a failure.
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      if wait "$pid"; then
        [[ "$(mount_fstype "$target")" == "fuse.s3fs" ]] && return 0
      else
        return 1
      fi
      pid=""
    fi
    sleep 0.2
  done
  return 1
}

# Show why s3fs failed, remove what is left of the mount, exit 1.
mount_failed() {
  local target="$1" pid="$2" timeout="$3" stderr_file="$4" log_file="$5"
  for _ in {1..10}; do # give a dying s3fs a moment to log its reason
    grep -qE '\[(CRT|ERR)\]' "$log_file" 2>/dev/null && break
    sleep 0.2
  done
  show_s3fs_errors "$stderr_file" "$log_file"
  if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  if [[ -n "$(mount_fstype "$target")" ]]; then
    fusermount -u "$target" 2>/dev/null || umount "$target" 2>/dev/null ||
      umount -l "$target" 2>/dev/null || true
  fi
  die "s3fs could not mount bucket '${S3_BUCKET_NAME}' from ${S3_HOST} at $target (timeout ${timeout}s; s3fs's reason above)"
}

main() {
  parse_args "$@"

  local mountpoint="${MINIO_ROOT:-/minio}" target
  mkdir -p "$mountpoint"
  target="$(cd "$mountpoint" && pwd -P)"
  if [[ "$(mount_fstype "$target")" == "fuse.s3fs" ]]; then
    log "$target is already an s3fs mount: keeping it"
    return 0
  fi
  if is_mocked_folder "$target"; then
    log "$target/datasets already holds data (mocked folder): not mounting S3"
    return 0
  fi

  local missing=() name
  for name in S3_HOST S3_BUCKET_NAME OID_ACCESS_TOKEN; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || die "not set: ${missing[*]} (needed to mount the bucket at $target)"
  [[ "$S3_HOST" == *://* ]] || S3_HOST="https://${S3_HOST}"
  S3_HOST="${S3_HOST%/}"
  # One setting for a private CA: AWS_CA_BUNDLE (STS helper, boto3) also feeds s3fs's curl.
  if [[ -n "${AWS_CA_BUNDLE:-}" && -z "${CURL_CA_BUNDLE:-}" ]]; then
    export CURL_CA_BUNDLE="$AWS_CA_BUNDLE"
  fi
  command -v s3fs >/dev/null 2>&1 || die "s3fs is not installed (Debian package s3fs)"
  if ! is_empty_dir "$target"; then
    die "mount point $target is not empty (and holds no datasets/ folder to use instead)"
  fi

  local python helper
  python="$(find_python)"
  helper="$(find_helper)"
  "$python" "$helper" assume || die "could not get S3 credentials for bucket '${S3_BUCKET_NAME}' from ${S3_HOST} (see above)"

  local state_dir cache_dir log_file stderr_file
  state_dir="${S3FS_CACHE_DIR:-${TMPDIR:-/tmp}/s3fs-cache}"
  cache_dir="$state_dir/cache"
  log_file="$state_dir/s3fs.log"
  stderr_file="$state_dir/s3fs.stderr"
  (umask 077 && mkdir -p "$cache_dir")
  : >"$stderr_file"
  : >"$log_file"
  chmod 600 "$stderr_file" "$log_file"

  build_s3fs_options "$cache_dir" "$log_file"

  # The keys reach s3fs through its environment only (see s3_credentials.py `exec`).
  "$python" "$helper" exec -- s3fs "$S3_BUCKET_NAME" "$target" "${S3FS_OPTS[@]}" \
    </dev/null >>"$stderr_file" 2>&1 &
  local pid=$!

  local timeout="${S3FS_MOUNT_TIMEOUT:-30}"
  # Mounted is not enough: s3fs 1.90 checks bucket and keys only after mounting, so a
  # listing of the root (one ListObjects request) proves the mount is live.
  if ! wait_for_mount "$target" "$timeout" "$pid" "$log_file" ||
    ! timeout "$timeout" ls "$target" >/dev/null 2>>"$stderr_file"; then
    mount_failed "$target" "$pid" "$timeout" "$stderr_file" "$log_file"
  fi
  log "Mounted bucket '${S3_BUCKET_NAME}' from '${S3_HOST}' at '$target' (cache: $cache_dir)."
}

main "$@"
