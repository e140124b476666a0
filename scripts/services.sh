#!/usr/bin/env bash
# Real services for tests, benchmarks and the distributed mode, on this machine only:
#   Apache Kafka 4.4.0 by default (KRaft, single node: broker+controller) on 127.0.0.1:9092,
#   Redis (Debian's redis-server) on 127.0.0.1:6379,
#   and the third-party clients the tests use: nc (netcat-openbsd), kcat, redis-cli, ip/tc
#   (iproute2) and nft (nftables) for the kernel actuator, chromium (the dashboard's browser
#   test), tmux, rsyslogd with omkafka (rsyslog, rsyslog-kafka) and pyzmq.
#
# usage: scripts/services.sh up|down|status|reset|clients|libs|restart-kafka|stop-kafka|start-kafka [kafka|redis]
# Idempotent. State lives under .services/ (git-ignored). Kafka jars come from Maven Central
# with mvn (scripts/kafka-pom.xml) into .services/kafka-libs-<version>, once per version;
# `libs` prints that folder (the reliability suite's private brokers reuse it).
#
# Env: KAFKA_VERSION (4.4.0; any 4.x, or 3.9.x for the last ZooKeeper-era line, which logs with
#      reload4j where 4.x logs with log4j2), VIRGO_SERVICES_DIR (default .services),
#      KAFKA_PORT (9092; the KRaft controller takes KAFKA_PORT+1), REDIS_PORT (6379),
#      KAFKA_HEAP (-Xmx512m -Xms256m), SERVICES_TIMEOUT seconds (90), KAFKA_LIBS (jar folder).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${VIRGO_SERVICES_DIR:-$root/.services}
kafka_port=${KAFKA_PORT:-9092}
controller_port=$((kafka_port + 1))
redis_port=${REDIS_PORT:-6379}
timeout=${SERVICES_TIMEOUT:-90}
kafka_version=${KAFKA_VERSION:-4.4.0}
case "$kafka_version" in
  3.9.*) kafka_major=3 ;;
  4.*) kafka_major=4 ;;
  *) printf '[services] ERROR: KAFKA_VERSION=%s: use a 4.x release (default 4.4.0) or 3.9.x\n' "$kafka_version" >&2; exit 1 ;;
esac
# KAFKA_LIBS: reuse jars fetched elsewhere (a test-owned private broker starts in seconds)
libs=${KAFKA_LIBS:-$dir/kafka-libs-$kafka_version}
mkdir -p "$dir"

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  # $@: debian package names; installs only what is missing.
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "installing ${missing[*]} with apt-get"
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$dir/apt.log" 2>&1; then
    $sudo apt-get update -qq >>"$dir/apt.log" 2>&1 || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >>"$dir/apt.log" 2>&1 \
      || die "apt-get install ${missing[*]} failed; see $dir/apt.log"
  fi
}

clients_up() {
  apt_install netcat-openbsd kcat redis-tools
  for c in nc kcat redis-cli; do command -v "$c" >/dev/null || die "$c missing after install"; done
  # the kernel actuator's tools (tc, ip netns, nft); its tests run them in a namespace of their own
  apt_install iproute2 nftables
  for c in ip tc nft; do
    command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ] || die "$c missing after installing iproute2 nftables"
  done
  # interop tests: a headless browser on the dashboard, tmux as the terminal of `virgo up`, a
  # private rsyslogd forwarding with omkafka, a Python ZeroMQ DEALER (the package's modules serve
  # Debian's python3; a python3 of its own uses pip)
  apt_install chromium rsyslog rsyslog-kafka python3-zmq tmux
  for c in chromium tmux; do command -v "$c" >/dev/null || die "$c missing after installing it"; done
  [ -x /usr/sbin/rsyslogd ] || die "rsyslogd missing after installing rsyslog"
  python3 -c 'import zmq' 2>/dev/null || /usr/bin/python3 -c 'import zmq' 2>/dev/null \
    || python3 -m pip install -q pyzmq >>"$dir/apt.log" 2>&1 || die "no python3 imports zmq (pyzmq); see $dir/apt.log"
}

