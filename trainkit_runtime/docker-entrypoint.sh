#!/usr/bin/env bash
# Train container entrypoint (runs from the WORKDIR, e.g. /workspace):
#   load .env → require DATASET_ID → mount the bucket (mount-s3.sh) → python setup.py →
#   exec python train.py with the argv from `python -m trainkit_runtime.config_to_args --null`.
#
# .env: `KEY=VALUE` lines (optional `export `, optional matching quotes around VALUE, `#`
# comments, blank lines). Values are never evaluated (no `source`, no eval) and never printed:
# only the key names are. .env WINS over the container environment, as with the platform's
# `source .env`: the platform rewrites DATASET_ID in .env when the dataset changes, and
# `docker start` must then use the new value. Only the keys trainkit_runtime/envfile.py allows
# (DATASET_ID, NPROC_PER_NODE, thread/CUDA/NCCL settings, APP_*) may be set: any other line
# stops the container with one line naming it (OUTPUT_DIR, PYTHONPATH, LD_PRELOAD, ...).
#
# On any failure before train.py starts, the stage and the reason (with the last lines of the
# failing step's stderr) go to $OUTPUT_DIR/failure, and the exit status is not 0. A failure
# file left by an earlier run is removed at start. Re-running the container (`docker start`)
# repeats every step; mount-s3.sh and setup.py are idempotent. OID_ACCESS_TOKEN is removed from
# the environment after the mount: setup.py and train.py use the temporary S3 keys instead.
#
# USER_ID / GROUP_ID (optional; `trainkit run --engine` passes the caller's): when the
# entrypoint runs as root, it mounts as root, then hands $OUTPUT_DIR, $DATASETS_ROOT and the
# WORKDIR to that user and runs setup.py and train.py as that user (setpriv), so the files in
# the output volume belong to the host user who started the run. Unset or 0: everything as root.
set -Eeuo pipefail

readonly _EP_DATETIME_FORMAT="%Y-%m-%dT%H:%M:%S"
readonly _EP_PYTHON="${PYTHON:-python}"
# = trainkit_runtime.values.DATASET_ID_PATTERN (a test keeps them equal)
readonly _EP_DATASET_ID_RE='^[A-Za-z0-9_][A-Za-z0-9_.@+=-]*$'
_ep_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_ep_stage="start"
_ep_tmp=""
_ep_as_user=()
_ep_train=()

log() { printf '%s\n' "$*"; }

timestamp() { date +"$_EP_DATETIME_FORMAT"; }

output_dir() { printf '%s\n' "${OUTPUT_DIR:-/workspace/output}"; }

# json_string TEXT: TEXT as a JSON string literal (control characters other than \n\r\t dropped).
json_string() {
  local text="$1"
  text="${text//\\/\\\\}"
  text="${text//\"/\\\"}"
  text="${text//$'\n'/\\n}"
  text="${text//$'\r'/\\r}"
  text="${text//$'\t'/\\t}"
  text="$(printf '%s' "$text" | tr -d '\000-\037')"
  if command -v iconv >/dev/null 2>&1; then
    text="$(printf '%s' "$text" | iconv -f UTF-8 -t UTF-8 -c 2>/dev/null)" || true
  fi
  printf '"%s"' "$text"
}

