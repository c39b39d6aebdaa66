#!/usr/bin/env bash
# localpg.sh provisions local PostgreSQL clusters for development and tests. It is the one place
# that knows how to find the server binaries, initialise a cluster, and start and stop it.
#
#   localpg.sh start DIR PORT [DBNAME]  initdb DIR if needed, start it on 127.0.0.1:PORT if it is
#                                       not running, create DBNAME if missing, and print the DSN
#                                       postgres://USER@127.0.0.1:PORT/DBNAME?sslmode=disable
#   localpg.sh stop DIR                 fast shutdown; fine if it is not running or does not exist
#   localpg.sh status DIR               print the state; exit 0 if running, 3 if not
#   localpg.sh freeport [FROM]          print a TCP port on 127.0.0.1 nobody listens on
#   localpg.sh bindir                   print the directory of the server binaries
#   localpg.sh reap DIR                 read stdin until it is closed, then stop the cluster in DIR
#                                       and delete DIR: a test process hands it a pipe, so that its
#                                       throwaway cluster goes when the process does, however it ends
#
# Only the DSN (start), the port (freeport) and the directory (bindir) go to stdout; everything
# else goes to stderr. Authentication is "trust" and the server listens on 127.0.0.1 only, with
# its unix socket in DIR. As root the cluster belongs to the "postgres" user (the superuser role
# is "postgres"); as another user it belongs to that user (the superuser role is that user).
#
# LOCALPG_SHARED_BUFFERS (e.g. 2GB) sets shared_buffers; unset, PostgreSQL's default (128MB).
# LOCALPG_FAST=1 turns off fsync, synchronous_commit and full_page_writes: for throwaway test
# clusters only, never for data you want to keep. The setting is applied at every start.
set -euo pipefail

prog=localpg.sh

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# usage prints the header comment above and exits with status $1 (default 2).
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

