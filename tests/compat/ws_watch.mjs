// ws_watch.mjs - WebSocket watch client and checks for ws_watch.test.
//
// Modes (each exits 0 on success, prints one line per finding, and stops
// by itself within its deadline):
//   rev BASE                            print the store's revision
//   writer BASE PREFIX N DELAY_MS OUT   put PREFIX<i> = v<i> through the
//                                       JSON gateway; OUT gets "rev key val"
//   client URL PREFIX START OUT         watch PREFIX from START; append each
//                                       event as "rev key val" to OUT (sync,
//                                       so a kill -9 loses nothing written)
//   cut URL BASE PREFIX N               in one process: writer + watcher;
//                                       destroy the TCP socket mid-way,
//                                       resume from last + 1, compare
//   multi URL BASE                      many watches on one socket
//   slow URL BASE PREFIX N BYTES STALL_S  a client that stops reading: the
//                                       server must cut it; resume after
//   bad URL BASE                        malformed input; server stays up
// The module path of `ws` comes from WS_MODULE (npm install --prefix).
import fs from 'node:fs';
import net from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const WebSocket = require(process.env.WS_MODULE || 'ws');

const b64 = (s) => Buffer.from(s).toString('base64');
const unb64 = (s) => (s ? Buffer.from(s, 'base64').toString() : '');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const die = (msg) => {
    console.log('FAIL ' + msg);
    process.exit(1);
};
const SCALE = Number(process.env.CAIRN_TIMEOUT_SCALE || 1);
const deadline = (s) =>
    setTimeout(() => die(`deadline of ${s * SCALE} s passed`), s * SCALE * 1000).unref();

function prefixEnd(p) {
    const b = Buffer.from(p);
    b[b.length - 1]++;
    return b.toString('base64');
}

async function put(base, key, value) {
    const r = await fetch(base + '/v3/kv/put', {
        method: 'POST',
        body: JSON.stringify({ key: b64(key), value: b64(value) }),
    });
    const j = await r.json();
    if (!j.header || !j.header.revision) die('put answered ' + JSON.stringify(j));
    return Number(j.header.revision);
}

// Unwrap {"result":...} (the /v3/watch path) or take the bare response.
function body(data) {
    const j = JSON.parse(data.toString());
    return j.result !== undefined ? j.result : j;
}

function evLines(resp) {
    return (resp.events || []).map(
        (e) => `${e.kv.mod_revision} ${unb64(e.kv.key)} ${unb64(e.kv.value)}`,
    );
}

// One watch session: resolves with the close code when the socket ends.
function session(url, prefix, start, onEvent, onOpen) {
    return new Promise((resolve) => {
        const ws = new WebSocket(url);
        ws.on('open', () => {
            const cr = { key: b64(prefix), range_end: prefixEnd(prefix) };
            if (start > 0) cr.start_revision = String(start);
            ws.send(JSON.stringify({ create_request: cr }));
            if (onOpen) onOpen(ws);
        });
        ws.on('message', (d) => {
            const r = body(d);
            if (r.error) die('error message: ' + JSON.stringify(r.error));
            if (r.canceled) die('watch canceled: ' + JSON.stringify(r));
            for (const l of evLines(r)) onEvent(l, ws);
        });
        ws.on('close', (code) => resolve(code));
        ws.on('error', () => {}); // 'close' follows
    });
}

async function currentRev(base) {
    const r = await fetch(base + '/v3/kv/range', { method: 'POST', body: '{"key":"AA=="}' });
    return Number((await r.json()).header.revision);
}

async function writer(base, prefix, n, delay, out) {
    const lines = [];
    for (let i = 0; i < n; i++) {
        const rev = await put(base, prefix + i, 'v' + i);
        lines.push(`${rev} ${prefix}${i} v${i}`);
        if (delay > 0) await sleep(delay);
    }
    if (out) fs.writeFileSync(out, lines.join('\n') + '\n');
    return lines;
}

function compare(what, got, want) {
    if (got.length !== want.length) {
        die(`${what}: ${got.length} events, writer made ${want.length}`);
    }
    for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) die(`${what}: event ${i} is "${got[i]}", want "${want[i]}"`);
    }
    console.log(`ok ${what}: ${got.length} events, each once, in order`);
}

async function client(url, prefix, start, out) {
    const fd = fs.openSync(out, 'a');
    const code = await session(url, prefix, Number(start), (l) => {
        fs.writeSync(fd, l + '\n');
    });
    console.log('closed ' + code);
}

