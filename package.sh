#!/usr/bin/env bash
# Package one architecture for upload to the platform:
#   ./package.sh provider category architecture [--out FILE] [--templates DIR] [--common DIR]
# writes train-container-publish.zip (in the current directory unless --out), validated.
# A thin wrapper over `trainkit package` (trainkit/package.py); works from any directory.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: package.sh PROVIDER CATEGORY ARCHITECTURE [--out FILE] [--templates DIR] [--common DIR]

Builds train-container-publish.zip holding the runtime files and
templates/PROVIDER/CATEGORY/ARCHITECTURE/{config,docker}, validates it, and only then
replaces FILE (default: ./train-container-publish.zip).
Names: a letter, then letters, digits, '_' or '-' (no spaces).
USAGE
}

main() {
  local repo python rc=0
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
  python=python3
  if [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
  fi
  PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$python" -m trainkit package "$@" || rc=$?
  if ((rc == 2)); then
    usage
  fi
  return "$rc"
}

main "$@"
