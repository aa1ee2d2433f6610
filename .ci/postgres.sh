#!/usr/bin/env bash
# postgres.sh makes a PostgreSQL server available for the store's conformance suite and prints, on
# stdout and nothing else, the line that points the tests at it:
#
#   eval "$(bash .ci/postgres.sh)"   # then: go test ./proxy/store/postgres/
#
# It installs PostgreSQL from Debian's packages when it is missing, creates (once) a dedicated
# cluster named "smsproxy" that listens on 127.0.0.1 only, starts it, creates a role and a database
# for the tests and waits until the server answers. Running it again reuses all of that. Every
# other line goes to stderr. Run it as root (it needs apt-get and the postgres account).
#
# Environment: SMSPROXY_PG_PORT (default 5433), SMSPROXY_PG_CLUSTER (default smsproxy).
set -euo pipefail

port="${SMSPROXY_PG_PORT:-5433}"
cluster="${SMSPROXY_PG_CLUSTER:-smsproxy}"
role=smsproxy
password=smsproxy-test
db=smsproxy_test

log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
	log "run me as root: I install packages and manage a cluster as the postgres user"
	exit 1
fi

if ! command -v pg_createcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
	log "installing PostgreSQL from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
fi

# The newest installed major version.
version=$(ls -1 /usr/lib/postgresql | sort -n | tail -n 1)
log "PostgreSQL $version, cluster $cluster on 127.0.0.1:$port"

if ! pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
	log "creating cluster $version/$cluster"
	pg_createcluster "$version" "$cluster" --port "$port" >&2 -- --auth-local=peer --auth-host=scram-sha-256
fi
# Written every time, so that a cluster made by an earlier run or by hand ends up the same. Debian's
# postgresql.conf includes conf.d/, and a setting there wins over the main file.
pg_conftool "$version" "$cluster" remove listen_addresses || true
cat >"/etc/postgresql/$version/$cluster/conf.d/smsproxy.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
max_connections = 200
EOF

# Debian keeps the pid and socket under /var/run/postgresql, which a fresh container may lack.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

status=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1 == v && $2 == c { print $4 }')
if [ "$status" != "online" ]; then
	log "starting cluster $version/$cluster"
	pg_ctlcluster "$version" "$cluster" start >&2
fi

for _ in $(seq 1 60); do
	if pg_isready -q -h 127.0.0.1 -p "$port"; then
		break
	fi
	sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
	log "the server did not become ready; see /var/log/postgresql/postgresql-$version-$cluster.log"
	exit 1
fi

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != "1" ]; then
	log "creating role $role"
	psql_admin -c "CREATE ROLE $role LOGIN PASSWORD '$password'" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != "1" ]; then
	log "creating database $db"
	psql_admin -c "CREATE DATABASE $db OWNER $role" >&2
fi

echo "export SMSPROXY_TEST_POSTGRES_DSN=postgres://$role:$password@127.0.0.1:$port/$db?sslmode=disable"
