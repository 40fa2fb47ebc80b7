// ws_mux.mjs - drives ws_mux.test: one multiplexed WebSocket
// (/api/v1/stream, npm ws) carrying a session's heartbeats, two registry
// subscriptions and one config subscription. Prints "ok what" / "FAIL
// what" lines.
//
//   node ws_mux.mjs BASE_HTTP BASE_WS SUBS_MAX
import { createRequire } from "module";
const require = createRequire(import.meta.url);
const WebSocket = require(process.env.WS_MODULE);

const [base, wsBase, subsMaxArg] = process.argv.slice(2);
const SUBS_MAX = parseInt(subsMaxArg, 10);
const TTL = 3;
const REG = "/api/v1/registry/shop";
const CFG = "/api/v1/config/prod/pay/app.json";

let failures = 0;
function ok(what) { console.log("ok " + what); }
function fail(what) { failures++; console.log("FAIL " + what); }
function check(c, what, diag) {
    if (c) ok(what);
    else { fail(what); if (diag !== undefined) console.log(JSON.stringify(diag).slice(0, 800)); }
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

async function until(pred, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        const v = pred();
        if (v) return v;
        await sleep(25);
    }
    return pred();
}

// One socket: every message kept in order; answers found by id.
class Mux {
    constructor(token) {
        this.msgs = [];
        this.closed = false;
        this.ws = new WebSocket(`${wsBase}/api/v1/stream`,
            token ? { headers: { Authorization: token } } : undefined);
        this.open = new Promise((res, rej) => {
            this.ws.on("open", res);
            this.ws.on("error", rej);
        });
        this.ws.on("message", (d) => this.msgs.push(JSON.parse(d.toString())));
        this.ws.on("close", () => { this.closed = true; });
    }
    send(o) { this.ws.send(typeof o === "string" ? o : JSON.stringify(o)); }
    async call(o, ms = 5000) {
        this.send(o);
        return until(() => this.msgs.find((m) => m.id === o.id && m.type === undefined), ms);
    }
    events(sub) { return this.msgs.filter((m) => m.sub === sub && m.type !== undefined); }
    async event(sub, pred, ms = 5000) {
        return until(() => this.events(sub).find(pred), ms);
    }
    close() { this.ws.terminate(); }
}

const isErr = (a, code, field) =>
    a && a.error && a.error.code === code && (field === undefined || a.error.field === field);

