#!/usr/bin/env bash
# Makes ZooKeeper, PostgreSQL, MariaDB and Redis answer on 127.0.0.1 on a fresh
# Debian machine: installs what is missing with apt-get, starts what is not
# running, waits until each answers. Safe to run again: running services are
# left alone. ZooKeeper runs on its own port with its data under .build/.
# Chromium is no service but is installed the same way: the web UI's test
# drives it headless.
#
#   scripts/services.sh            # all five
#   scripts/services.sh zookeeper  # just one (postgres, mariadb, redis, zookeeper, chromium)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/.build"
ZK_PORT=${DATASHIFT_ZK_PORT:-2191}
wanted=${*:-postgres mariadb redis zookeeper chromium}
mkdir -p "$build"

log() { echo "services: $*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=
need_packages() { # need_packages CMD PKG...: installs PKGs unless CMD exists
	local cmd=$1; shift
	command -v "$cmd" >/dev/null 2>&1 && return 0
	[ -e "$cmd" ] && return 0
	if [ -z "$apt_updated" ]; then
		log "apt-get update"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	log "installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

wait_for() { # wait_for NAME SECONDS CMD...
	local name=$1 secs=$2; shift 2
	local i
	for ((i = 0; i < secs * 5; i++)); do
		if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
		sleep 0.2
	done
	log "$name did not answer within ${secs}s"
	return 1
}

pg_trusts_tests() { # the tests connect over TCP as postgres without a password
	psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1
}

start_postgres() {
	need_packages pg_ctlcluster postgresql postgresql-client
	if pg_isready -q -h 127.0.0.1 -p 5432 && pg_trusts_tests; then log "postgres is up"; return; fi
	local ver
	ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
	if [ -z "$ver" ]; then
		ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
		as_root pg_createcluster "$ver" main >/dev/null
	fi
	local conf="/etc/postgresql/$ver/main"
	# Loopback only, and trust for local connections: the servers this script
	# starts hold nothing but test databases.
	if ! grep -q '^# datashift' "$conf/pg_hba.conf"; then
		as_root sh -c "printf '# datashift\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust\n' | cat - '$conf/pg_hba.conf' > '$conf/pg_hba.conf.new' && mv '$conf/pg_hba.conf.new' '$conf/pg_hba.conf'"
	fi
	as_root sed -i "s/^#\?listen_addresses.*/listen_addresses = '127.0.0.1'/" "$conf/postgresql.conf"
	if pg_isready -q -h 127.0.0.1 -p 5432; then
		as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
	else
		as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
	fi
	wait_for postgres 60 pg_trusts_tests
}

mariadb_root_over_tcp() {
	mariadb -h 127.0.0.1 -uroot -e 'SELECT 1' >/dev/null 2>&1
}

start_mariadb() {
	need_packages mariadbd mariadb-server mariadb-client
	if mariadb_root_over_tcp; then log "mariadb is up"; return; fi
	if ! mariadb-admin -h 127.0.0.1 -uroot ping >/dev/null 2>&1; then
		as_root mkdir -p /run/mysqld
		as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
		if [ ! -d /var/lib/mysql/mysql ]; then
			as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
		fi
		as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1
		wait_for mariadb 60 mariadb-admin -h 127.0.0.1 -uroot ping
	fi
	# A fresh install lets root in only through the unix socket; the tests
	# connect over TCP as root with no password.
	as_root mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;" 2>/dev/null || true
	wait_for "mariadb (root over TCP)" 30 mariadb_root_over_tcp
}

start_redis() {
	need_packages redis-server redis-server
	if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then log "redis is up"; return; fi
	redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir "$build" --logfile "$build/redis.log"
	wait_for redis 30 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG'
}

zk_ok() { # ZooKeeper answers "imok" to the four-letter "ruok"
	local reply
	reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$ZK_PORT && printf ruok >&3 && cat <&3" 2>/dev/null || true)
	[ "$reply" = imok ]
}

start_zookeeper() {
	need_packages java default-jre-headless
	need_packages /usr/share/java/zookeeper.jar zookeeper
	if zk_ok; then log "zookeeper is up on 127.0.0.1:$ZK_PORT"; return; fi
	local dir="$build/zookeeper"
	mkdir -p "$dir/data"
	cat > "$dir/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=60000
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr
CFG
	cat > "$dir/log4j.properties" <<'CFG'
log4j.rootLogger=WARN, F
log4j.appender.F=org.apache.log4j.FileAppender
log4j.appender.F.File=${zk.log}
log4j.appender.F.layout=org.apache.log4j.PatternLayout
log4j.appender.F.layout.ConversionPattern=%d %p %c{1}: %m%n
CFG
	local j cp
	cp="$dir:/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar:/usr/share/java/netty.jar:/usr/share/java/commons-cli.jar:/usr/share/java/metrics-core.jar:/usr/share/java/snappy-java.jar"
	for j in /usr/share/java/netty-*.jar /usr/share/java/jline*.jar /usr/share/java/audience-annotations*.jar; do
		[ -e "$j" ] && cp="$cp:$j"
	done
	nohup java -Xmx256m -Dzk.log="$dir/zookeeper.log" -Dlog4j.configuration="file:$dir/log4j.properties" \
		-cp "$cp" org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
		>"$dir/stdout.log" 2>&1 &
	echo $! > "$dir/pid"
	if ! wait_for "zookeeper on 127.0.0.1:$ZK_PORT" 60 zk_ok; then
		tail -20 "$dir/stdout.log" "$dir/zookeeper.log" >&2 || true
		return 1
	fi
}

install_chromium() { # Debian's own build: the test starts it, nothing runs here
	need_packages /usr/bin/chromium chromium
	if ! timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1; then
		log "chromium is installed but does not start headless"
		return 1
	fi
	log "chromium is ready ($(/usr/bin/chromium --version 2>/dev/null))"
}

for s in $wanted; do
	case $s in
	postgres) start_postgres ;;
	mariadb) start_mariadb ;;
	redis) start_redis ;;
	zookeeper) start_zookeeper ;;
	chromium) install_chromium ;;
	*) log "unknown service $s"; exit 2 ;;
	esac
done
