#!/usr/bin/env bash
# Installs what `make bench` compares datashift against, from Debian's
# packages: pgloader (MariaDB→PostgreSQL peer), pgcopydb (PostgreSQL→
# PostgreSQL peer), and the psql and mariadb clients the baseline pipes run.
# Idempotent: a tool already on PATH is left as it is, and apt runs only
# when something is missing.
set -euo pipefail

# command package
need=(
	"pgloader pgloader"
	"pgcopydb pgcopydb"
	"psql postgresql-client"
	"mariadb mariadb-client"
)
missing=()
for pair in "${need[@]}"; do
	read -r cmd pkg <<<"$pair"
	command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
# /usr/bin/time -v measures each side's peak RSS and CPU.
[ -x /usr/bin/time ] || missing+=(time)

if [ ${#missing[@]} -eq 0 ]; then
	echo "bench tools: all present"
	exit 0
fi

echo "bench tools: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "bench tools: ${missing[*]} missing, and not root (no sudo) to install them" >&2; exit 1; }
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# An out-of-date package list is the usual reason an install finds nothing.
$sudo apt-get install -y --no-install-recommends "${missing[@]}" ||
	{ $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}"; }
