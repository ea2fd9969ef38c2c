#!/usr/bin/env python3
"""Write N External Secrets Operator read responses, each of a different secret path, to
stdout: N distinct `eso_cadence` keys (namespace, path) for the memory bench
(benches/memory.sh). The shape is the simulator's (OpenBao 2.7 kv-v2 read by ESO)."""
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
TENANTS = 200
TEMPLATE = (
    '{"time":"2026-03-02T%(time)sZ","type":"response","auth":{"client_token":"hmac-sha256:7b1c2fc94e5d1453f2fd819cbbcea4676b52c695f4c593108acb3892521a9a78",'
    '"accessor":"hmac-sha256:e75a52c329efdbd2cc6d14722ac05e3bcae043e4ba76b87c8dd414f19119e5a5","display_name":"kubernetes-bookstore-platform-%(t)s-bookstore-platform-eso",'
    '"policies":["bookstore-platform-app-%(t)s","default"],"token_policies":["bookstore-platform-app-%(t)s","default"],"policy_results":{"allowed":true,"granting_policies":'
    '[{"name":"bookstore-platform-app-%(t)s","namespace_id":"root","type":"acl"}]},"metadata":{"role":"bookstore-platform-%(t)s","service_account_name":"bookstore-platform-eso",'
    '"service_account_namespace":"bookstore-platform-%(t)s","service_account_secret_name":"","service_account_uid":"bb8f2a70-47cf-194f-9411-c07ad149826d"},'
    '"entity_id":"b69a5a92-df49-6a3c-db4a-f8262261782c","token_type":"service","token_ttl":1200,"token_issue_time":"2026-03-02T00:00:07Z"},'
    '"request":{"id":"%(id)s","client_id":"b69a5a92-df49-6a3c-db4a-f8262261782c","operation":"read","mount_point":"secret/","mount_type":"kv",'
    '"mount_accessor":"kv_496f0297","mount_running_version":"v2.7.2+builtin.bao","mount_class":"secret","client_token":"hmac-sha256:7b1c2fc94e5d1453f2fd819cbbcea4676b52c695f4c593108acb3892521a9a78",'
    '"client_token_accessor":"hmac-sha256:e75a52c329efdbd2cc6d14722ac05e3bcae043e4ba76b87c8dd414f19119e5a5","namespace":{"id":"root"},'
    '"path":"secret/data/bookstore-platform/%(t)s/app-%(n)d","remote_address":"10.42.4.114","remote_port":50533},"response":{"mount_point":"secret/","mount_type":"kv",'
    '"mount_accessor":"kv_496f0297","mount_running_plugin_version":"v2.7.2+builtin.bao","mount_class":"secret","data":{"data":{"stripe_key":"hmac-sha256:9283dae97eac6708aff33b1b6ba3926d07c6504fb471877c1f1c91e8359d4564"},'
    '"metadata":{"created_time":"2026-02-28T19:36:02.123456789Z","custom_metadata":null,"destroyed":false,"version":2}}}}\n'
)
out = sys.stdout
buf = []
for i in range(N):
    # N reads spread evenly over 20 hours: one read per key, nothing is a loop.
    us = i * (20 * 3600 * 1_000_000 // N)
    s, frac = divmod(us, 1_000_000)
    time = "%02d:%02d:%02d.%06d" % (s // 3600, s // 60 % 60, s % 60, frac)
    fields = {"t": "t%03d" % (i % TENANTS), "id": "%08x-0000-4000-8000-%012x" % (i, i), "n": i, "time": time}
    buf.append(TEMPLATE % fields)
    if len(buf) == 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