async function cut(url, base, prefix, n) {
    const got = [];
    let phase = 'first session';
    let want = null;
    setTimeout(() => {
        const miss = (want || []).filter((l) => !got.includes(l));
        die(`deadline passed in the ${phase} with ${got.length} events; missing ${miss.slice(0, 3).join(', ')}; last seen ${got.slice(-2).join(', ')}`);
    }, 60 * SCALE * 1000).unref();
    let cutDone = false;
    // the watch starts after the store's current revision, before any put
    const rev = await currentRev(base);
    const w = writer(base, prefix, n, 3, null);
    w.then((l) => {
        want = l;
    });
    const code = await session(url, prefix, rev + 1, (l, ws) => {
        got.push(l);
        if (!cutDone && got.length >= n / 3) {
            cutDone = true;
            ws._socket.destroy(); // the TCP connection, no close frame
        }
    });
    const seen = got.length;
    const last = Number(got[got.length - 1].split(' ')[0]);
    console.log(`cut after ${seen} events at revision ${last} (close ${code})`);
    phase = 'resumed session';
    await session(url, prefix, last + 1, (l, ws) => {
        got.push(l);
        if (got.length >= n) ws.close();
    });
    compare('resume after a cut socket', got, await w);
}

async function multi(url, base) {
    deadline(60);
    const K = 50;
    const ws = new WebSocket(url);
    const ids = new Map(); // watch_id -> key index
    const got = new Map(); // watch_id -> events
    let progress = 0;
    let created = 0;
    let canceled = 0;
    await new Promise((r) => ws.on('open', r));
    ws.on('message', (d) => {
        const r = body(d);
        const id = Number(r.watch_id || 0);
        if (r.created) {
            ids.set(id, created++);
            got.set(id, []);
        } else if (r.canceled) {
            canceled++;
        } else if (id === -1) {
            progress++;
        }
        for (const l of evLines(r)) got.get(id).push(l);
    });
    for (let i = 0; i < K; i++) {
        ws.send(JSON.stringify({ create_request: { key: b64(`m/${i}`) } }));
    }
    while (created < K) await sleep(10);
    if ([...ids.keys()].sort((a, b) => a - b).join() !== [...Array(K).keys()].join()) {
        die('watch ids are not 0..' + (K - 1));
    }
    const want = new Map();
    for (let round = 0; round < 2; round++) {
        for (let i = 0; i < K; i++) {
            const rev = await put(base, `m/${i}`, `r${round}`);
            if (!want.has(i)) want.set(i, []);
            want.get(i).push(`${rev} m/${i} r${round}`);
        }
    }
    ws.send(JSON.stringify({ progress_request: {} }));
    while (progress < 1) await sleep(10);
    for (const [id, i] of ids) compare(`watch ${id} of ${K} on one socket`, got.get(id), want.get(i));
    // cancel the even ones; only the odd ones see the next round
    for (const [id] of ids) {
        if (id % 2 === 0) ws.send(JSON.stringify({ cancel_request: { watch_id: String(id) } }));
    }
    while (canceled < K / 2) await sleep(10);
    for (let i = 0; i < K; i++) {
        const rev = await put(base, `m/${i}`, 'r2');
        if (i % 2 === 1) want.get(i).push(`${rev} m/${i} r2`);
    }
    ws.send(JSON.stringify({ progress_request: {} }));
    while (progress < 2) await sleep(10);
    for (const [id, i] of ids) {
        if (got.get(id).length !== want.get(i).length) {
            die(`after cancel: watch ${id} has ${got.get(id).length} events, want ${want.get(i).length}`);
        }
    }
    console.log(`ok ${K / 2} canceled watches saw nothing more, the others did`);
    ws.close();
}

// cairn_http_streams_stalled_total from /metrics (0 when it cannot be read)
async function stalledTotal(base) {
    try {
        const t = await (await fetch(base + '/metrics')).text();
        const m = t.match(/^cairn_http_streams_stalled_total (\d+)$/m);
        return m ? Number(m[1]) : 0;
    } catch {
        return 0;
    }
}