# bindir prints the directory holding initdb, pg_ctl and postgres: from PATH, then
# `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
bindir() {
	local cand
	if cand=$(command -v pg_ctl 2>/dev/null); then
		cand=$(dirname "$(readlink -f "$cand")")
		if has_server "$cand"; then
			echo "$cand"
			return
		fi
	fi
	if cand=$(pg_config --bindir 2>/dev/null) && has_server "$cand"; then
		echo "$cand"
		return
	fi
	local dirs=(/usr/lib/postgresql/*/bin)
	if [[ -d ${dirs[0]} ]]; then
		while read -r cand; do
			if has_server "$cand"; then
				echo "$cand"
				return
			fi
		done < <(printf '%s\n' "${dirs[@]}" | sort -V -r)
	fi
	die "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found on PATH, via pg_config or in /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
}

has_server() {
	[[ -x $1/initdb && -x $1/pg_ctl && -x $1/postgres ]]
}

# The OS user that owns and runs clusters, which is also the bootstrap superuser role.
if [[ $EUID -eq 0 ]]; then
	owner=postgres
	id -u "$owner" >/dev/null 2>&1 || die "running as root but there is no '$owner' user to run PostgreSQL as"
else
	owner=$(id -un)
fi

# as_owner runs a command as the cluster owner, from a directory that user can read.
as_owner() {
	if [[ $EUID -eq 0 ]]; then
		(cd / && runuser -u "$owner" -- "$@")
	else
		(cd / && "$@")
	fi
}

# absdir makes DIR absolute without requiring it to exist.
absdir() {
	local d=$1
	[[ $d == /* ]] || d=$PWD/$d
	echo "$d"
}

is_cluster() { [[ -f $1/PG_VERSION ]]; }

# is_running exits 0 when the cluster in DIR has a live postmaster.
is_running() {
	is_cluster "$1" || return 1
	as_owner "$bin/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# running_port prints the port from DIR/postmaster.pid (line 4).
running_port() { sed -n 4p "$1/postmaster.pid"; }

# psql_admin runs psql as the superuser against the postgres database over DIR's socket.
psql_admin() {
	local dir=$1 port=$2
	shift 2
	as_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U "$owner" -d postgres "$@"
}

# write_conf (re)writes DIR/localpg.conf, which postgresql.conf includes.
write_conf() {
	local dir=$1 port=$2
	{
		echo "# Written by $prog at every start; edits are lost."
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '${dir//\'/\'\'}'"
		echo "max_connections = 200"
		if [[ -n ${LOCALPG_SHARED_BUFFERS:-} ]]; then
			echo "shared_buffers = '${LOCALPG_SHARED_BUFFERS//\'/}'"
		fi
		if [[ ${LOCALPG_FAST:-0} == 1 ]]; then
			echo "# LOCALPG_FAST=1: throwaway cluster, not crash-safe."
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
		fi
	} >"$dir/localpg.conf"
	[[ $EUID -ne 0 ]] || chown "$owner:" "$dir/localpg.conf"
}

cmd_start() {
	[[ $# -ge 2 && $# -le 3 ]] || usage
	local dir port=$2 dbname=${3:-postgres}
	dir=$(absdir "$1")
	[[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]] || die "invalid port '$port'"
	[[ $dbname =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "invalid database name '$dbname' (use letters, digits and _)"
	# The unix socket path (DIR/.s.PGSQL.PORT) must fit in sun_path (108 bytes).
	((${#dir} + 18 < 108)) || die "directory path too long for a unix socket: $dir"

	bin=$(bindir)
	if [[ ! -d $dir ]]; then
		# Directories we create must be searchable by the cluster owner whatever the umask.
		(umask 022 && mkdir -p "$dir")
	fi
	if [[ $EUID -eq 0 ]]; then
		chown "$owner:" "$dir"
		as_owner test -r "$dir" -a -w "$dir" -a -x "$dir" ||
			die "user '$owner' cannot reach $dir: make its parent directories searchable (chmod o+x) or use another directory"
	fi
	chmod 700 "$dir"

	if ! is_cluster "$dir"; then
		[[ -z $(ls -A "$dir") ]] || die "$dir is neither a PostgreSQL cluster nor empty"
		log "initialising a cluster in $dir"
		local nosync=() out
		[[ ${LOCALPG_FAST:-0} != 1 ]] || nosync=(--no-sync)
		if ! out=$(as_owner "$bin/initdb" -D "$dir" -U "$owner" --auth=trust --encoding=UTF8 \
			--locale=C --no-instructions "${nosync[@]}" 2>&1); then
			printf '%s\n' "$out" >&2
			die "initdb $dir failed"
		fi
		echo "include_if_exists = 'localpg.conf'" >>"$dir/postgresql.conf"
	fi
	local version
	version=$("$bin/postgres" --version | sed -E 's/^[^0-9]*([0-9]+).*/\1/')
	[[ $(cat "$dir/PG_VERSION") == "$version" ]] ||
		die "$dir holds a PostgreSQL $(cat "$dir/PG_VERSION") cluster but the server found in $bin is version $version"

	if is_running "$dir"; then
		local running
		running=$(running_port "$dir")
		[[ $running == "$port" ]] || die "the cluster in $dir is already running on port $running, not $port"
		log "the cluster in $dir is already running on port $port"
	else
		write_conf "$dir" "$port"
		log "starting the cluster in $dir on 127.0.0.1:$port (log: $dir/server.log)"
		if ! as_owner "$bin/pg_ctl" start -w -t 60 -D "$dir" -l "$dir/server.log" >&2; then
			log "the server did not start; the end of $dir/server.log:"
			tail -n 20 "$dir/server.log" >&2 || true
			exit 1
		fi
	fi

	if [[ $dbname != postgres ]]; then
		local exists
		exists=$(psql_admin "$dir" "$port" -At -v name="$dbname" <<<"SELECT 1 FROM pg_database WHERE datname = :'name'")
		if [[ -z $exists ]]; then
			log "creating database $dbname"
			psql_admin "$dir" "$port" <<<"CREATE DATABASE \"$dbname\"" >&2
		fi
	fi
	echo "postgres://$owner@127.0.0.1:$port/$dbname?sslmode=disable"
}

cmd_stop() {
	[[ $# -eq 1 ]] || usage
	local dir
	dir=$(absdir "$1")
	if ! is_cluster "$dir"; then
		log "no cluster in $dir"
		return
	fi
	bin=$(bindir)
	if ! is_running "$dir"; then
		log "the cluster in $dir is not running"
		return
	fi
	as_owner "$bin/pg_ctl" stop -w -t 60 -m fast -D "$dir" >&2
}

cmd_status() {
	[[ $# -eq 1 ]] || usage
	local dir
	dir=$(absdir "$1")
	if ! is_cluster "$dir"; then
		echo "no cluster in $dir"
		exit 3
	fi
	bin=$(bindir)
	if is_running "$dir"; then
		echo "running on 127.0.0.1:$(running_port "$dir") (data: $dir)"
	else
		echo "stopped (data: $dir)"
		exit 3
	fi
}

# cmd_freeport prints the first port from FROM (default: 15432 plus a random offset, so that
# concurrent callers rarely collide) that nothing on 127.0.0.1 accepts connections on.
cmd_freeport() {
	[[ $# -le 1 ]] || usage
	local port=${1:-$((15432 + RANDOM % 1000))}
	for ((; port <= 65535; port++)); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

# cmd_reap waits for the end of stdin, then stops the cluster in DIR and deletes DIR.
cmd_reap() {
	[[ $# -eq 1 ]] || usage
	local dir
	dir=$(absdir "$1")
	cat >/dev/null || true
	cmd_stop "$dir" || true
	rm -rf -- "$dir"
}

[[ $# -ge 1 ]] || usage
cmd=$1
shift
case $cmd in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
freeport) cmd_freeport "$@" ;;
bindir) bindir ;;
reap) cmd_reap "$@" ;;
-h | --help | help) usage 0 ;;
*) usage ;;
esac
