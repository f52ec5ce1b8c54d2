#!/usr/bin/env bash
# Installs Temporal's time-skipping test server (the Java one from Maven Central: the SDK's own
# download of the native build comes from temporal.download, which CI cannot reach) into a cache
# outside the repository, keyed by version:
#   <cache>/temporal-test-server/<version>/lib/*.jar                 the server and its dependencies
#   <cache>/temporal-test-server/<version>/server.jsa                its class-data archive (fast JVM start)
#   <cache>/temporal-test-server/<version>/bin/temporal-test-server <port>
#   <cache> = ${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr
# The launcher takes the port as its first argument, as @temporalio/testing's
# TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path' } } })
# passes it; test/unit/support/time-skipping.ts finds it by the version below. Needs Maven and
# Java 17 (install-deps.sh installs both). The first run fetches ~38 MB of jars and starts the
# server once (10-40 s, mostly the download); later runs are a no-op.
set -euo pipefail
TEST_SERVER_VERSION=1.38.0
SLF4J_VERSION=1.7.36 # the test server's SLF4J; slf4j-nop keeps it from warning on every start
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/nnoe-dr/temporal-test-server/$TEST_SERVER_VERSION"
STAMP=.nnoe-dr-stamp
WANTED="io.temporal:temporal-test-server:$TEST_SERVER_VERSION org.slf4j:slf4j-nop:$SLF4J_VERSION, class-data archive, parent watch"

log() { printf '[install-temporal-test-server] %s\n' "$*"; }
fail() { printf '[install-temporal-test-server] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -f "$CACHE_DIR/$STAMP" && "$(cat "$CACHE_DIR/$STAMP")" == "$WANTED" ]]; then
  log "temporal test server $TEST_SERVER_VERSION: up to date ($CACHE_DIR/bin/temporal-test-server)"
  exit 0
fi
command -v mvn >/dev/null || fail "mvn not found: the test server's jars come from Maven Central (Debian package maven)"
command -v java >/dev/null || fail "java not found: the test server runs on Java 17 (Debian package openjdk-17-jre-headless)"
# Fetched into <version>.partial and renamed into place; the stamp is written last, so an interrupted
# run leaves nothing that looks installed.
partial="$CACHE_DIR.partial"
rm -rf "$partial" && mkdir -p "$partial/bin" "$partial/lib"

# ---- the jars: a throw-away project whose only dependencies are the two above; its private local
# repository is removed afterwards, so nothing lands in ~/.m2.
cat >"$partial/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>nnoe-dr</groupId><artifactId>temporal-test-server-fetch</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>io.temporal</groupId><artifactId>temporal-test-server</artifactId><version>$TEST_SERVER_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
log "fetching io.temporal:temporal-test-server:$TEST_SERVER_VERSION and its dependencies from Maven Central ..."
mvn_log="$partial/mvn.log"
if ! mvn -B -q -f "$partial/pom.xml" -Dmaven.repo.local="$partial/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$partial/lib" >"$mvn_log" 2>&1; then
  tail -n 40 "$mvn_log" >&2
  fail "mvn dependency:copy-dependencies of io.temporal:temporal-test-server:$TEST_SERVER_VERSION failed"
fi
rm -rf "$partial/m2" "$partial/pom.xml" "$partial/target" "$mvn_log"
[[ -f "$partial/lib/temporal-test-server-$TEST_SERVER_VERSION.jar" ]] || fail "temporal-test-server-$TEST_SERVER_VERSION.jar missing in $partial/lib after the fetch"
# In place before the archive is made (it records the class path); the stamp, written last, says it is complete.
rm -rf "$CACHE_DIR" && mv "$partial" "$CACHE_DIR"

# ---- the class-data archive: one start records the classes it loads (written when the JVM exits on
# SIGTERM); later starts map them instead of loading them jar by jar (~0.4 s to ready instead of ~1.5 s,
# well inside the 5 s the SDK waits for the server).
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ArchiveClassesAtExit="$CACHE_DIR/server.jsa" \
  -cp "$CACHE_DIR/lib/*" io.temporal.testserver.TestServer "$port" >"$CACHE_DIR/training.log" 2>&1 &
server_pid=$!
for ((waited = 0; waited < 600; waited++)); do
  (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$CACHE_DIR/training.log" >&2; fail "the test server exited at its first start"; }
  sleep 0.1
done
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
[[ -f "$CACHE_DIR/server.jsa" ]] || { cat "$CACHE_DIR/training.log" >&2; fail "no class-data archive written at the server's first start"; }
rm -f "$CACHE_DIR/training.log"

# ---- the launcher. exec: the SDK stops the server by killing this process (SIGKILL), which must be
# the JVM. -Xshare:auto: on another JVM than the archive's it starts the slow way instead of failing.
# A watch in the background stops the server when the test process that started it dies without
# stopping it (a test file killed on a timeout), and ends by itself when the server ends.
cat >"$CACHE_DIR/bin/temporal-test-server" <<'LAUNCHER'
#!/bin/sh
# Temporal's Java time-skipping test server; first argument: the port (as @temporalio/testing passes it).
home="$(cd "$(dirname "$0")/.." && pwd)"
parent=$PPID
server=$$
(
  while kill -0 "$parent" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 2; done
  if grep -q io.temporal.testserver "/proc/$server/cmdline" 2>/dev/null; then kill "$server"; fi
) </dev/null >/dev/null 2>&1 &
exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Xshare:auto -XX:SharedArchiveFile="$home/server.jsa" \
  -cp "$home/lib/*" io.temporal.testserver.TestServer "$@"
LAUNCHER
chmod 0755 "$CACHE_DIR/bin/temporal-test-server"
printf '%s\n' "$WANTED" >"$CACHE_DIR/$STAMP"
log "temporal test server $TEST_SERVER_VERSION: $CACHE_DIR/bin/temporal-test-server"