# ---------- Redis ----------
redis_up() {
  apt_install redis-server redis-tools
  if redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then log "redis already up on :$redis_port"; return; fi
  mkdir -p "$dir/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --dir "$dir/redis" \
    --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" --save "" --appendonly no
  local t=0
  until redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; do
    t=$((t + 1)); [ $t -gt $((timeout * 5)) ] && die "redis did not answer on :$redis_port within ${timeout}s; see $dir/redis/redis.log"
    sleep 0.2
  done
  log "redis up on 127.0.0.1:$redis_port"
}
redis_pid() { [ -f "$dir/redis/redis.pid" ] && kill -0 "$(cat "$dir/redis/redis.pid")" 2>/dev/null && cat "$dir/redis/redis.pid"; }

redis_down() {
  # Only the redis-server this state directory started: a Redis found already answering on the
  # port (another checkout's, a shared one) is used but never stopped from here.
  local pid
  if pid=$(redis_pid); then
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "redis stopped"
  elif redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
    log "redis on :$redis_port was not started from $dir; left running"
  fi
}

# ---------- Kafka ----------
kafka_fetch() {
  [ -f "$libs/.complete" ] && return 0
  command -v java >/dev/null || die "java not found (Java 17 needed for Kafka)"
  command -v mvn >/dev/null || apt_install maven
  # The SLF4J binding is the one the Kafka line ships with: 3.9 logs through reload4j (log4j 1
  # API), 4.x through log4j2, whose core the 4.x broker already depends on.
  local binding
  if [ "$kafka_major" = 3 ]; then
    binding=(-Dlog.binding.groupId=org.slf4j -Dlog.binding.artifactId=slf4j-reload4j -Dlog.binding.version=1.7.36)
  else
    binding=(-Dlog.binding.groupId=org.apache.logging.log4j -Dlog.binding.artifactId=log4j-slf4j-impl -Dlog.binding.version=2.25.5)
  fi
  log "fetching Kafka $kafka_version broker jars from Maven Central (once, into $libs)"
  rm -rf "$libs"
  mvn -q -B -f "$root/scripts/kafka-pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$kafka_version" "${binding[@]}" \
    -DoutputDirectory="$libs" -DincludeScope=runtime >"$dir/mvn.log" 2>&1 \
    || die "mvn could not fetch Kafka $kafka_version jars; see $dir/mvn.log"
  ls "$libs/kafka_2.13-$kafka_version.jar" >/dev/null 2>&1 || die "kafka_2.13-$kafka_version.jar missing in $libs"
  touch "$libs/.complete"
}

kafka_log_opt() {
  # The JVM flag that points the broker's logging at our configuration file.
  if [ "$kafka_major" = 3 ]; then
    echo "-Dlog4j.configuration=file:$dir/kafka/log4j.properties"
  else
    echo "-Dlog4j2.configurationFile=$dir/kafka/log4j2.xml"
  fi
}

kafka_java() {
  # $@: main class and args
  java -Xmx512m -cp "$libs/*" "$(kafka_log_opt)" "$@"
}

kafka_config() {
  mkdir -p "$dir/kafka"
  cat >"$dir/kafka/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$(kafka_data)
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.cleaner.backoff.ms=1000
delete.topic.enable=true
EOF
  # Warnings and the start/stop lines only, into server.log (stdout.log keeps what the JVM prints).
  if [ "$kafka_major" = 3 ]; then
    cat >"$dir/kafka/log4j.properties" <<EOF
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/kafka/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
  else
    cat >"$dir/kafka/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn">
  <Appenders>
    <File name="file" fileName="$dir/kafka/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.server.KafkaRaftServer" level="INFO"/>
  </Loggers>
</Configuration>
EOF
  fi
}

# One data folder per Kafka version: a 4.x log never meets a 3.9 broker (no downgrade path), and
# switching KAFKA_VERSION starts an empty cluster instead of failing on the other's metadata.
kafka_data() { echo "$dir/kafka/data-$kafka_version"; }

kafka_running_version() { cat "$dir/kafka/kafka.version" 2>/dev/null || echo "unknown"; }

kafka_pid() { [ -f "$dir/kafka/kafka.pid" ] && kill -0 "$(cat "$dir/kafka/kafka.pid")" 2>/dev/null && cat "$dir/kafka/kafka.pid"; }

kafka_ready() {
  # A metadata answer from the broker itself, not only an open port.
  if command -v kcat >/dev/null; then
    kcat -b "127.0.0.1:$kafka_port" -L -m 3 >/dev/null 2>&1
  else
    port_open "$kafka_port"
  fi
}

