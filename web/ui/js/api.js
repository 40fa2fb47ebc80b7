// api.js - the console's only way to the server: etcd's JSON gateway
// (/v3/...), the registry and config API (/api/v1/..., rest()) and its
// Server-Sent Events streams (sse()), and /metrics on the member that
// served the page, or on another member's client URL (the cluster page).
// Everything here is a plain HTTP call a script could make too.
//
// Keys and values travel as base64 (the gateway's bytes). Inside the
// console a key or value is a "byte string": a JS string whose char codes
// are the bytes 0..255 (what atob gives), so that ordering, prefixes and
// range ends work on bytes, as the server's do. text() and bytes() convert
// for display and input. 64-bit numbers stay strings (JSON numbers would
// lose precision past 2^53); BigInt does the arithmetic where needed.

const state = {
    token: sessionStorage.getItem('cairn.token') || '',
    user: sessionStorage.getItem('cairn.user') || '',
    onAuthLost: null,
};

export class ApiError extends Error {
    constructor(message, code, status, body) {
        super(message);
        this.code = code; // the gateway's gRPC code, or /api/v1's code string
        this.status = status; // HTTP status (0: no answer)
        this.body = body || null; // /api/v1's error body (field, line, column)
    }
    get permissionDenied() {
        return this.code === 7 || this.code === 'permission_denied' || /permission denied/i.test(this.message);
    }
    get authNeeded() {
        // etcd: "user name is empty" (no token) or "invalid auth token"
        // (expired simple token), code 3 or 16; /api/v1: unauthenticated
        return this.code === 16 || this.code === 'unauthenticated' ||
            /user name is empty|invalid auth token|auth token is invalid/i.test(this.message);
    }
}

export function session() {
    return { token: state.token, user: state.user };
}

export function setSession(user, token) {
    state.user = user;
    state.token = token;
    if (token) {
        sessionStorage.setItem('cairn.token', token);
        sessionStorage.setItem('cairn.user', user);
    } else {
        sessionStorage.removeItem('cairn.token');
        sessionStorage.removeItem('cairn.user');
    }
}

export function onAuthLost(fn) {
    state.onAuthLost = fn;
}

// ------------------------------------------------------------- bytes

const enc = new TextEncoder();

// A byte string from text (UTF-8).
export function bytes(text) {
    let s = '';
    for (const b of enc.encode(text)) {
        s += String.fromCharCode(b);
    }
    return s;
}

export function toU8(bs) {
    const u = new Uint8Array(bs.length);
    for (let i = 0; i < bs.length; i++) {
        u[i] = bs.charCodeAt(i);
    }
    return u;
}

// Text for display: invalid UTF-8 shows as U+FFFD.
export function text(bs) {
    return new TextDecoder().decode(toU8(bs));
}

// The text when bs is valid UTF-8 without control characters (other than
// tab, CR, LF), else null: such a value is shown as hex.
export function strictText(bs) {
    let t;
    try {
        t = new TextDecoder('utf-8', { fatal: true }).decode(toU8(bs));
    } catch {
        return null;
    }
    return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(t) ? null : t;
}

export const b64 = (bs) => btoa(bs);
export const unb64 = (s) => (s ? atob(s) : '');

// The end of the range of every key with prefix p (etcd's GetPrefixRangeEnd):
// the prefix with its last byte below 0xff incremented; "\0" (to the end of
// the keyspace) for "" or a prefix of 0xff bytes.
export function prefixEnd(p) {
    for (let i = p.length - 1; i >= 0; i--) {
        const c = p.charCodeAt(i);
        if (c < 0xff) {
            return p.slice(0, i) + String.fromCharCode(c + 1);
        }
    }
    return '\0';
}

// Lease IDs: decimal strings on the wire, hex for people (as etcdctl).
export const leaseHex = (id) => BigInt(id).toString(16);
export function leaseParse(s) {
    s = s.trim();
    if (s === '' || s === '0') {
        return '0';
    }
    const v = /^[0-9]+$/.test(s) && s.length > 16 ? BigInt(s) : BigInt('0x' + s.replace(/^0x/i, ''));
    return v.toString();
}

// ------------------------------------------------------------- calls