# write_failure STAGE REASON [STATUS] [DETAILS_FILE]: $OUTPUT_DIR/failure as one JSON object,
# the same shape trainkit_runtime.lifecycle writes ({"stage", "type", "message", "rank", "time",
# "traceback"}), here with the failing step's last stderr lines as "traceback". A failure file
# the failing step wrote itself (setup.py using the lifecycle) is more precise and is kept.
write_failure() {
  local failure_stage="$1" reason="$2" status="${3:-1}" details="${4:-}" dir tmp stderr_tail=""
  dir="$(output_dir)"
  mkdir -p "$dir" 2>/dev/null || return 0
  [[ -e "$dir/failure" ]] && return 0
  if [[ -n "$details" && -s "$details" ]]; then
    stderr_tail="$(tail -n 20 "$details")"
  fi
  tmp="$dir/.failure.$$"
  {
    printf '{\n'
    printf '  "stage": %s,\n' "$(json_string "$failure_stage")"
    printf '  "type": "EntrypointError",\n'
    printf '  "message": %s,\n' "$(json_string "$reason")"
    printf '  "exit_status": %d,\n' "$status"
    printf '  "rank": 0,\n'
    printf '  "time": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
    printf '  "traceback": %s\n' "$(json_string "$stderr_tail")"
    printf '}\n'
  } >"$tmp" 2>/dev/null || true
  if ! mv -f "$tmp" "$dir/failure" 2>/dev/null; then
    rm -f "$tmp"
  fi
  # Also before the user switch is set up (e.g. no DATASET_ID): the file is the user's.
  if [[ "$(id -u)" == 0 && "${USER_ID:-0}" =~ ^[1-9][0-9]*$ ]]; then
    chown "$USER_ID:${GROUP_ID:-$USER_ID}" "$dir/failure" 2>/dev/null || true
  fi
}

# fail REASON [DETAILS_FILE] [STATUS]: one line on stderr, the failure file, exit STATUS (1).
fail() {
  local status="${3:-1}"
  trap - ERR
  printf 'docker-entrypoint: error (%s): %s\n' "$_ep_stage" "$1" >&2
  write_failure "$_ep_stage" "$1" "$status" "${2:-}"
  cleanup
  exit "$status"
}

on_error() {
  local status="$1" line="$2" command="$3"
  trap - ERR
  fail "command failed with status $status at line $line: $command" "" "$status"
}

cleanup() {
  if [[ -n "$_ep_tmp" ]]; then
    rm -rf "$_ep_tmp"
    _ep_tmp=""
  fi
}

# run_step NAME CMD...: run CMD, its stderr shown live and kept for the failure file.
run_step() {
  local name="$1" status=0 errfile
  shift
  _ep_stage="$name"
  errfile="$_ep_tmp/$name.stderr"
  # stdout stays stdout (fd 3); stderr goes through tee, which the pipeline waits for.
  { "$@" 2>&1 1>&3 3>&- | tee "$errfile" >&2; } 3>&1 || status=${PIPESTATUS[0]}
  if ((status != 0)); then
    fail "'$*' exited with status $status" "$errfile" "$status"
  fi
}

is_denied_key() {
  case "$1" in
    BASH_* | BASHOPTS | SHELLOPTS | ENV | IFS | PS4 | PROMPT_COMMAND | CDPATH | GLOBIGNORE | \
      LD_* | PATH | HOME | PWD | OLDPWD | SHLVL | UID | EUID | PPID | GROUPS | PYTHON | _ep_* | _EP_*)
      return 0
      ;;
  esac
  return 1
}