async function main() {
    // a config to follow, and an instance of pay under a session of its own
    let r = await http("PUT", CFG, { content: '{"v":1}', format: "json" });
    check(r.status === 200 && r.json.version === 1, "publish app.json version 1", r.json);
    r = await http("PUT", `${REG}/pay/p1`, { addr: "127.0.0.1:9001", ttl: 60 });
    check(r.status === 200, "register pay/p1 (its own session)", r.json);

    r = await http("GET", "/api/v1/stream");
    check(r.status === 400 && /WebSocket/.test(r.json.message),
        "a plain GET of /api/v1/stream is 400, saying it is a WebSocket", r.json);
    let mx = new Mux();
    await mx.open;
    ok("the multiplexed socket opens");

    // a session made on the socket
    let a = await mx.call({ id: 1, op: "session", ttl: TTL });
    check(a && typeof a.session === "string" && a.ttl === TTL && a.revision > 0,
        "op session answers {id,session,ttl,revision}", a);
    const S = a.session;
    r = await http("PUT", `${REG}/cart/c1`, { addr: "127.0.0.1:8001", session: S });
    check(r.status === 200, "register cart/c1 under the socket's session", r.json);

    // three subscriptions
    a = await mx.call({ id: 10, op: "subscribe", kind: "registry", namespace: "shop", service: "cart" });
    check(a && a.sub === 10 && !a.error, "subscribe registry shop/cart answers {id:10,sub:10}", a);
    a = await mx.call({ id: 11, op: "subscribe", kind: "registry", namespace: "shop", service: "pay" });
    check(a && a.sub === 11 && !a.error, "subscribe registry shop/pay answers {id:11,sub:11}", a);
    a = await mx.call({
        id: 12, op: "subscribe", kind: "config", namespace: "prod", app: "pay",
        name: "app.json", client_id: "mux-1", labels: { zone: "z1" },
    });
    check(a && a.sub === 12 && !a.error, "subscribe config prod/pay/app.json answers {id:12,sub:12}", a);
    let s10 = await mx.event(10, (m) => m.type === "snapshot");
    check(s10 && s10.instances.length === 1 && s10.instances[0].id === "c1",
        "sub 10's snapshot holds cart/c1 only", s10);
    let s11 = await mx.event(11, (m) => m.type === "snapshot");
    check(s11 && s11.instances.length === 1 && s11.instances[0].id === "p1",
        "sub 11's snapshot holds pay/p1 only", s11);
    let s12 = await mx.event(12, (m) => m.type === "snapshot");
    check(s12 && s12.configs.length === 1 && s12.configs[0].version === 1,
        "sub 12's snapshot holds app.json version 1", s12);
    const ansIdx = mx.msgs.findIndex((m) => m.id === 10);
    const snapIdx = mx.msgs.findIndex((m) => m.sub === 10 && m.type === "snapshot");
    check(ansIdx >= 0 && ansIdx < snapIdx, "a subscribe's answer comes before its snapshot");

    // heartbeats through the socket for longer than the TTL
    let kaOk = true;
    const t0 = Date.now();
    for (let k = 0; Date.now() - t0 < (TTL * 2 + 1) * 1000; k++) {
        a = await mx.call({ id: 100 + k, op: "keepalive", session: S });
        if (!a || a.error || !(a.ttl > 0) || a.session !== S) { kaOk = false; console.log(JSON.stringify(a)); break; }
        await sleep(800);
    }
    check(kaOk, `keepalive answers {id,session,ttl} for ${TTL * 2 + 1} s (TTL ${TTL} s)`);
    r = await http("GET", `${REG}/cart/c1`);
    check(r.status === 200, "cart/c1 is still registered after more than its TTL", r.json);

    // live events, each tagged with its subscription
    r = await http("PUT", `${REG}/cart/c2`, { addr: "127.0.0.1:8002", session: S });
    const c2rev = r.json.revision;
    let e = await mx.event(10, (m) => m.type === "put" && m.instance.id === "c2");
    check(e && e.revision === c2rev, "sub 10 gets the put of cart/c2 at its revision", e);
    r = await http("PUT", `${REG}/pay/p2`, { addr: "127.0.0.1:9002", ttl: 60 });
    e = await mx.event(11, (m) => m.type === "put" && m.instance.id === "p2");
    check(e && e.instance.service === "pay", "sub 11 gets the put of pay/p2", e);
    check(!mx.events(10).some((m) => m.instance && m.instance.service !== "cart") &&
        !mx.events(11).some((m) => m.instance && m.instance.service !== "pay"),
        "no event reaches the other registry subscription");
    r = await http("PUT", CFG, { content: '{"v":2}', format: "json" });
    e = await mx.event(12, (m) => m.type === "put" && m.version === 2);
    check(e && e.name === "app.json", "sub 12 gets app.json version 2", e);
    mx.send({ op: "ack", sub: 12, name: "app.json", version: 2 });
    a = await mx.call({ id: 200, op: "ack", sub: 12, name: "app.json", version: 2 });
    check(a && a.sub === 12 && !a.error, "an ack with an id is answered {id,sub}", a);
    let seen = null;
    for (let i = 0; i < 40 && !seen; i++) {
        r = await http("GET", `${CFG}/subscribers`);
        seen = (r.json.subscribers || []).find((x) => x.client_id === "mux-1" && x.acked_version === 2);
        if (!seen) await sleep(50);
    }
    check(seen && seen.labels && seen.labels.zone === "z1",
        "GET .../subscribers shows mux-1 (zone z1) acked version 2", r.json);

    // unsubscribe 11: nothing more for it
    a = await mx.call({ id: 300, op: "unsubscribe", sub: 11 });
    check(a && a.sub === 11 && a.revision > 0 && !a.error,
        "unsubscribe answers {id,sub,revision}", a);
    const n11 = mx.events(11).length;
    await http("PUT", `${REG}/pay/p3`, { addr: "127.0.0.1:9003", ttl: 60 });
    r = await http("PUT", `${REG}/cart/c3`, { addr: "127.0.0.1:8003", session: S });
    e = await mx.event(10, (m) => m.type === "put" && m.instance.id === "c3");
    check(e && mx.events(11).length === n11,
        "after unsubscribe, pay/p3 is not pushed (cart/c3, written after it, is)");

    // bad requests: each answered, the socket stays
    const bad = [
        ["not json", "malformed JSON", (x) => isErr(x, "bad_request") && /line 1/.test(x.error.message)],
        ["[1,2]", "a JSON array", (x) => isErr(x, "bad_request")],
        [{ id: 20 }, "no op", (x) => x.id === 20 && isErr(x, "bad_request", "op")],
        [{ id: 21, op: "frobnicate" }, "an unknown op", (x) => x.id === 21 && isErr(x, "bad_request", "op")],
        [{ id: 22, op: "unsubscribe", sub: 999 }, "an unknown sub", (x) => x.id === 22 && isErr(x, "not_found", "sub")],
        [{ id: 23, op: "ack", sub: 999, name: "app.json", version: 2 }, "an ack of an unknown sub", (x) => isErr(x, "not_found", "sub")],
        [{ id: 10, op: "subscribe", kind: "registry", namespace: "shop" }, "a subscribe id already open", (x) => x.id === 10 && isErr(x, "conflict", "id")],
        [{ id: 24, op: "subscribe", kind: "registry", namespace: "bad name!" }, "a bad namespace", (x) => isErr(x, "bad_request", "namespace")],
        [{ id: 25, op: "subscribe", kind: "queue", namespace: "shop" }, "a bad kind", (x) => isErr(x, "bad_request", "kind")],
        [{ id: 26, op: "subscribe", kind: "registry", namespace: "shop", since: -1 }, "a negative since", (x) => isErr(x, "bad_request", "since")],
        [{ id: 27, op: "subscribe", kind: "config", namespace: "prod", labels: { "bad key": "x" } }, "bad labels", (x) => isErr(x, "bad_request", "labels")],
        [{ id: "s", op: "subscribe", kind: "registry", namespace: "shop" }, "a subscribe with a string id", (x) => x.id === "s" && isErr(x, "bad_request", "id")],
        [{ id: 28, op: "keepalive", session: "zz" }, "a malformed session", (x) => isErr(x, "bad_request", "session")],
        [{ id: 29, op: "keepalive", session: "123456789abcdef" }, "an unknown session", (x) => x.id === 29 && isErr(x, "session_expired")],
        [{ id: 30, op: "ack", sub: 10, name: "app.json", version: 2 }, "an ack on a registry sub", (x) => isErr(x, "bad_request", "sub")],
        [{ id: 31, op: "ack", sub: 12, name: "app.json", version: 99 }, "an ack of a version never delivered", (x) => x.sub === 12 && isErr(x, "bad_request", "version")],
        // acks without an id are read without jansson (http_ack.c): refused
        // ones are still answered, with the sub and the field
        [{ op: "ack", sub: 12, name: "app.json", version: 98 }, "an ack (no id) of a version never delivered", (x) => x.id === undefined && x.sub === 12 && isErr(x, "bad_request", "version")],
        [{ op: "ack", sub: 12, name: "no such!", version: 2 }, "an ack (no id) with a bad name", (x) => x.sub === 12 && isErr(x, "bad_request", "name")],
        [{ op: "ack", sub: 998, name: "app.json", version: 2 }, "an ack (no id) of an unknown sub", (x) => isErr(x, "not_found", "sub")],
        [{ op: "ack", sub: 10, version: 2 }, "an ack (no id) on a registry sub", (x) => isErr(x, "bad_request", "sub")],
        [{ id: 32, op: "session", ttl: 0 }, "a session with ttl 0", (x) => isErr(x, "bad_request", "ttl")],
        ["{\"id\":33,\"op\":\"ping\",\"pad\":\"" + "x".repeat(70000) + "\"}", "a message over --ws-message-bytes-max", (x) => isErr(x, "too_large")],
        // the error quotes the op, cut at 64 bytes: inside the "é" once,
        // which made the answer unencodable and ended the socket
        [{ id: 34, op: "a".repeat(63) + "\u00e9" }, "an unknown op cut inside a UTF-8 character", (x) => x.id === 34 && isErr(x, "bad_request", "op")],
    ];
    for (const [msg, what, pred] of bad) {
        const before = mx.msgs.length;
        mx.send(msg);
        const got = await until(() => mx.msgs.slice(before).find((m) => m.error), 5000);
        check(got && pred(got), `${what} is answered with an error`, got);
    }
    // an unsubscribe sent before its subscribe was answered: both answered
    mx.send({ id: 40, op: "subscribe", kind: "registry", namespace: "shop", service: "early" });
    a = await mx.call({ id: 41, op: "unsubscribe", sub: 40 });
    const a40 = await until(() => mx.msgs.find((m) => m.id === 40), 5000);
    check(a && a.sub === 40 && !a.error && a40 && (isErr(a40, "canceled") || (a40.sub === 40 && !a40.error)) &&
        mx.msgs.filter((m) => m.id === 40).length === 1,
        "an unsubscribe before the subscribe's answer: the subscribe is answered once, then the unsubscribe", [a40, a]);
    // the bound on subscriptions: 10 and 12 are open
    let subsOk = true;
    for (let i = 0; i < SUBS_MAX - 2; i++) {
        a = await mx.call({ id: 400 + i, op: "subscribe", kind: "registry", namespace: "shop", service: "s" + i });
        if (!a || a.error) { subsOk = false; console.log(JSON.stringify(a)); }
    }
    check(subsOk, `subscriptions up to --ws-subscriptions-max (${SUBS_MAX}) are served`);
    a = await mx.call({ id: 499, op: "subscribe", kind: "registry", namespace: "shop", service: "one-more" });
    check(isErr(a, "resource_exhausted"), "one past --ws-subscriptions-max is refused", a);
    r = await http("GET", "/metrics");
    const metric = (name) => {
        const m = r.text.match(new RegExp("^" + name + " (\\d+)$", "m"));
        return m ? parseInt(m[1], 10) : -1;
    };
    check(metric("cairn_http_ws_mux_subscriptions") === SUBS_MAX &&
        metric("cairn_http_ws_mux_limit_hits_total") === 2 &&
        metric("cairn_http_ws_mux_errors_total") >= bad.length + 1,
        "/metrics: cairn_http_ws_mux_subscriptions, _limit_hits_total, _errors_total",
        r.text.split("\n").filter((l) => l.startsWith("cairn_http_ws_mux")));
    a = await mx.call({ id: 500, op: "keepalive", session: S });
    check(a && a.ttl > 0 && !mx.closed, "the socket still serves after every bad request", a);

    // resume after a reconnect: exactly what was missed, once
    const last10 = Math.max(...mx.events(10).map((m) => m.revision));
    const last12 = Math.max(...mx.events(12).map((m) => m.revision));
    a = await mx.call({ id: 501, op: "keepalive", session: S });
    mx.close();
    r = await http("PUT", `${REG}/cart/c4`, { addr: "127.0.0.1:8004", session: S });
    const c4rev = r.json.revision;
    r = await http("DELETE", `${REG}/cart/c2`);
    const delRev = r.json.revision;
    r = await http("PUT", CFG, { content: '{"v":3}', format: "json" });
    mx = new Mux();
    await mx.open;
    a = await mx.call({ id: 10, op: "subscribe", kind: "registry", namespace: "shop", service: "cart", since: last10 });
    check(a && a.sub === 10 && !a.error, "resubscribe with since= on a new socket", a);
    a = await mx.call({
        id: 12, op: "subscribe", kind: "config", namespace: "prod", app: "pay",
        name: "app.json", client_id: "mux-1", labels: "zone=z1", since: last12,
    });
    check(a && a.sub === 12 && !a.error, "resubscribe config with since= (labels as k=v)", a);
    await mx.event(10, (m) => m.type === "delete" && m.instance.id === "c2");
    await mx.event(12, (m) => m.type === "put" && m.version === 3);
    const ev10 = mx.events(10);
    check(ev10.length === 2 && ev10[0].type === "put" && ev10[0].instance.id === "c4" &&
        ev10[0].revision === c4rev && ev10[1].type === "delete" && ev10[1].revision === delRev,
        "sub 10 resumes with exactly the put of c4 and the delete of c2, no snapshot", ev10);
    const ev12 = mx.events(12);
    check(ev12.length === 1 && ev12[0].version === 3,
        "sub 12 resumes with exactly version 3", ev12);

    // heartbeats stop: the session expires, its instances go, removals pushed
    const tStop = Date.now();
    const gone = await until(() => {
        const ids = mx.events(10).filter((m) => m.type === "delete").map((m) => m.instance.id);
        return ["c1", "c3", "c4"].every((x) => ids.includes(x));
    }, (TTL * 3 + 5) * 1000);
    check(gone, `without heartbeats the session expires and sub 10 is pushed the deletes of c1, c3, c4 (${Date.now() - tStop} ms)`,
        mx.events(10));
    r = await http("GET", `${REG}/cart/c1`);
    check(r.status === 404, "cart/c1 is gone", r.json);
    a = await mx.call({ id: 600, op: "keepalive", session: S });
    check(isErr(a, "session_expired"), "keepalive of the expired session: session_expired", a);
    r = await http("GET", `${REG}/pay/p1`);
    check(r.status === 200, "pay/p1 (another session) stays", r.json);
    mx.close();
    await compacted();
    await stalled();
}