// POST body (an object) to path on base ('' = this member). Returns the
// decoded JSON answer or throws ApiError. Cross-member calls (base set) go
// without the token and as text/plain, a "simple" request that needs no
// CORS preflight.
export async function call(path, body, opts = {}) {
    const headers = {};
    if (!opts.base) {
        headers['Content-Type'] = 'application/json';
        if (state.token) {
            headers.Authorization = state.token;
        }
    }
    let resp;
    try {
        resp = await fetch((opts.base || '') + path, {
            method: 'POST',
            headers,
            body: JSON.stringify(body || {}),
            signal: opts.signal || AbortSignal.timeout(opts.timeoutMs || 10000),
        });
    } catch (e) {
        throw new ApiError(e.name === 'TimeoutError' ? 'no answer in time' : 'unreachable: ' + e.message, 14, 0);
    }
    let j = null;
    try {
        j = await resp.json();
    } catch {
        j = null;
    }
    if (!resp.ok || (j && j.error !== undefined && j.code)) {
        const msg = j && (j.message || j.error) || ('HTTP ' + resp.status);
        const err = new ApiError(msg, j && j.code || 0, resp.status);
        if (err.authNeeded && state.onAuthLost && !opts.base) {
            state.onAuthLost(err);
        }
        throw err;
    }
    return j || {};
}

// The registry and config API: method on /api/v1 + path, body an object
// (sent as JSON) or undefined. Returns the decoded JSON answer, or the
// text when opts.text; throws ApiError with the error body (its code
// string, field, and line and column for an invalid document).
export async function rest(method, path, body, opts = {}) {
    const headers = {};
    if (state.token) {
        headers.Authorization = state.token;
    }
    if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
    }
    let resp;
    try {
        resp = await fetch('/api/v1' + path, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            signal: opts.signal || AbortSignal.timeout(opts.timeoutMs || 10000),
        });
    } catch (e) {
        throw new ApiError(e.name === 'TimeoutError' ? 'no answer in time' : 'unreachable: ' + e.message, 'unavailable', 0);
    }
    if (resp.ok && opts.text) {
        return resp.text();
    }
    let j = null;
    try {
        j = await resp.json();
    } catch {
        j = null;
    }
    if (!resp.ok) {
        const msg = j && (j.error || j.message) || ('HTTP ' + resp.status);
        const err = new ApiError(msg, j && j.code || resp.status, resp.status, j);
        if (err.authNeeded && state.onAuthLost) {
            state.onAuthLost(err);
        }
        throw err;
    }
    return j || {};
}

// Names in /api/v1 paths: [A-Za-z0-9._-], so encoding changes nothing for
// a valid one and keeps a bad one from reaching another path.
export const seg = (s) => encodeURIComponent(s);

// Follow a Server-Sent Events stream of /api/v1 (the pushed discovery and
// config streams): onMsg(data, event) per event (data parsed as JSON).
// Read with fetch, so the token goes in the Authorization header, which
// an EventSource or a browser WebSocket cannot send. After a dropped
// connection it reconnects with Last-Event-ID (the stream resumes after
// the last revision it sent: nothing lost, nothing repeated), backing off
// to 5 s. onState hears 'live', 'retrying', or 'auth' / 'denied' with
// the server's message, after which it stops. Call the returned function
// to stop.
export function sse(path, onMsg, onState) {
    const ctl = new AbortController();
    let last = '';
    let delay = 250;
    let stopped = false;
    const run = async () => {
        while (!stopped) {
            try {
                await sseOnce(path, last, ctl.signal, (id, event, data) => {
                    delay = 250;
                    if (id) {
                        last = id;
                    }
                    if (event === 'error' || data.type === 'error') {
                        throw new ApiError(data.message || 'stream error', data.code || 0, 200);
                    }
                    onMsg(data, event);
                }, () => onState('live'));
            } catch (e) {
                if (stopped || ctl.signal.aborted) {
                    return;
                }
                if (e instanceof ApiError && (e.authNeeded || e.permissionDenied)) {
                    onState(e.authNeeded ? 'auth' : 'denied', e.message);
                    if (e.authNeeded && state.onAuthLost) {
                        state.onAuthLost(e);
                    }
                    return;
                }
            }
            if (stopped) {
                return;
            }
            onState('retrying');
            await new Promise((res) => setTimeout(res, delay));
            delay = Math.min(delay * 2, 5000);
        }
    };
    run();
    return () => {
        stopped = true;
        ctl.abort();
    };
}

