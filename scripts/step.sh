# Sourced by the set-up scripts: `step "what" command args...` prints one line for people and keeps the
# command's own output (pip, apt, the compiler) in $LOG, showing it only when the command fails.
LOG=${LOG:-.cache/setup.log}
mkdir -p "$(dirname "$LOG")"
step() {
  local what=$1
  shift
  echo "[setup] $what"
  if ! "$@" >"$LOG.step" 2>&1; then
    cat "$LOG.step" >&2
    echo "[setup] failed: $what (its output is above and in $LOG)" >&2
    cat "$LOG.step" >>"$LOG"
    return 1
  fi
  cat "$LOG.step" >>"$LOG"
}
