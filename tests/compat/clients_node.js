// clients_node.js HOST:PORT PREFIX - npm `etcd3` (@grpc/grpc-js) against a
// server.
//
// Goal: the most used Node.js etcd client works unchanged: put, get,
// delete, txn, lease, watch, lock. Method: real calls, answers checked
// against etcd's semantics. Prints "RESULT ok|fail|unimpl <name> :: <detail>"
// per check like clients_python.py; "unimpl" = gRPC UNIMPLEMENTED (code 12)
// somewhere in the error chain. Run with NODE_PATH=<dir>/node_modules.
'use strict';
const { Etcd3, EtcdLockFailedError } = require('etcd3');

const target = process.argv[2];
const P = process.argv[3];
const client = new Etcd3({ hosts: target, dialTimeout: 5000 });
const k = (s) => P + s;

function isUnimpl(e) {
    for (let x = e; x; x = x.cause) {
        if (x.code === 12 || /UNIMPLEMENTED|Unimplemented/.test(String(x.message))) {
            return true;
        }
    }
    return false;
}

function withTimeout(p, ms, what) {
    let t;
    const to = new Promise((_, rej) => {
        t = setTimeout(() => rej(new Error('timeout: ' + what)), ms);
    });
    return Promise.race([p, to]).finally(() => clearTimeout(t));
}

async function check(name, fn) {
    let res;
    let detail = '';
    try {
        const [ok, d] = await withTimeout(fn(), 15000, name);
        res = ok ? 'ok' : 'fail';
        detail = d || '';
    } catch (e) {
        res = isUnimpl(e) ? 'unimpl' : 'fail';
        detail = (e && e.name ? e.name + ': ' : '') + (e && e.message);
    }
    console.log(`RESULT ${res} ${name} :: ${String(detail).replace(/\n/g, ' ').slice(0, 300)}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
    await check('put/get', async () => {
        await client.put(k('a')).value('1');
        const v = await client.get(k('a')).string();
        return [v === '1', `got ${v}`];
    });

    await check('get prefix: keys sorted, count', async () => {
        for (const i of [3, 1, 2]) {
            await client.put(k('p/' + i)).value('v' + i);
        }
        const m = await client.getAll().prefix(k('p/')).strings();
        const keys = Object.keys(m);
        const n = await client.getAll().prefix(k('p/')).count();
        const ok = JSON.stringify(keys) === JSON.stringify([1, 2, 3].map((i) => k('p/' + i)))
            && m[k('p/2')] === 'v2' && n === 3;
        return [ok, JSON.stringify(m) + ' count ' + n];
    });

    await check('get with revision metadata (version 2 after two puts)', async () => {
        await client.put(k('a')).value('2');
        const r = await client.get(k('a')).exec();
        const kv = r.kvs[0];
        const ok = kv.version === '2' && Number(kv.mod_revision) > Number(kv.create_revision)
            && Number(r.header.revision) >= Number(kv.mod_revision);
        return [ok, JSON.stringify(kv)];
    });

    await check('delete key and prefix', async () => {
        const d1 = await client.delete().key(k('a'));
        const d2 = await client.delete().prefix(k('p/'));
        const left = await client.getAll().prefix(k('p/')).count();
        const v = await client.get(k('a')).string();
        const ok = d1.deleted === '1' && d2.deleted === '3' && left === 0 && v === null;
        return [ok, `${d1.deleted} ${d2.deleted} ${left} ${v}`];
    });

    await check('txn: if/then/else both branches', async () => {
        await client.put(k('t')).value('old');
        const r1 = await client.if(k('t'), 'Value', '==', 'old')
            .then(client.put(k('t')).value('new'))
            .else(client.put(k('t')).value('fail')).commit();
        const r2 = await client.if(k('t'), 'Version', '>', 5)
            .then(client.put(k('t2')).value('yes'))
            .else(client.put(k('t2')).value('no')).commit();
        const v = await client.get(k('t')).string();
        const v2 = await client.get(k('t2')).string();
        const ok = r1.succeeded === true && r2.succeeded === false && v === 'new' && v2 === 'no';
        return [ok, `${r1.succeeded} ${r2.succeeded} ${v} ${v2}`];
    });

    await check('txn: create-if-absent (Create == 0)', async () => {
        const a = await client.if(k('c'), 'Create', '==', 0)
            .then(client.put(k('c')).value('made')).commit();
        const b = await client.if(k('c'), 'Create', '==', 0)
            .then(client.put(k('c')).value('again')).commit();
        const v = await client.get(k('c')).string();
        return [a.succeeded && !b.succeeded && v === 'made', `${a.succeeded} ${b.succeeded} ${v}`];
    });

    await check('lease: grant, put, ttl, revoke deletes the keys', async () => {
        const lease = client.lease(30, { autoKeepAlive: false });
        lease.on('lost', () => {});
        await lease.put(k('l1')).value('a');
        const id = await lease.grant();
        const ttl = Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL);
        const v1 = await client.get(k('l1')).string();
        await lease.revoke();
        const v2 = await client.get(k('l1')).string();
        const ok = ttl > 25 && ttl <= 30 && v1 === 'a' && v2 === null;
        return [ok, `ttl ${ttl} ${v1} ${v2}`];
    });

    await check('lease keepalive (keepaliveOnce)', async () => {
        const lease = client.lease(20, { autoKeepAlive: false });
        lease.on('lost', () => {});
        await lease.grant();
        try {
            const r = await lease.keepaliveOnce();
            return [Number(r.TTL) === 20, JSON.stringify(r)];
        } finally {
            await lease.revoke().catch(() => {});
        }
    });

    await check('watch: put and delete events of concurrent writes', async () => {
        // create() would retry forever on a stream error; a 'disconnected'
        // event carries that error (UNIMPLEMENTED from a server without Watch)
        const w = client.watch().key(k('w')).watcher();
        await new Promise((resolve, reject) => {
            w.once('connected', resolve);
            w.once('disconnected', (e) => { w.cancel().catch(() => {}); reject(e); });
            w.once('error', reject);
        });
        const got = [];
        const done = new Promise((resolve) => {
            w.on('put', (kv) => { got.push('put:' + kv.value.toString()); if (got.length === 3) resolve(); });
            w.on('delete', () => { got.push('delete'); if (got.length === 3) resolve(); });
        });
        await client.put(k('w')).value('w0');
        await client.put(k('w')).value('w1');
        await client.delete().key(k('w'));
        await withTimeout(done, 8000, 'watch events');
        await w.cancel();
        return [JSON.stringify(got) === JSON.stringify(['put:w0', 'put:w1', 'delete']), JSON.stringify(got)];
    });

    await check('lock: acquire; a second acquire fails while held; after release it succeeds', async () => {
        const l1 = client.lock(k('lk')).ttl(10);
        await l1.acquire();
        let second;
        try {
            await client.lock(k('lk')).ttl(10).acquire();
            second = 'acquired';
        } catch (e) {
            second = e instanceof EtcdLockFailedError ? 'EtcdLockFailedError' : String(e);
        }
        await l1.release();
        const l3 = client.lock(k('lk')).ttl(10);
        await l3.acquire();
        await l3.release();
        return [second === 'EtcdLockFailedError', `second: ${second}`];
    });

    client.close();
}

main().then(() => process.exit(0), (e) => {
    console.log('RESULT fail main ' + e);
    process.exit(1);
});
