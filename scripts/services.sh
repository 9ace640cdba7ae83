# The services the tests and the benches run against: redis-server, a
# Redis Cluster and SecantusDB (a MongoDB-wire-compatible server), each
# private and throw-away, on free ports of 127.0.0.1. Sourced, not run,
# after scripts/common.sh. The caller sets REPO_ROOT, and TMP_ROOT (a
# directory of its own) before it starts any; `stop_services` stops what
# was started.

VENV_DIR="$REPO_ROOT/.venv"
# Pinned: SecantusDB is a beta, and a new release could change behaviour
# under the tests. Bumping it needs `rm -rf .venv` on existing checkouts.
SECANTUSDB_REQUIREMENT="SecantusDB==0.7.0b3"

REDIS_READY_TIMEOUT=20
SECANTUSD_READY_TIMEOUT=60

# Set once the services exist, so that stop_services knows what to undo.
REDIS_PID=""
SECANTUSD_PID=""
CLUSTER_PIDS=()

# --- installing what is missing ---------------------------------------------

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "redis-server not found; installing it"
        apt_install redis-server
    fi
}

# Create .venv. On Debian, `python3 -m venv` fails when the python3-venv
# package (ensurepip) is missing, leaving a venv without pip behind; --clear
# lets the retry start over in the same directory.
create_venv() {
    log "creating $VENV_DIR"
    if ! python3 -m venv --clear "$VENV_DIR"; then
        log "python3 -m venv failed; installing python3-venv and retrying"
        apt_install python3-venv
        python3 -m venv --clear "$VENV_DIR"
    fi
}

ensure_secantusdb() {
    if [ -x "$VENV_DIR/bin/secantusd-py" ]; then
        return
    fi
    log "SecantusDB not found in $VENV_DIR; installing $SECANTUSDB_REQUIREMENT"
    if [ ! -x "$VENV_DIR/bin/pip" ]; then
        create_venv
    fi
    "$VENV_DIR/bin/python" -m pip install --quiet "$SECANTUSDB_REQUIREMENT"
    [ -x "$VENV_DIR/bin/secantusd-py" ] ||
        die "pip installed $SECANTUSDB_REQUIREMENT but $VENV_DIR/bin/secantusd-py is missing"
}

# --- the services -------------------------------------------------------------

# Print N distinct free TCP ports of 127.0.0.1, one a line, each with its
# cluster bus port (10000 above it) free too. All sockets are held open
# together so the kernel cannot hand out the same port twice.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
wanted, held, ports = int(sys.argv[1]), [], []
while len(ports) < wanted:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    port = s.getsockname()[1]
    if port + 10000 > 65535:
        continue
    bus = socket.socket()
    try:
        bus.bind(("127.0.0.1", port + 10000))
    except OSError:
        continue
    held.append(bus)
    ports.append(port)
print("\n".join(map(str, ports)))
EOF
}

start_redis() {
    local port=$1 dir="$TMP_ROOT/redis"
    mkdir -p "$dir"
    log "starting redis-server on port $port (log: $TMP_ROOT/redis.log)"
    # Nothing is persisted: the tests want a clean, fast, disposable store.
    redis-server --port "$port" --bind 127.0.0.1 --daemonize no \
        --save "" --appendonly no --dir "$dir" \
        >"$TMP_ROOT/redis.log" 2>&1 &
    REDIS_PID=$!
}

# A Redis Cluster of six nodes: each fails over to its replica within
# about two seconds of its master's death (--cluster-node-timeout).
start_redis_cluster() {
    local port dir
    for port in "$@"; do
        dir="$TMP_ROOT/cluster-$port"
        mkdir -p "$dir"
        redis-server --port "$port" --bind 127.0.0.1 --daemonize no \
            --save "" --appendonly no --dir "$dir" \
            --cluster-enabled yes --cluster-node-timeout 1000 \
            --repl-diskless-sync-delay 0 \
            --cluster-config-file nodes.conf \
            >"$dir/redis.log" 2>&1 &
        CLUSTER_PIDS+=("$!")
    done
    local i
    for i in "${!CLUSTER_PIDS[@]}"; do
        port="${*:i+1:1}"
        wait_ready "cluster node $port" "${CLUSTER_PIDS[$i]}" "$REDIS_READY_TIMEOUT" \
            "$TMP_ROOT/cluster-$port/redis.log" redis_answers "$port"
    done
    local nodes=()
    for port in "$@"; do
        nodes+=("127.0.0.1:$port")
    done
    log "joining ${nodes[*]} into a cluster"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$TMP_ROOT/cluster-create.log" 2>&1 || {
        cat "$TMP_ROOT/cluster-create.log" >&2
        die "redis-cli --cluster create failed"
    }
    wait_ready "the Redis Cluster" "${CLUSTER_PIDS[0]}" "$REDIS_READY_TIMEOUT" \
        "$TMP_ROOT/cluster-create.log" cluster_serves "$@"
}

