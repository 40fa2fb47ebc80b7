// config_ws.mjs - drives config_ws.test: N WebSocket subscribers (npm ws)
// of one config, each with a client id and a zone label; every "put" is
// acknowledged after it arrives. Prints "ok what" / "FAIL what" lines.
//
//   node config_ws.mjs BASE_HTTP BASE_WS N
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const WebSocket = require(process.env.WS_MODULE);

const [base, wsBase, nArg] = process.argv.slice(2);
const N = parseInt(nArg, 10);
const CFG = "/api/v1/config/prod/pay/app.json";
const WATCH = "/api/v1/watch/config/prod/pay/app.json";

function ok(what) { console.log("ok " + what); }
function fail(what) { console.log("FAIL " + what); }
function check(c, what, diag) {
    if (c) ok(what); else { fail(what); if (diag !== undefined) console.log(JSON.stringify(diag).slice(0, 800)); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

class Sub {
    constructor(i, since) {
        this.i = i;
        this.id = "client-" + i;
        this.zone = "z" + (i % 4);
        this.msgs = [];
        this.lastRev = 0;
        const q = `client_id=${this.id}&labels=zone=${this.zone}` +
            (since ? `&since=${since}` : "");
        this.ws = new WebSocket(`${wsBase}${WATCH}?${q}`);
        this.open = new Promise((res, rej) => {
            this.ws.on("open", res);
            this.ws.on("error", rej);
        });
        this.ws.on("message", (data) => {
            const m = JSON.parse(data.toString());
            this.msgs.push(m);
            if (m.revision) this.lastRev = Math.max(this.lastRev, m.revision);
            if (m.type === "put") {
                this.ws.send(JSON.stringify({ ack: { name: "app.json", version: m.version } }));
            }
        });
    }
    puts() { return this.msgs.filter((m) => m.type === "put"); }
    last() { const p = this.puts(); return p.length ? p[p.length - 1] : null; }
    close() { this.ws.terminate(); }
}

async function until(pred, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (pred()) return true;
        await sleep(50);
    }
    return pred();
}

async function main() {
    let r = await http("PUT", CFG, { content: '{"v":1}', format: "json", message: "one" });
    check(r.status === 200 && r.json.version === 1, "publish version 1", r.json);

    // N subscribers
    let subs = [];
    for (let i = 0; i < N; i++) {
        subs.push(new Sub(i));
        if (i % 100 === 99) await sleep(20);
    }
    await Promise.all(subs.map((s) => s.open));
    let snapped = await until(() => subs.every((s) => s.msgs.some((m) => m.type === "snapshot")), 60000);
    check(snapped, `${N} WebSocket subscribers open, each got a snapshot`);

    // a publish acknowledged by all, awaited by the PUT
    const t0 = Date.now();
    r = await http("PUT", CFG + "?wait_acks=1&timeout=60", { content: '{"v":2}', format: "json", message: "two" });
    const dt = Date.now() - t0;
    check(r.status === 200 && r.json.version === 2 && r.json.acks &&
        r.json.acks.acked === N && r.json.acks.subscribers === N && !r.json.acks.timed_out,
        `PUT ?wait_acks=1 answers after all ${N} subscribers acked (${dt} ms)`, r.json);
    const got2 = subs.filter((s) => s.last() && s.last().version === 2 && s.last().content === '{"v":2}').length;
    check(got2 === N, `all ${N} received version 2 with its content`, got2);
    r = await http("GET", CFG + "/subscribers");
    const view = r.json && r.json.subscribers || [];
    const acked = view.filter((v) => v.acked_version === 2 && v.acked_at).length;
    const ids = new Set(view.map((v) => v.client_id));
    check(r.status === 200 && view.length === N && acked === N && ids.size === N &&
        view.every((v) => v.labels && v.labels.zone && v.address),
        `the subscribers view lists ${N} clients with labels and address, each acked version 2`,
        { n: view.length, acked, sample: view[0] });
    check(typeof r.json.member === "string" && r.json.member.length > 0,
        "the subscribers view names the member whose streams it lists", r.json.member);
    r = await http("GET", "/metrics");
    const m = /cairn_config_publish_to_ack_seconds_count (\d+)/.exec(r.text);
    check(m && parseInt(m[1], 10) >= N, "the publish-to-ack histogram counted the acks", m && m[1]);

    // gray by percentage: about 10% of the ids, sticky across reconnects
    let rev0 = Math.max(...subs.map((s) => s.lastRev));
    r = await http("PUT", CFG + "/gray", { content: '{"v":"g"}', format: "json", rule: { percentage: 10 } });
    check(r.status === 200 && r.json.version === 3, "gray release (10%) opened as version 3", r.json);
    await sleep(1500);
    const grayed = new Set(subs.filter((s) => s.last().version === 3 && s.last().gray).map((s) => s.i));
    const others = subs.filter((s) => s.last().version === 2).length;
    check(grayed.size >= 70 * N / 1000 && grayed.size <= 130 * N / 1000 && grayed.size + others === N,
        `10%: ${grayed.size} of ${N} subscribers were pushed the gray release, the rest nothing new`, grayed.size);
    subs.forEach((s) => s.close());
    subs = [];
    for (let i = 0; i < N; i++) {
        subs.push(new Sub(i));
        if (i % 100 === 99) await sleep(20);
    }
    await Promise.all(subs.map((s) => s.open));
    await until(() => subs.every((s) => s.msgs.some((m) => m.type === "snapshot")), 60000);
    const again = subs.filter((s) => {
        const snap = s.msgs.find((m) => m.type === "snapshot");
        const c = snap && snap.configs[0];
        return c && ((c.gray === true) === grayed.has(s.i));
    }).length;
    check(again === N, `after reconnecting, each of the ${N} clients gets the same answer`, again);

    // labels rule: exactly zone=z1
    r = await http("PUT", CFG + "/gray", { content: '{"v":"z1"}', format: "json", rule: { labels: { zone: "z1" } } });
    await sleep(1500);
    const z1 = subs.filter((s) => s.last() && s.last().version === 4).map((s) => s.zone);
    check(r.status === 200 && z1.length === N / 4 && z1.every((z) => z === "z1"),
        `a labels rule reaches exactly the ${N / 4} zone=z1 subscribers`, { n: z1.length });
    // abandon: the z1 subscribers go back to version 2
    r = await http("DELETE", CFG + "/gray");
    await sleep(1500);
    const back = subs.filter((s) => s.zone === "z1" && s.last().version === 2 && !s.last().gray).length;
    check(r.status === 200 && back === N / 4, `abandon is pushed to the ${N / 4} it concerns`, back);
    // promote: everybody
    await http("PUT", CFG + "/gray", { content: '{"v":"p"}', format: "json", rule: { percentage: 50 } });
    r = await http("POST", CFG + "/gray/promote", {});
    await sleep(2000);
    const prom = subs.filter((s) => s.last().version === 5 && s.last().content === '{"v":"p"}' && !s.last().gray).length;
    check(r.status === 200 && prom === N, `promote is pushed to all ${N}`, prom);

    // resume: close, publish twice, reopen with since: exactly the two
    const since = subs.map((s) => s.lastRev);
    subs.forEach((s) => s.close());
    await http("PUT", CFG, { content: '{"v":6}', format: "json" });
    await http("PUT", CFG, { content: '{"v":7}', format: "json" });
    subs = [];
    for (let i = 0; i < N; i++) {
        subs.push(new Sub(i, since[i]));
        if (i % 100 === 99) await sleep(20);
    }
    await Promise.all(subs.map((s) => s.open));
    await until(() => subs.every((s) => s.puts().length >= 2), 60000);
    await sleep(500);
    const exact = subs.filter((s) => {
        const v = s.puts().map((m) => m.version);
        return v.length === 2 && v[0] === 6 && v[1] === 7 && !s.msgs.some((m) => m.type === "snapshot");
    }).length;
    check(exact === N, `${N} subscribers resumed with since=: versions 6 and 7 once each, no snapshot`, exact);
    // a bad ack is an error message, the stream stays
    const s0 = subs[0];
    s0.ws.send(JSON.stringify({ ack: { name: "app.json", version: 99 } }));
    s0.ws.send("not json");
    await sleep(500);
    const errs = s0.msgs.filter((m) => m.type === "error").length;
    check(errs === 2 && s0.ws.readyState === WebSocket.OPEN,
        "an ack of a version never delivered and a message that is not JSON: errors, the stream stays open", errs);
    subs.forEach((s) => s.close());
    void rev0;
}

main().then(() => process.exit(0), (e) => { fail("exception: " + (e && e.stack || e)); process.exit(1); });
