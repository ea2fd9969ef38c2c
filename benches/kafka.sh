#!/usr/bin/env bash
# Entries per second one `auditwatch run` member handles from a Kafka topic with 1, 2 and 6
# partitions: simulated traffic (several clusters keyed into the topic) is produced first,
# then one release daemon consumes it from the beginning; the time from its start until
# the group has committed every partition to its end is the measure.
#
#   [AW=binary] benches/kafka.sh [ENTRIES_PER_CLUSTER_DAY]
#
# Needs the local broker (deploy/kafka/local-broker.sh, started here on KAFKA_PORT or a
# free port) and python3 with confluent-kafka (a current librdkafka) to produce and read
# offsets.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/tmp}/.cache/auditwatch/target}
if [ -z "${AW:-}" ]; then
  cargo build --release --quiet --bin auditwatch
  AW=$CARGO_TARGET_DIR/release/auditwatch
fi
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet 'confluent-kafka>=2.6'
dir=$(mktemp -d)
export KAFKA_PORT=${KAFKA_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
export KAFKA_RUN_DIR=$dir/broker
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; deploy/kafka/local-broker.sh stop || true; rm -rf "$dir"; }
trap cleanup EXIT
deploy/kafka/local-broker.sh start

echo "== traffic: 6 simulated clusters, one day each"
for c in 1 2 3 4 5 6; do
  "$AW" simulate --seed "$c" --tenants 8 --duration 24h --inject all -o "$dir/cluster-$c.jsonl"
done
total=$(cat "$dir"/cluster-*.jsonl | wc -l)
echo "$total entries"

for parts in 1 2 6; do
  topic=bench-$parts
  python3 - "$KAFKA_PORT" "$topic" "$parts" "$dir" <<'PY'
import sys, glob
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
port, topic, parts, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
conf = {"bootstrap.servers": f"127.0.0.1:{port}"}
admin = AdminClient(conf)  # kept alive until the topic exists
admin.create_topics([NewTopic(topic, parts, 1)])[topic].result()
p = Producer({**conf, "linger.ms": 20, "batch.num.messages": 10000})
# The end of each partition as the broker acknowledged it (tansu 0.6's ListOffsets answers
# short of the end).
ends = {}
def delivered(err, msg):
    if err is None:
        ends[msg.partition()] = max(ends.get(msg.partition(), 0), msg.offset() + 1)
for i, f in enumerate(sorted(glob.glob(f"{d}/cluster-*.jsonl"))):
    # cluster i goes to partition i mod parts: the partitioning rule, made even.
    for line in open(f, "rb"):
        while True:
            try:
                p.produce(topic, line, key=f"cluster-{i}", partition=i % parts, on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.1)
p.flush()
with open(f"{d}/ends-{topic}", "w") as f:
    f.write(" ".join(str(ends.get(q, 0)) for q in range(parts)))
PY
  cat >"$dir/config-$parts.yaml" <<YAML
server: {listen: 127.0.0.1:0, tick_secs: 0}
sources:
  - {name: fleet, kind: kafka, brokers: ['127.0.0.1:$KAFKA_PORT'], topics: [$topic], group_id: bench-$parts, snapshot_interval_secs: 60}
output: {alerts: '$dir/alerts-$parts.jsonl'}
YAML
  start=$(date +%s.%N)
  AUDITWATCH_LOG=warn "$AW" run --config "$dir/config-$parts.yaml" 2>"$dir/log-$parts" &
  pid=$!
  python3 - "$KAFKA_PORT" "$topic" "$parts" "$dir" <<'PY'
import sys, time
from confluent_kafka import Consumer, TopicPartition
port, topic, parts, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": f"bench-{parts}", "enable.auto.commit": False})
tps = [TopicPartition(topic, p) for p in range(parts)]
high = dict(enumerate(int(x) for x in open(f"{d}/ends-{topic}").read().split()))
while True:
    got = c.committed(tps, timeout=10)
    if all(t.offset == high[t.partition] for t in got):
        break
    time.sleep(0.2)
PY
  end=$(date +%s.%N)
  kill "$pid"; wait "$pid" || true; pid=
  python3 -c "import sys; t=$end-$start; print(f'{sys.argv[1]} partition(s): $total entries in {t:.1f} s = {$total/t:,.0f} entries/s')" "$parts"
done
