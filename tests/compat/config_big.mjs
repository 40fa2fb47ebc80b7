// config_big.mjs - drives config_big.test: N WebSocket subscribers (npm ws)
// of one config, half on single-purpose streams and half on the
// multiplexed socket, receive a large publish; the server's peak memory
// must not grow with N copies of it. Prints "ok what" / "FAIL what".
//
//   node config_big.mjs BASE_HTTP BASE_WS N PID
import { readFileSync } from "fs";
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const WebSocket = require(process.env.WS_MODULE);

const [base, wsBase, nArg, pid] = process.argv.slice(2);
const N = parseInt(nArg, 10);
const CFG = "/api/v1/config/prod/big/blob.txt";
const WATCH = "/api/v1/watch/config/prod/big/blob.txt";
const SIZE = 768 * 1024;

function ok(what) { console.log("ok " + what); }
function fail(what) { console.log("FAIL " + what); }
function check(c, what, diag) {
    if (c) ok(what); else { fail(what); if (diag !== undefined) console.log(JSON.stringify(diag).slice(0, 800)); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        const v = pred();
        if (v) return v;
        await sleep(50);
    }
    return pred();
}
async function http(method, path, body) {
    const r = await fetch(base + path, {
        method, body: body === undefined ? undefined : JSON.stringify(body),
        headers: { "content-type": "application/json" },
    });
    const t = await r.text();
    let j = null;
    try { j = JSON.parse(t); } catch { /* not JSON */ }
    return { status: r.status, json: j, text: t };
}
function hwmKiB() {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmHWM:\s+(\d+) kB/m);
    return m ? parseInt(m[1], 10) : -1;
}
function metric(text, name) {
    const m = text.match(new RegExp("^" + name + " (\\d+)$", "m"));
    return m ? parseInt(m[1], 10) : -1;
}

async function main() {
    // content with characters JSON escapes, so the message is larger still
    const content = ("line \"quoted\" \\ tab\t" + "x".repeat(100) + "\n").repeat(SIZE / 128);
    let r = await http("PUT", CFG, { content: "v1", format: "text", message: "small" });
    check(r.status === 200, "publish a small first version", r.json);
    const got = []; // per subscriber: the big content received
    const socks = [];
    let snaps = 0;
    for (let i = 0; i < N; i++) {
        const mux = i % 2 === 1;
        const ws = new WebSocket(wsBase + (mux ? "/api/v1/stream" : WATCH + `?client_id=c${i}`),
            { maxPayload: 8 << 20 });
        socks.push(ws);
        got.push(null);
        ws.on("open", () => {
            if (mux) ws.send(JSON.stringify({ id: 1, op: "subscribe", kind: "config", namespace: "prod", app: "big", name: "blob.txt", client_id: `c${i}` }));
        });
        ws.on("message", (d) => {
            const m = JSON.parse(d.toString());
            if (m.type === "snapshot") snaps++;
            if (m.type === "put" && m.content !== undefined && m.content.length > 1000) got[i] = m.content;
        });
    }
    await until(() => snaps === N, 30000);
    check(snaps === N, `${N} subscribers (half multiplexed) have their snapshot`, snaps);
    await sleep(300);
    const before = hwmKiB();
    const m0 = (await http("GET", "/metrics")).text;
    r = await http("PUT", CFG, { content, format: "text", message: "big" });
    check(r.status === 200, `publish ${Math.round(content.length / 1024)} KiB`, r.json);
    await until(() => got.every((c) => c !== null), 60000);
    const all = got.filter((c) => c === content).length;
    check(all === N, `every subscriber received the large release intact (${all} of ${N})`);
    const after = hwmKiB();
    const m1 = (await http("GET", "/metrics")).text;
    const byRef = metric(m1, "cairn_stream_push_by_reference_total") - metric(m0, "cairn_stream_push_by_reference_total");
    check(byRef === N, `each of the ${N} messages was queued by reference (${byRef})`);
    const growthMiB = (after - before) / 1024;
    const copiesMiB = N * content.length / (1 << 20);
    // one shared copy, not N: well under a quarter of the N copies
    check(before > 0 && growthMiB < copiesMiB / 4,
        `server peak memory grew ${growthMiB.toFixed(1)} MiB for ${N} subscribers (N copies would be ${copiesMiB.toFixed(0)} MiB)`);
    for (const ws of socks) ws.terminate();
    // the server is still well and its queues released everything
    r = await http("GET", CFG);
    check(r.status === 200 && r.json.version === 2, "the server answers after the subscribers left", r.json);
    process.exit(0);
}
main().catch((e) => { fail("helper: " + e); process.exit(1); });
