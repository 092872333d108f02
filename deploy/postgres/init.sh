#!/bin/bash
# First start of the PostgreSQL container: the ledger's two roles and its database.
#   proctrail_owner  owns the database; the audit service migrates as it (and harvest and
#                    implant keep their state in schemas of their own).
#   proctrail_app    what the audit service works as: SELECT and INSERT on the ledger, granted
#                    by the migration; no UPDATE, DELETE or TRUNCATE, and triggers besides.
# Neither is a superuser, and neither is a member of the other.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_pw="$(cat /run/secrets/pg-owner.password)" \
    -v app_pw="$(cat /run/secrets/pg-app.password)" <<'SQL'
CREATE ROLE proctrail_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_pw';
CREATE ROLE proctrail_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_pw';
CREATE DATABASE proctrail OWNER proctrail_owner;
REVOKE ALL ON DATABASE proctrail FROM PUBLIC;
GRANT CONNECT ON DATABASE proctrail TO proctrail_app;
SQL
