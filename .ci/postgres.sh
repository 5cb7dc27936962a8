#!/usr/bin/env bash
# A PostgreSQL server for the survey tests, from Debian's packages (run as root). Prints its SQLAlchemy URL:
#
#     SR_LAB_TEST_DATABASE_URL="$(.ci/postgres.sh)" python -m pytest tests/test_survey_storage.py ...
#
# Installs postgresql if it is missing, creates a cluster if there is none, starts it if it is down, and creates
# a fresh database sr_lab_test owned by the role sr_lab (password sr_lab), reached over TCP on localhost. The
# tests drop and recreate the survey tables themselves. Everything but the URL goes to stderr.
set -euo pipefail
DATABASE=sr_lab_test
ROLE=sr_lab
PASSWORD=sr_lab
{
    if ! command -v pg_lsclusters >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    if [ -z "$(pg_lsclusters --no-header)" ]; then
        pg_createcluster "$(ls /usr/lib/postgresql | sort -V | tail -n 1)" main
    fi
    read -r version cluster port status _ < <(pg_lsclusters --no-header | head -n 1)
    if [ "$status" != online ]; then
        pg_ctlcluster "$version" "$cluster" start
    fi
    runuser -u postgres -- psql --port "$port" --quiet --set ON_ERROR_STOP=1 <<SQL
SELECT 'CREATE ROLE $ROLE LOGIN PASSWORD ''$PASSWORD''' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE')
\gexec
DROP DATABASE IF EXISTS $DATABASE;
CREATE DATABASE $DATABASE OWNER $ROLE;
SQL
} >&2
echo "postgresql+psycopg://$ROLE:$PASSWORD@localhost:$port/$DATABASE"
