#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, from Debian's packages, to run the DAG
# through snakemake-executor-plugin-slurm. Manual and optional: CI does not depend on it.
#
#   sudo tests/slurm/setup_local_slurm.sh            # install (apt), configure, start
#   tests/slurm/run_smoke_on_slurm.sh                 # the smoke config through sbatch
#   sudo tests/slurm/setup_local_slurm.sh stop       # stop the daemons this script started
#
# What it sets up (everything but the packages lives in $SLURM_DIR, default /tmp/mist-slurm):
# - munge with the key the package generated;
# - slurmctld + slurmd for one node named after this host, partition "local";
# - slurmdbd on a private MariaDB (datadir, socket and port 3307 in $SLURM_DIR): the
#   plugin asks `sacct` for job states, and Slurm 22.05's sacct needs slurmdbd for that
#   (without it: "Slurm accounting storage is disabled", and the run never sees a job end);
# - the node advertises 8 CPUs and 64 GB whatever the machine has (config_overrides), so
#   that the SLURM profile's requests (cpus_per_task 4, mem_mb up to 16000) are accepted;
#   the submitting side keeps the real load low with --jobs;
# - proctrack/linuxproc and task/none: no cgroups, so it also runs inside a container.
# Tested on Debian 12 (slurm-wlm 22.05.8, MariaDB 10.11), as root in a container.
set -euo pipefail

SLURM_DIR=${SLURM_DIR:-/tmp/mist-slurm}
NODE=$(hostname -s)
DB_PASS=mist-local-only   # a private, loopback-only database for slurmdbd
export SLURM_CONF="$SLURM_DIR/slurm.conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_slurm() {
  for d in slurmd slurmctld slurmdbd; do
    if alive "$SLURM_DIR/$d.pid"; then
      kill "$(cat "$SLURM_DIR/$d.pid")" && echo "stopped $d"
    fi
  done
}

stop() {
  stop_slurm
  sleep 2
  if alive "$SLURM_DIR/mysql.pid"; then
    kill "$(cat "$SLURM_DIR/mysql.pid")" && echo "stopped mariadbd"
  fi
  if [ -f "$SLURM_DIR/munged.started" ] && alive /run/munge/munged.pid; then
    kill "$(cat /run/munge/munged.pid)" && echo "stopped munged"
    rm -f "$SLURM_DIR/munged.started"
  fi
}

if [ "${1:-start}" = "stop" ]; then
  stop
  exit 0
fi

# -- packages ----------------------------------------------------------------------------
missing=()
for c in slurmctld:slurm-wlm munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
  command -v "${c%%:*}" >/dev/null || missing+=("${c##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
mkdir -p "$SLURM_DIR"/{state,spool,log}

# -- munge -------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  touch "$SLURM_DIR/munged.started"
  sleep 1
fi
munge -n | unmunge >/dev/null && echo "munge: ok"

# -- MariaDB for slurmdbd (private instance) ---------------------------------------------
if [ ! -d "$SLURM_DIR/mysql/mysql" ]; then
  mariadb-install-db --user=root --datadir="$SLURM_DIR/mysql" --auth-root-authentication-method=socket \
    >"$SLURM_DIR/log/mariadb-install.log" 2>&1
fi
if ! alive "$SLURM_DIR/mysql.pid"; then
  nohup mariadbd --user=root --datadir="$SLURM_DIR/mysql" --socket="$SLURM_DIR/mysql.sock" \
    --port=3307 --bind-address=127.0.0.1 --pid-file="$SLURM_DIR/mysql.pid" \
    --innodb-buffer-pool-size=32M --log-error="$SLURM_DIR/log/mariadb.log" >/dev/null 2>&1 &
  for _ in $(seq 1 60); do [ -S "$SLURM_DIR/mysql.sock" ] && break; sleep 1; done
fi
mariadb -S "$SLURM_DIR/mysql.sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
echo "mariadb: ok"

# -- configuration -----------------------------------------------------------------------
cat > "$SLURM_DIR/slurm.conf" <<CONF
ClusterName=mistlocal
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$NODE
AccountingStoragePort=6819
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
KillWait=10
NodeName=$NODE CPUs=8 RealMemory=64000 State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
cat > "$SLURM_DIR/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=$NODE
DbdPort=6819
SlurmUser=root
PidFile=$SLURM_DIR/slurmdbd.pid
LogFile=$SLURM_DIR/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
CONF
chmod 600 "$SLURM_DIR/slurmdbd.conf"
# Client commands (sbatch, sacct, ...) read /etc/slurm/slurm.conf unless SLURM_CONF is set:
# point the default location at ours, unless another configuration is already there.
mkdir -p /etc/slurm
if [ ! -e /etc/slurm/slurm.conf ] || [ -L /etc/slurm/slurm.conf ]; then
  ln -sf "$SLURM_DIR/slurm.conf" /etc/slurm/slurm.conf
fi

# -- daemons -----------------------------------------------------------------------------
stop_slurm >/dev/null 2>&1 || true
sleep 1
/usr/sbin/slurmdbd   # reads slurmdbd.conf next to $SLURM_CONF
for _ in $(seq 1 30); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 1; done
sacctmgr -i add cluster mistlocal >/dev/null 2>&1 || true
/usr/sbin/slurmctld -f "$SLURM_CONF"
/usr/sbin/slurmd -f "$SLURM_CONF"
for _ in $(seq 1 30); do
  sinfo -h -o "%T" 2>/dev/null | grep -qE "idle|mixed|allocated" && break
  sleep 1
done
scontrol update nodename="$NODE" state=resume 2>/dev/null || true
sinfo
srun -N1 -n1 hostname >/dev/null && echo "slurm: srun ok on $NODE"
for _ in $(seq 1 15); do sacct -X -n -o State | grep -q COMPLETED && break; sleep 1; done
sacct -X -o JobID,JobName,State | tail -2
echo "export SLURM_CONF=$SLURM_CONF"