async function sseOnce(path, lastId, signal, onEvent, onOpen) {
    const headers = { Accept: 'text/event-stream' };
    if (state.token) {
        headers.Authorization = state.token;
    }
    if (lastId) {
        headers['Last-Event-ID'] = lastId;
    }
    const resp = await fetch('/api/v1' + path, { headers, signal });
    if (!resp.ok || !resp.body) {
        let j = null;
        try {
            j = await resp.json();
        } catch {
            j = null;
        }
        throw new ApiError(j && (j.error || j.message) || 'stream: HTTP ' + resp.status, j && j.code || resp.status, resp.status, j);
    }
    onOpen();
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let ev = { id: '', event: '', data: [] };
    for (;;) {
        const { value, done } = await reader.read();
        if (done) {
            throw new ApiError('stream ended', 'unavailable', 0);
        }
        buf += value;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).replace(/\r$/, '');
            buf = buf.slice(nl + 1);
            if (line === '') { // the event is complete
                if (ev.data.length) {
                    onEvent(ev.id, ev.event, JSON.parse(ev.data.join('\n')));
                }
                ev = { id: '', event: '', data: [] };
                continue;
            }
            if (line.startsWith(':')) {
                continue; // a keepalive comment
            }
            const i = line.indexOf(':');
            const k = i < 0 ? line : line.slice(0, i);
            const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (k === 'data') {
                ev.data.push(v);
            } else if (k === 'id') {
                ev.id = v;
            } else if (k === 'event') {
                ev.event = v;
            }
        }
    }
}

// A KeyValue from the gateway with its bytes decoded and numbers defaulted.
export function kvOf(kv) {
    return {
        key: unb64(kv.key),
        value: unb64(kv.value),
        create: kv.create_revision || '0',
        mod: kv.mod_revision || '0',
        version: kv.version || '0',
        lease: kv.lease || '0',
    };
}

export async function range(key, end, opts = {}) {
    const req = { key: b64(key) };
    if (end !== undefined && end !== null) {
        req.range_end = b64(end);
    }
    if (opts.limit) req.limit = String(opts.limit);
    if (opts.keysOnly) req.keys_only = true;
    if (opts.countOnly) req.count_only = true;
    if (opts.revision) req.revision = String(opts.revision);
    const r = await call('/v3/kv/range', req);
    return {
        kvs: (r.kvs || []).map(kvOf),
        more: !!r.more,
        count: Number(r.count || 0),
        revision: r.header && r.header.revision || '0',
    };
}

export async function get(key) {
    const r = await range(key);
    return { kv: r.kvs[0] || null, revision: r.revision };
}

// Put value at key only if nobody changed it since mod revision mod ('0':
// only if it does not exist). Returns { ok, revision, current } where
// current is the key as it is now when ok is false (null: deleted).
export async function putIf(key, value, mod, opts = {}) {
    const put = { key: b64(key), value: b64(value) };
    if (opts.lease && opts.lease !== '0') {
        put.lease = opts.lease;
    } else if (mod !== '0') {
        put.ignore_lease = true; // an edit keeps the key's lease
    }
    const compare = mod === '0'
        ? { key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }
        : { key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: mod };
    const r = await call('/v3/kv/txn', {
        compare: [compare],
        success: [{ request_put: put }],
        failure: [{ request_range: { key: b64(key) } }],
    });
    const rev = r.header && r.header.revision || '0';
    if (r.succeeded) {
        return { ok: true, revision: rev };
    }
    const rr = r.responses && r.responses[0] && r.responses[0].response_range;
    const kvs = rr && rr.kvs || [];
    return { ok: false, revision: rev, current: kvs.length ? kvOf(kvs[0]) : null };
}

// Delete key only if its mod revision is still mod.
export async function deleteIf(key, mod) {
    const r = await call('/v3/kv/txn', {
        compare: [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: mod }],
        success: [{ request_delete_range: { key: b64(key) } }],
        failure: [{ request_range: { key: b64(key) } }],
    });
    return !!r.succeeded;
}

export async function deletePrefix(prefix) {
    const r = await call('/v3/kv/deleterange', { key: b64(prefix || '\0'), range_end: b64(prefixEnd(prefix)) });
    return Number(r.deleted || 0);
}

// Would the server let this user write? A Txn whose compare can never hold
// (version < 0) carrying the write in its success branch: a put of key, or
// for a folder (isPrefix) a delete of its whole range, which needs write
// permission on every key in it. The server checks permission for every
// operation of a Txn before it looks at the compare (as etcd does), so a
// refusal is the answer, and when allowed nothing is written (it costs one
// Raft entry, no revision).
export async function canWrite(key, isPrefix) {
    const op = isPrefix
        ? { request_delete_range: { key: b64(key || '\0'), range_end: b64(prefixEnd(key)) } }
        : { request_put: { key: b64(key) } };
    try {
        await call('/v3/kv/txn', {
            compare: [{ key: b64(key || '\0'), target: 'VERSION', result: 'LESS', version: '0' }],
            success: [op],
        });
        return { ok: true };
    } catch (e) {
        if (e.permissionDenied) {
            return { ok: false, why: e.message };
        }
        throw e;
    }
}

