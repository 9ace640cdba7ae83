# Shell functions that scripts/test and scripts/run share. Sourced, not run.
# The caller sets SCRIPT_NAME and REPO_ROOT, and runs under `set -euo pipefail`.

APT_UPDATED=""

# Messages go to stderr. `|| true`: a closed stderr (say a reader that went
# away on Ctrl-C) must not stop a cleanup half-way.
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2 || true; }
die() { log "error: $*"; exit 1; }
step() { printf '\n==> %s\n' "$*" >&2; }

# Run a command as root: directly when we are root (CI), else via sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

apt_install() {
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# ensure_node MAJOR: Node.js and npm, at least version MAJOR, from Debian's
# packages when the machine has none.
ensure_node() {
    local wanted=$1 major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "Node.js or npm not found; installing them"
        apt_install nodejs npm
    fi
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [ "$major" -ge "$wanted" ] ||
        die "Node.js $wanted or newer is needed, found $(node --version); install a newer one (nodejs.org or your distribution's backports)"
}

PLAYGROUND="$REPO_ROOT/playground"

# `npm ci` when node_modules is missing or older than the lock file.
ensure_playground_deps() {
    if [ ! "$PLAYGROUND/node_modules/.package-lock.json" -nt "$PLAYGROUND/package-lock.json" ]; then
        log "installing the web client's packages (npm ci)"
        npm --prefix "$PLAYGROUND" ci --no-audit --no-fund
    fi
}

# Whether anything the web client is built from is newer than its build.
playground_stale() {
    local built="$PLAYGROUND/dist/index.html"
    [ ! -f "$built" ] || [ -n "$(find "$PLAYGROUND/src" "$PLAYGROUND"/*.html "$PLAYGROUND"/*.ts \
        "$PLAYGROUND/package-lock.json" "$REPO_ROOT/schema.graphql" \
        -newer "$built" -not -path "$PLAYGROUND/src/gql/*" -print -quit)" ]
}

# Types from schema.graphql (GraphQL Code Generator), `tsc --noEmit`, then
# the Vite build into playground/dist, which the server serves.
build_playground() {
    ensure_playground_deps
    npm --prefix "$PLAYGROUND" run build
}
