#!/usr/bin/env bash
# Package one architecture for upload to the platform:
#   ./package.sh provider category architecture [--out FILE] [--templates DIR]
# writes train-container-publish.zip (in the current directory unless --out), validated, from
# ./templates/provider/category/architecture (or --templates DIR). A thin wrapper over
# `trainkit package` (trainkit/package.py): it uses the `trainkit` on PATH, else this
# checkout's .venv ($TRAINKIT_VENV), so it works from any directory.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: package.sh PROVIDER CATEGORY ARCHITECTURE [--out FILE] [--templates DIR]

Builds train-container-publish.zip holding templates/PROVIDER/CATEGORY/ARCHITECTURE/{config,docker}
(docker/ with trainkit's runtime added) and the files the platform requires at the root,
validates it, and only then replaces FILE (default: ./train-container-publish.zip).
--templates DIR: where PROVIDER/... lives (default: ./templates).
Names: a letter, then letters, digits, '_' or '-' (no spaces).
USAGE
}

main() {
  local repo rc=0
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  if (($# >= 1)) && [[ "$1" == "-h" || "$1" == "--help" ]]; then
    usage
    return 0
  fi
  if (($# < 3)); then
    usage
    return 2
  fi
  local name
  for name in "$1" "$2" "$3"; do
    if [[ -z "$name" || "$name" == -* ]]; then
      usage
      return 2
    fi
  done
  local command=()
  if command -v trainkit >/dev/null 2>&1; then
    command=(trainkit)
  elif [[ -x "${TRAINKIT_VENV:-$repo/.venv}/bin/trainkit" ]]; then
    command=("${TRAINKIT_VENV:-$repo/.venv}/bin/trainkit")
  else
    echo "package.sh: trainkit is not installed (pip install trainkit, or run scripts/bootstrap)" >&2
    return 1
  fi
  "${command[@]}" package "$@" || rc=$?
  if ((rc == 2)); then
    usage
  fi
  return "$rc"
}

main "$@"