// A since= older than the compacted history: the subscription says
// "compacted" and sends a fresh snapshot, tagged like every message.
async function compacted() {
    let r = await http("PUT", `${REG}/pay/p9`, { addr: "127.0.0.1:9009", ttl: 60 });
    const rev = r.json.revision;
    r = await http("POST", "/v3/kv/compaction", { revision: String(rev), physical: true });
    check(r.status === 200, `compact the store at ${rev}`, r.text);
    const mx = new Mux();
    await mx.open;
    const a = await mx.call({ id: 9, op: "subscribe", kind: "registry", namespace: "shop", service: "pay", since: 1 });
    const snap = await mx.event(9, (m) => m.type === "snapshot");
    const ev = mx.events(9);
    check(a && a.sub === 9 && ev.length === 2 && ev[0].type === "compacted" &&
        ev[0].compact_revision === rev && snap && snap.revision >= rev &&
        snap.instances.some((i) => i.id === "p9"),
        "since= below the compaction: {sub,type:compacted}, then a fresh snapshot", ev);
    mx.close();
}

// A socket whose client stops reading: the backlog is bounded
// (LIMIT_CONN_OUT_BYTES, 16 MiB), the socket is cut after the stall
// timeout (15 s), and its subscription resumes with since= on a new socket
// with nothing lost or repeated.
// cairn_http_streams_stalled_total from /metrics (0 when it cannot be read)
async function stalledTotal() {
    try {
        const m = (await http("GET", "/metrics")).text.match(/^cairn_http_streams_stalled_total (\d+)$/m);
        return m ? parseInt(m[1], 10) : 0;
    } catch {
        return 0;
    }
}

