// watch_failover.js HOSTS PREFIX START_REV - npm `etcd3` watcher for
// watch_failover.test.
//
// Goal: one prefix watch from START_REV through the client's own failover:
// npm etcd3 (@grpc/grpc-js) picks a random host of the comma-separated
// HOSTS, and when the stream breaks it reconnects (to a random host again)
// and resumes from the last header revision + 1. Prints one line per
// happening on stdout (the test stamps the time of receipt):
//   C <member_id> <header_rev>                 watch (re)created
//   D <error text>                             stream lost
//   E <member_id> <put|delete> <rev> <key> <value>   one event
//   X <error text>                             watcher error (canceled)
// Runs until SIGTERM. Run with NODE_PATH=<dir>/node_modules.
'use strict';
const { Etcd3 } = require('etcd3');

const hosts = process.argv[2].split(',');
const prefix = process.argv[3];
const start = process.argv[4];
const client = new Etcd3({ hosts, dialTimeout: 3000 });

function out(s) {
    process.stdout.write(s + '\n');
}

async function main() {
    // watcher(): listeners are in place before the first "connected".
    const w = client.watch().prefix(prefix).startRevision(start).watcher();
    w.on('connected', (res) => {
        out(`C ${res.header.member_id} ${res.header.revision}`);
    });
    w.on('disconnected', (err) => {
        out(`D ${String(err && err.message).replace(/\n/g, ' ')}`);
    });
    w.on('error', (err) => {
        out(`X ${String(err && err.message).replace(/\n/g, ' ')}`);
    });
    w.on('data', (res) => {
        for (const ev of res.events) {
            const kv = ev.kv;
            out(`E ${res.header.member_id} ${ev.type.toLowerCase()} ` +
                `${kv.mod_revision} ${kv.key.toString()} ` +
                `${kv.value ? kv.value.toString() : ''}`);
        }
    });
}

process.on('SIGTERM', () => {
    client.close();
    process.exit(0);
});
main().catch((e) => {
    out(`X ${e && e.message}`);
    process.exit(2);
});