async function slow(url, base, prefix, n, bytes, stallS) {
    deadline(Number(stallS) + 90);
    const got = [];
    let paused = false;
    let closedAt = 0;
    let code = 0;
    const value = 'x'.repeat(Number(bytes));
    const ws = new WebSocket(url);
    await new Promise((r) => ws.on('open', r));
    let created = false;
    ws.on('message', (d) => {
        const r = body(d);
        if (r.created) created = true;
        for (const e of r.events || []) got.push(Number(e.kv.mod_revision));
        if (!paused && got.length >= 1) {
            paused = true;
            ws._socket.pause(); // stop reading: the kernel window fills
        }
    });
    const closed = new Promise((r) =>
        ws.on('close', (c) => {
            code = c;
            closedAt = Date.now();
            r();
        }),
    );
    const stalled0 = await stalledTotal(base);
    ws.send(JSON.stringify({ create_request: { key: b64(prefix), range_end: prefixEnd(prefix) } }));
    while (!created) await sleep(10);
    const revs = [];
    for (let i = 0; i < n; i++) {
        const r = await fetch(base + '/v3/kv/put', {
            method: 'POST',
            body: JSON.stringify({ key: b64(prefix + i), value: b64(value) }),
        });
        revs.push(Number((await r.json()).header.revision));
    }
    console.log(`wrote ${n} x ${bytes} bytes; client paused after ${got.length} events`);
    // the server cuts a client whose queue makes no progress for stallS:
    // wait for its cairn_http_streams_stalled_total to count the cut (at
    // most stallS + 30 s) rather than a fixed stallS + 5 s
    const cutBy = Date.now() + (Number(stallS) + 30) * 1000 * SCALE;
    while (Date.now() < cutBy && (await stalledTotal(base)) <= stalled0) await sleep(100);
    ws._socket.resume();
    await Promise.race([closed, sleep(10000)]);
    if (closedAt === 0) die('the server never cut the stalled client');
    console.log(`ok the server cut the stalled client (close ${code})`);
    if (got.length >= n) die('the stalled client got every event; nothing was held back');
    const last = got[got.length - 1];
    const rest = [];
    await session(url, prefix, last + 1, (l, w2) => {
        rest.push(Number(l.split(' ')[0]));
        if (got.length + rest.length >= n) w2.close();
    });
    const all = got.concat(rest);
    compare('resume after the stall cut', all.map(String), revs.map(String));
}

// One raw frame on a fresh upgraded socket: resolves with what came back.
function rawFrame(host, port, path, frame) {
    return new Promise((resolve) => {
        const s = net.connect(port, host);
        let buf = Buffer.alloc(0);
        let upgraded = false;
        const t = setTimeout(() => {
            s.destroy();
            resolve({ upgraded, data: buf, timeout: true });
        }, 5000);
        s.on('connect', () =>
            s.write(
                `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\n` +
                    'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
                    'Sec-WebSocket-Version: 13\r\n\r\n',
            ),
        );
        s.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            if (!upgraded) {
                const i = buf.indexOf('\r\n\r\n');
                if (i >= 0) {
                    upgraded = buf.slice(0, 12).toString() === 'HTTP/1.1 101';
                    buf = buf.slice(i + 4);
                    if (frame) s.write(frame);
                    else s.end();
                }
            }
            // The server's close frame is the answer: lws would then wait
            // for ours before closing TCP, which is the 5 s timer above.
            let st = 0;
            try {
                st = upgraded ? closeStatus(buf) : 0;
            } catch {
                st = 0; /* a frame still arriving */
            }
            if (st !== 0) {
                clearTimeout(t);
                s.destroy();
                resolve({ upgraded, data: buf, timeout: false });
            }
        });
        s.on('close', () => {
            clearTimeout(t);
            resolve({ upgraded, data: buf, timeout: false });
        });
        s.on('error', () => {});
    });
}

// A close frame's status from the server's bytes (0 if none).
function closeStatus(data) {
    for (let i = 0; i + 1 < data.length; ) {
        const op = data[i] & 0x0f;
        let len = data[i + 1] & 0x7f;
        let off = i + 2;
        if (len === 126) {
            len = data.readUInt16BE(off);
            off += 2;
        } else if (len === 127) {
            len = Number(data.readBigUInt64BE(off));
            off += 8;
        }
        if (op === 8) return len >= 2 ? data.readUInt16BE(off) : 1005;
        i = off + len;
    }
    return 0;
}

function masked(op, payload, opts = {}) {
    const mask = Buffer.from([1, 2, 3, 4]);
    const p = Buffer.from(payload);
    const mbit = opts.nomask ? 0 : 0x80;
    const hdr = [((opts.fin === false ? 0 : 0x80) | (opts.rsv || 0) | op) & 0xff];
    if (p.length < 126) hdr.push(mbit | p.length);
    else if (p.length < 65536) hdr.push(mbit | 126, p.length >> 8, p.length & 0xff);
    else {
        hdr.push(mbit | 127);
        const l = Buffer.alloc(8);
        l.writeBigUInt64BE(BigInt(opts.claim || p.length));
        hdr.push(...l);
    }
    const m = opts.nomask ? p : Buffer.from(p.map((b, i) => b ^ mask[i % 4]));
    return Buffer.concat([Buffer.from(hdr), opts.nomask ? Buffer.alloc(0) : mask, m]);
}