async function stalled() {
    const N = 450; // x ~60 KiB documents: ~27 MiB, past the bound and the kernel's buffers
    let r = await http("POST", "/api/v1/sessions", { ttl: 600 });
    const S2 = r.json.session;
    const st = new Mux();
    await st.open;
    let a = await st.call({ id: 7, op: "subscribe", kind: "registry", namespace: "shop", service: "big" });
    check(a && a.sub === 7 && await st.event(7, (m) => m.type === "snapshot"),
        "stall: subscribe shop/big and get its snapshot", a);
    const stalled0 = await stalledTotal();
    st.ws._socket.pause(); // stop reading: the kernel window fills
    const pad = "x".repeat(60000);
    const revs = [];
    for (let i = 0; i < N; i++) {
        r = await http("PUT", `${REG}/big/b${i}`, { addr: "127.0.0.1:7000", session: S2, meta: { pad } });
        if (r.status !== 200) { fail("stall: register big/b" + i); console.log(r.text.slice(0, 200)); return; }
        revs.push(r.json.revision);
    }
    // past the 15 s stall cut-off: wait until the server counts the cut in
    // cairn_http_streams_stalled_total (at most 45 s) rather than 20 s
    const cutBy = Date.now() + 45000;
    while (Date.now() < cutBy && (await stalledTotal()) <= stalled0) await sleep(100);
    st.ws._socket.resume();
    await until(() => st.closed, 10000);
    const got = st.events(7).filter((m) => m.type === "put").map((m) => m.revision);
    check(st.closed && got.length < N,
        `stall: the server cut the socket that did not read (it had ${got.length} of ${N} events)`);
    r = await http("GET", "/metrics");
    const m = r.text.match(/^cairn_http_streams_stalled_total (\d+)$/m);
    check(m && parseInt(m[1], 10) >= 1, "stall: cairn_http_streams_stalled_total counts the cut", m && m[0]);
    const last = got.length > 0 ? got[got.length - 1] : revs[0] - 1;
    const mx = new Mux();
    await mx.open;
    a = await mx.call({ id: 7, op: "subscribe", kind: "registry", namespace: "shop", service: "big", since: last });
    await until(() => mx.events(7).filter((x) => x.type === "put").length >= N - got.length, 30000);
    const rest = mx.events(7).filter((x) => x.type === "put").map((x) => x.revision);
    const all = got.concat(rest);
    check(a && a.sub === 7 && all.length === N && all.every((v, i) => v === revs[i]),
        `stall: resumed with since=${last}, the ${rest.length} missed events came once, in order`,
        { got: got.length, rest: rest.length, first: rest[0], want: revs[got.length] });
    mx.close();
    await http("DELETE", `/api/v1/sessions/${S2}`);
}