# load_env_file FILE: export the KEY=VALUE lines of the template's .env; prints the key names
# only. Parsing and the key ALLOWLIST live in trainkit_runtime/envfile.py (the same parser
# `trainkit run` and `trainkit validate` use): a refused line (a key outside the allowlist, such
# as OUTPUT_DIR, PYTHONPATH or LD_PRELOAD; a malformed or overlong line) stops the container with
# one line naming it. The pairs arrive NUL-separated; is_denied_key stays as a second guard.
load_env_file() {
  local _ep_file="$1" _ep_pair _ep_key _ep_pairs=() _ep_loaded=() _ep_reason
  [[ -e "$_ep_file" || -L "$_ep_file" ]] || return 0
  if ! "$_EP_PYTHON" -m trainkit_runtime.envfile "$_ep_file" >"$_ep_tmp/env.pairs" 2>"$_ep_tmp/env.err"; then
    _ep_reason="$(head -c 2000 "$_ep_tmp/env.err" | head -n 1)"
    fail "${_ep_reason:-$_ep_file cannot be read}"
  fi
  mapfile -d '' -t _ep_pairs <"$_ep_tmp/env.pairs"
  for _ep_pair in "${_ep_pairs[@]}"; do
    _ep_key="${_ep_pair%%=*}"
    if [[ ! "$_ep_key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || is_denied_key "$_ep_key"; then
      fail "$_ep_file sets $_ep_key, which .env may not change"
    fi
    export "${_ep_pair?}"
    _ep_loaded+=("$_ep_key")
  done
  if ((${#_ep_loaded[@]})); then
    log "Loaded from $_ep_file: ${_ep_loaded[*]}"
  fi
}

find_mount_script() {
  local candidate
  for candidate in "$_ep_dir/mount-s3.sh" /mount-s3.sh "$PWD/mount-s3.sh"; do
    if [[ -f "$candidate" ]]; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

check_dataset_id() {
  _ep_stage="config"
  [[ -n "${DATASET_ID:-}" ]] || fail "DATASET_ID is not set (neither in the environment nor in .env)"
  if [[ ! "$DATASET_ID" =~ $_EP_DATASET_ID_RE || ${#DATASET_ID} -gt 128 ]]; then
    fail "DATASET_ID must be a plain name of at most 128 characters (letters, digits, '_', '.', '@', '+', '=', '-'), got an invalid value"
  fi
}

mount_dataset() {
  local mount_script dataset_dir
  _ep_stage="mount"
  mount_script="$(find_mount_script)" || fail "mount-s3.sh not found next to $0 or at /mount-s3.sh"
  run_step mount bash "$mount_script"
  dataset_dir="${MINIO_ROOT:-/minio}/datasets/${DATASET_ID}"
  [[ -d "$dataset_dir" ]] || fail "dataset folder $dataset_dir does not exist (DATASET_ID=${DATASET_ID})"
  log "Dataset: $dataset_dir"
}

# prepare_user_switch: with USER_ID set (not 0) and running as root, make the run's writable
# places the user's, point HOME and the S3 credentials file somewhere the user can read, and
# fill _ep_as_user with the setpriv prefix for setup.py and train.py. Before the mount, so
# mount-s3.sh writes the credentials where the user will look for them.
prepare_user_switch() {
  local home
  _ep_stage="user"
  [[ -n "${USER_ID:-}" && "${USER_ID}" != 0 && "$(id -u)" == 0 ]] || return 0
  GROUP_ID="${GROUP_ID:-$USER_ID}"
  if [[ ! "$USER_ID" =~ ^[0-9]+$ || ! "$GROUP_ID" =~ ^[0-9]+$ ]]; then
    fail "USER_ID and GROUP_ID must be numeric ids, got USER_ID='$USER_ID' GROUP_ID='$GROUP_ID'"
  fi
  if ! command -v setpriv >/dev/null 2>&1; then
    log "docker-entrypoint: warning: setpriv (util-linux) not found; running as root" >&2
    return 0
  fi
  home="${TMPDIR:-/tmp}/home-$USER_ID"
  mkdir -p "$home"
  chown "$USER_ID:$GROUP_ID" "$home"
  export AWS_SHARED_CREDENTIALS_FILE="${AWS_SHARED_CREDENTIALS_FILE:-$home/.aws/credentials}"
  # s3fs (run as root) would show the bucket's objects as root's: show them as the user's.
  export S3FS_OPTIONS="${S3FS_OPTIONS:+$S3FS_OPTIONS,}uid=$USER_ID,gid=$GROUP_ID"
  _ep_as_user=(setpriv "--reuid=$USER_ID" "--regid=$GROUP_ID" --clear-groups --
    env "HOME=$home" USER=trainkit LOGNAME=trainkit)
}

# own_writable_places: after the mount, what setup.py and train.py write belongs to the user:
# $OUTPUT_DIR and $DATASETS_ROOT (recursively, only what is not the user's yet: cheap when
# restarted), the WORKDIR itself and its files (finalize_config rewrites train_config.json),
# and the S3 credentials file mount-s3.sh wrote.
own_writable_places() {
  local owner dir output
  ((${#_ep_as_user[@]})) || return 0
  owner="$USER_ID:$GROUP_ID"
  _ep_stage="user"
  output="$(output_dir)"
  for dir in "$output" "${DATASETS_ROOT:-/datasets}"; do
    mkdir -p "$dir"
    find "$dir" \( ! -user "$USER_ID" -o ! -group "$GROUP_ID" \) -exec chown -h "$owner" {} +
  done
  find "$PWD" -maxdepth 1 ! -path "$output" -exec chown -h "$owner" {} +
  if [[ -f "$AWS_SHARED_CREDENTIALS_FILE" ]]; then
    chown "$owner" "$AWS_SHARED_CREDENTIALS_FILE" "$(dirname "$AWS_SHARED_CREDENTIALS_FILE")"
  fi
  log "Running setup.py and train.py as uid $USER_ID, gid $GROUP_ID"
}

show_environment() {
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    nvidia-smi -L
  fi
  if [[ -s export_config.json ]]; then
    log "ONNX export configured by export_config.json"
  fi
}

# train_command: how train.py starts, in _ep_train. NPROC_PER_NODE (or PET_NPROC_PER_NODE, set
# by a Kubeflow PyTorchJob with nprocPerNode; torchrun reads the other PET_* variables, e.g. the
# number of nodes and the rendezvous, itself) other than 1 starts that many processes per node
# with torchrun (--standalone when no multi-node setting is present); otherwise one process,
# which still joins a cluster launcher's process group (MASTER_ADDR, WORLD_SIZE, RANK) through
# lifecycle.trainer_kwargs (KubeflowEnvironment).
train_command() {
  local nproc="${NPROC_PER_NODE:-${PET_NPROC_PER_NODE:-1}}"
  if [[ ! "$nproc" =~ ^([1-9][0-9]*|auto|cpu|gpu)$ ]]; then
    fail "NPROC_PER_NODE must be a positive integer, auto, cpu or gpu, got an invalid value"
  fi
  _ep_train=("$_EP_PYTHON")
  [[ "$nproc" == 1 ]] && return 0
  _ep_train+=(-m torch.distributed.run --nproc_per_node "$nproc")
  if [[ -z "${PET_NNODES:-}${PET_RDZV_ENDPOINT:-}${PET_MASTER_ADDR:-}" ]]; then
    _ep_train+=(--standalone)
  fi
}

main() {
  _ep_tmp="$(mktemp -d)"
  trap cleanup EXIT
  trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR
  log "Working directory: $PWD"

  _ep_stage="env"
  rm -f "$(output_dir)/failure" # left by an earlier run of this container
  load_env_file .env
  check_dataset_id
  train_command

  prepare_user_switch
  log "Mount started: $(timestamp)"
  mount_dataset
  log "Mount ended: $(timestamp)"
  own_writable_places
  # The OIDC token was only needed for the STS exchange; setup.py/train.py (and whatever they
  # log or report, e.g. an experiment tracker dumping the environment) never see it.
  unset OID_ACCESS_TOKEN
  show_environment

  log "Setup started: $(timestamp)"
  run_step setup "${_ep_as_user[@]}" "$_EP_PYTHON" setup.py
  log "Setup ended: $(timestamp)"
  if [[ -f train_config.json ]]; then
    log "train_config.json:"
    "$_EP_PYTHON" -m json.tool train_config.json || true
  fi

  run_step args "${_ep_as_user[@]}" "$_EP_PYTHON" -m trainkit_runtime.config_to_args --null >"$_ep_tmp/args"
  local args=()
  mapfile -d '' -t args <"$_ep_tmp/args"

  _ep_stage="train"
  log "Training started: $(timestamp) (${_ep_train[*]} train.py with ${#args[@]} arguments)"
  cleanup
  trap - ERR EXIT
  exec "${_ep_as_user[@]}" "${_ep_train[@]}" train.py "${args[@]}"
}

main "$@"