async function bad(url, base) {
    deadline(60);
    const u = new URL(url);
    const host = u.hostname;
    const port = Number(u.port);
    const path = u.pathname;
    let failures = 0;
    const expect = (what, cond, detail) => {
        console.log(`${cond ? 'ok' : 'FAIL'} ${what}${detail ? ' (' + detail + ')' : ''}`);
        if (!cond) failures++;
    };
    // invalid JSON: an error message, and the socket keeps serving
    {
        const ws = new WebSocket(url);
        const msgs = [];
        await new Promise((r) => ws.on('open', r));
        ws.on('message', (d) => msgs.push(body(d)));
        ws.send('{"create_request": nope');
        ws.send(Buffer.from('{"create_request":{"key":"' + b64('bad/k') + '"}}'), { binary: true });
        ws.send('[1,2,3]');
        const t0 = Date.now();
        while (msgs.length < 3 && Date.now() - t0 < 5000) await sleep(10);
        const errs = msgs.filter((m) => m.error);
        const created = msgs.filter((m) => m.created);
        expect('invalid JSON gets an error message', errs.length === 2 && errs[0].error.grpc_code === 3,
            JSON.stringify(errs[0]));
        expect('the socket still creates watches after bad messages', created.length === 1);
        ws.close();
    }
    // a message over max-request-bytes: closed with 1009
    {
        const ws = new WebSocket(url, { maxPayload: 1 << 20 });
        await new Promise((r) => ws.on('open', r));
        const code = await new Promise((r) => {
            ws.on('close', (c) => r(c));
            ws.on('error', () => {});
            ws.send('{"create_request":{"key":"' + 'A'.repeat(3 << 20) + '"}}');
        });
        expect('an oversized message closes with 1009', code === 1009, 'close ' + code);
    }
    // the same oversized message in 64 KiB fragments
    {
        const ws = new WebSocket(url);
        await new Promise((r) => ws.on('open', r));
        const code = await new Promise((r) => {
            ws.on('close', (c) => r(c));
            ws.on('error', () => {});
            const piece = 'A'.repeat(65536);
            for (let i = 0; i < 48; i++) ws.send(piece, { fin: false });
            ws.send('"}}', { fin: true });
        });
        expect('an oversized fragmented message closes with 1009', code === 1009, 'close ' + code);
    }
    // raw frames: unmasked, reserved bits, bad opcode, invalid UTF-8, a
    // length claiming 2^62 bytes, and a torn header
    const cases = [
        ['reserved bits set', masked(1, '{}', { rsv: 0x40 })],
        ['opcode 3 (reserved)', masked(3, '{}')],
        ['invalid UTF-8 in a text frame', masked(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))],
        ['a frame claiming 2^62 bytes', masked(1, Buffer.alloc(70000, 0x41), { claim: 2 ** 62 }).slice(0, 80)],
        ['a continuation with no message', masked(0, '{}')],
        ['a ping of 200 bytes', masked(9, Buffer.alloc(200, 0x41))],
    ];
    for (const [what, frame] of cases) {
        const r = await rawFrame(host, port, path, frame);
        const st = closeStatus(r.data);
        // a close frame (lws then waits for the peer's), or the TCP close
        expect(`${what}: closed`, r.upgraded && (st !== 0 || !r.timeout), `close status ${st}`);
    }
    // An unmasked client frame: RFC 6455 says close; lws 4.1 does not check
    // the mask bit and serves it as a message. Either is safe; say which.
    {
        const r = await rawFrame(host, port, path, masked(1, '{"progress_request":{}}', { nomask: true }));
        const st = closeStatus(r.data);
        const served = r.data.includes('"watch_id":"-1"');
        expect('an unmasked client frame: closed or served, never a hang', r.upgraded && (st !== 0 || served || !r.timeout),
            served ? 'served as a message (lws 4.1 does not enforce masking)' : `close status ${st}`);
    }
    // an upgrade somewhere else is refused
    {
        const r = await rawFrame(host, port, '/v3/kv/range', null);
        expect('an upgrade outside the watch paths is refused', !r.upgraded);
    }
    // still serving: a put and a watch on a fresh socket
    const rev = await put(base, 'bad/after', 'fine');
    const seen = [];
    await session(url, 'bad/after', rev, (l, ws) => {
        seen.push(l);
        ws.close();
    });
    expect('the server still serves watches after the abuse', seen[0] === `${rev} bad/after fine`, seen[0]);
    if (failures > 0) process.exit(1);
}

const [mode, ...a] = process.argv.slice(2);
const modes = {
    rev: async () => console.log(await currentRev(a[0])),
    writer: () => writer(a[0], a[1], Number(a[2]), Number(a[3]), a[4]),
    client: () => client(a[0], a[1], a[2], a[3]),
    cut: () => cut(a[0], a[1], a[2], Number(a[3])),
    multi: () => multi(a[0], a[1]),
    slow: () => slow(a[0], a[1], a[2], Number(a[3]), a[4], a[5]),
    bad: () => bad(a[0], a[1]),
};
if (!modes[mode]) die('unknown mode ' + mode);
modes[mode]().then(
    () => process.exit(0),
    (e) => die(e.stack || String(e)),
);