// Auth on (ws_mux.test set it up): alice may read /registry/a/ only.
async function authMain(token) {
    const mk = (t) => new Mux(t);
    let mx = mk(token);
    await mx.open;
    let a = await mx.call({ id: 1, op: "subscribe", kind: "registry", namespace: "a" });
    check(a && a.sub === 1 && !a.error, "auth: the upgrade's token subscribes to namespace a", a);
    check(await mx.event(1, (m) => m.type === "snapshot"), "auth: and gets its snapshot");
    a = await mx.call({ id: 2, op: "subscribe", kind: "registry", namespace: "b" });
    check(isErr(a, "permission_denied"), "auth: namespace b is permission_denied", a);
    a = await mx.call({ id: 3, op: "subscribe", kind: "registry", namespace: "b", since: 1 });
    check(isErr(a, "permission_denied"), "auth: namespace b with since= is permission_denied too", a);
    a = await mx.call({ id: 4, op: "subscribe", kind: "registry", namespace: "a", token: "bogus" });
    check(isErr(a, "unauthenticated"), "auth: a request's own bad token is unauthenticated", a);
    check(!mx.closed, "auth: the socket stays open");
    mx.close();
    mx = mk(null);
    await mx.open;
    a = await mx.call({ id: 1, op: "subscribe", kind: "registry", namespace: "a" });
    check(isErr(a, "unauthenticated"), "auth: no token is unauthenticated", a);
    a = await mx.call({ id: 2, op: "subscribe", kind: "registry", namespace: "a", token });
    check(a && a.sub === 2 && !a.error, "auth: a token in the subscribe is used for it", a);
    mx.close();
}

(process.env.WS_MUX_TOKEN !== undefined ? authMain(process.env.WS_MUX_TOKEN) : main()).then(() => process.exit(failures ? 1 : 0), (e) => {
    console.log("FAIL helper threw: " + (e && e.stack ? e.stack : e));
    process.exit(2);
});