# Every node says every slot is served.
cluster_serves() {
    local port
    for port in "$@"; do
        redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null |
            grep -q "cluster_state:ok" || return 1
    done
}

start_secantusd() {
    local port=$1
    log "starting secantusd-py on port $port (log: $TMP_ROOT/secantusd.log)"
    # An explicit (empty) --config turns off secantusd's auto-discovery of
    # ./secantusd.toml, ~/.secantus/... and /etc/secantus/..., so no stray
    # config on the machine changes the test server. --storage-path :memory:
    # keeps its data in a temp dir it deletes on shutdown; TMPDIR puts that
    # temp dir inside ours, so it goes away even if secantusd dies hard.
    : >"$TMP_ROOT/secantusd.toml"
    mkdir -p "$TMP_ROOT/secantusd-tmp"
    TMPDIR="$TMP_ROOT/secantusd-tmp" "$VENV_DIR/bin/secantusd-py" \
        --config "$TMP_ROOT/secantusd.toml" \
        --host 127.0.0.1 --port "$port" --storage-path :memory: \
        >"$TMP_ROOT/secantusd.log" 2>&1 &
    SECANTUSD_PID=$!
}

redis_answers() {
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
}

# A real `ping` command through pymongo (a dependency of SecantusDB, so it
# is in the venv); a bare TCP connect if pymongo is ever not there.
secantusd_answers() {
    "$VENV_DIR/bin/python" - "$1" 2>/dev/null <<'EOF'
import socket, sys
port = int(sys.argv[1])
try:
    import pymongo
except ImportError:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    sys.exit(0)
client = pymongo.MongoClient(
    f"mongodb://127.0.0.1:{port}/?directConnection=true",
    serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
client.admin.command("ping")
EOF
}

# wait_ready NAME PID TIMEOUT LOGFILE PROBE [ARGS...]
# Poll PROBE until it succeeds. Fail early, with the service's log, if the
# service exits or does not answer within TIMEOUT seconds.
wait_ready() {
    local name=$1 pid=$2 timeout=$3 logfile=$4
    shift 4
    local deadline=$((SECONDS + timeout))
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready; its log:"
            cat "$logfile" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name did not answer within ${timeout}s; its log:"
            cat "$logfile" >&2
            exit 1
        fi
        sleep 0.2
    done
    log "$name is ready"
}

# Ask a service to stop, give it 10 s, then kill it. Only ever our own PIDs.
stop_service() {
    local name=$1 pid=$2
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

stop_services() {
    stop_service redis-server "$REDIS_PID"
    local pid
    for pid in "${CLUSTER_PIDS[@]}"; do
        stop_service "cluster node" "$pid"
    done
    stop_service secantusd-py "$SECANTUSD_PID"
}

# start_services REDIS_PORT MONGO_PORT CLUSTER_PORT x6: all three, ready.
start_services() {
    local redis_port=$1 mongo_port=$2
    shift 2
    start_redis "$redis_port"
    start_secantusd "$mongo_port"
    start_redis_cluster "$@"
    wait_ready redis-server "$REDIS_PID" "$REDIS_READY_TIMEOUT" \
        "$TMP_ROOT/redis.log" redis_answers "$redis_port"
    wait_secantusd "$mongo_port"
}

# wait_secantusd PORT: until the secantusd-py that start_secantusd started
# answers there.
wait_secantusd() {
    wait_ready secantusd-py "$SECANTUSD_PID" "$SECANTUSD_READY_TIMEOUT" \
        "$TMP_ROOT/secantusd.log" secantusd_answers "$1"
}

# seed_urls PORT...: the redis:// URLs of cluster nodes, comma-separated, as
# CHATROOM_REDIS_URL takes a cluster's seeds.
seed_urls() {
    local port seeds=()
    for port in "$@"; do
        seeds+=("redis://127.0.0.1:$port/")
    done
    (IFS=,; echo "${seeds[*]}")
}