// ------------------------------------------------------------- watch

// Watch every key with prefix from revision start (a string; '0': now):
// onEvents(events, revision) per response, events as { type, kv, prev }.
// Runs the gateway's POST /v3/watch stream with fetch (so the token goes
// in the Authorization header, which a browser WebSocket cannot send) and
// reconnects from the last revision seen, with backoff to 5 s. onState
// hears 'live', 'retrying', and then it stops: 'compacted' (re-read and
// watch again), 'auth' or 'denied' (with the server's message). Call the
// returned function to stop.
export function watchPrefix(prefix, start, onEvents, onState) {
    const ctl = new AbortController();
    let next = start;
    let delay = 250;
    let stopped = false;
    const run = async () => {
        while (!stopped) {
            try {
                await watchOnce(prefix, next, ctl.signal, (r) => {
                    delay = 250;
                    if (r.compact_revision && r.compact_revision !== '0') {
                        onState('compacted');
                        stopped = true;
                        ctl.abort();
                        return;
                    }
                    if (r.created) {
                        onState('live');
                    }
                    const evs = (r.events || []).map((e) => ({
                        type: e.type || 'PUT',
                        kv: kvOf(e.kv || {}),
                    }));
                    if (evs.length) {
                        const last = BigInt(evs[evs.length - 1].kv.mod);
                        next = (last + 1n).toString();
                        onEvents(evs, r.header && r.header.revision);
                    }
                });
            } catch (e) {
                if (stopped || ctl.signal.aborted) {
                    return;
                }
                if (e instanceof ApiError && (e.authNeeded || e.permissionDenied)) {
                    // retrying cannot help: say why and stop
                    onState(e.authNeeded ? 'auth' : 'denied', e.message);
                    if (e.authNeeded && state.onAuthLost) {
                        state.onAuthLost(e);
                    }
                    return;
                }
            }
            if (stopped) {
                return;
            }
            onState('retrying');
            await new Promise((res) => setTimeout(res, delay));
            delay = Math.min(delay * 2, 5000);
        }
    };
    run();
    return () => {
        stopped = true;
        ctl.abort();
    };
}

async function watchOnce(prefix, start, signal, onResp) {
    const headers = { 'Content-Type': 'application/json' };
    if (state.token) {
        headers.Authorization = state.token;
    }
    const req = { key: b64(prefix || '\0'), range_end: b64(prefixEnd(prefix)) };
    if (start && start !== '0') {
        req.start_revision = start;
    }
    const resp = await fetch('/v3/watch', {
        method: 'POST',
        headers,
        body: JSON.stringify({ create_request: req }),
        signal,
    });
    if (!resp.ok || !resp.body) {
        let j = null;
        try {
            j = await resp.json();
        } catch {
            j = null;
        }
        throw new ApiError(j && (j.message || j.error) || 'watch: HTTP ' + resp.status, j && j.code || 0, resp.status);
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
        const { value, done } = await reader.read();
        if (done) {
            throw new ApiError('watch stream ended', 14, 0);
        }
        buf += value;
        // one JSON object per line ({"result":{...}} or {"error":{...}})
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) {
                continue;
            }
            const j = JSON.parse(line);
            if (j.error) {
                throw new ApiError(j.error.message || 'watch error', j.error.code || 0, 200);
            }
            if (j.result) {
                onResp(j.result);
            }
        }
    }
}

// ------------------------------------------------------------- metrics

// One gauge or counter from Prometheus text (the first sample), or null.
export function metric(textBody, name) {
    const re = new RegExp('^' + name + '(\\{[^}]*\\})?\\s+([0-9.eE+-]+)\\s*$', 'm');
    const m = re.exec(textBody);
    return m ? Number(m[2]) : null;
}

export async function metricsText(base = '') {
    const resp = await fetch(base + '/metrics', { signal: AbortSignal.timeout(3000) });
    if (!resp.ok) {
        throw new ApiError('metrics: HTTP ' + resp.status, 0, resp.status);
    }
    return resp.text();
}