kafka_up() {
  kafka_fetch
  clients_up
  if kafka_pid >/dev/null && kafka_ready; then
    local running
    running=$(kafka_running_version)
    if [ "$running" = "$kafka_version" ]; then
      log "kafka $running already up on :$kafka_port"
    else
      log "kafka $running already up on :$kafka_port (KAFKA_VERSION=$kafka_version asked: \`$0 down kafka\` first to switch)"
    fi
    return
  fi
  port_open "$kafka_port" && die "port $kafka_port is taken by another process (not our Kafka); set KAFKA_PORT"
  kafka_config
  if [ ! -f "$(kafka_data)/meta.properties" ]; then
    # A static single-node quorum (controller.quorum.voters): both 3.9 and 4.x format it with
    # `format -t <id> -c <config>`; 4.x's --standalone is only for the dynamic quorum.
    local cid
    cid=$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$dir/kafka/format.log" | tail -1)
    [ -n "$cid" ] || die "kafka storage tool gave no cluster id; see $dir/kafka/format.log"
    kafka_java kafka.tools.StorageTool format -t "$cid" -c "$dir/kafka/server.properties" \
      >>"$dir/kafka/format.log" 2>&1 || die "kafka storage format failed; see $dir/kafka/format.log"
  fi
  local heap=${KAFKA_HEAP:--Xmx512m -Xms256m}
  # shellcheck disable=SC2086
  nohup java $heap -XX:+UseG1GC -Djava.awt.headless=true -cp "$libs/*" "$(kafka_log_opt)" \
    kafka.Kafka "$dir/kafka/server.properties" >"$dir/kafka/stdout.log" 2>&1 &
  echo $! >"$dir/kafka/kafka.pid"
  echo "$kafka_version" >"$dir/kafka/kafka.version"
  local t=0
  until kafka_ready; do
    kill -0 "$(cat "$dir/kafka/kafka.pid")" 2>/dev/null \
      || die "kafka exited while starting; see $dir/kafka/stdout.log and $dir/kafka/server.log"
    t=$((t + 1)); [ $t -gt $((timeout * 2)) ] && die "kafka did not answer on :$kafka_port within ${timeout}s; see $dir/kafka/server.log"
    sleep 0.5
  done
  log "kafka $kafka_version (KRaft) up on 127.0.0.1:$kafka_port"
}

kafka_down() {
  local pid
  if pid=$(kafka_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    log "kafka stopped"
  fi
  rm -f "$dir/kafka/kafka.pid"
}

status() {
  local rc=0
  if kafka_pid >/dev/null && kafka_ready; then echo "kafka: up ($(kafka_running_version), 127.0.0.1:$kafka_port)"; else echo "kafka: down"; rc=1; fi
  if redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG; then echo "redis: up (127.0.0.1:$redis_port)"; else echo "redis: down"; rc=1; fi
  for c in nc kcat redis-cli ip tc nft; do command -v "$c" >/dev/null && echo "$c: $(command -v "$c")" || { echo "$c: missing"; rc=1; }; done
  return $rc
}

cmd=${1:-status}
what=${2:-all}
case "$cmd" in
  up)
    case "$what" in kafka) kafka_up ;; redis) redis_up ;; all) redis_up; kafka_up ;; *) die "unknown service $what" ;; esac ;;
  down)
    case "$what" in kafka) kafka_down ;; redis) redis_down ;; all) kafka_down; redis_down ;; *) die "unknown service $what" ;; esac ;;
  # Fault injection for the reliability suite: stop/start the broker keeping its data.
  stop-kafka) kafka_down ;;
  start-kafka) kafka_up ;;
  restart-kafka) kafka_down; kafka_up ;;
  reset)
    kafka_down; redis_down; rm -rf "$dir"/kafka/data* "$dir/redis"; log "service data removed" ;;
  status) status ;;
  # the clients only: nc, kcat, redis-cli, ip/tc/nft, chromium, tmux, rsyslogd + omkafka, pyzmq (no service is started).
  clients) clients_up ;;
  # The jar folder of KAFKA_VERSION (fetched when missing): private brokers point KAFKA_LIBS at it.
  libs) kafka_fetch; echo "$libs" ;;
  *) die "usage: $0 up|down|status|reset|clients|libs|stop-kafka|start-kafka|restart-kafka [kafka|redis|all]" ;;
esac
