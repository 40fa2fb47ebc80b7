// cluster.js - the Cluster page: members, the leader, term, commit and
// applied index and the Raft log's last index per member (from its
// /metrics), alarms, DB size against the quota; read again
// every second so a leader change shows as it happens.
//
// MemberList comes from the member that served the page. Each member's
// own view (Maintenance Status: leader, term, indexes, DB size) is asked
// of that member directly, at its first client URL, as etcdctl endpoint
// status does; those cross-origin calls are plain "simple" requests (no
// preflight; the client port answers with Access-Control-Allow-Origin *),
// each with a short deadline, so a dead member shows as unreachable
// without holding up the rest. The quota is Status's dbSizeQuota (etcd
// 3.6's field, which cairnd sends), else /metrics'
// etcd_server_quota_backend_bytes.
//
// Maintenance: Compact (POST /v3/kv/compaction {revision, physical}) on
// this member, which the cluster applies everywhere; Defragment (POST
// /v3/maintenance/defragment) per member, at that member's URL, one at a
// time, each shown as running, then done (with the time it took) or
// failed with the server's reason. Defragment needs the root role: with
// auth on, the page asks (the role list, which needs root too) and, when
// refused, disables it with the server's reason. Other members get the
// call without a token (a cross-origin simple request, as for Status; a
// token is only valid on the member that issued it), so with auth on only
// this page's member can be defragmented from here.
//
// Charts: /metrics of this member, sampled every SAMPLE_MS and kept for
// SAMPLES samples (5 minutes), parsed in the page (Prometheus text) and
// drawn as SVG polylines: requests/s (HTTP requests, gateway and gRPC
// calls), the request latency (cairn_api_request_duration_seconds, the
// mean over each interval) and the watchers.
import * as api from './api.js';
import { h, clear, fmtBytes, hex, now, confirmDialog } from './util.js';

const REFRESH_MS = 1000;
const STATUS_TIMEOUT_MS = 800;
const QUOTA_EVERY = 10; // refreshes between /metrics reads
const SAMPLE_MS = 3000; // between /metrics samples for the charts
const SAMPLES = 100; // samples kept per chart (5 minutes)
const DEFRAG_TIMEOUT_MS = 120000; // a defragmentation of a large DB is slow
const SVG = 'http://www.w3.org/2000/svg';

// Prometheus text format: the sum of every sample of each metric name
// (all label sets), bucket lines included under their own name.
export function parseMetrics(body) {
    const m = new Map();
    for (const line of body.split('\n')) {
        if (line === '' || line.startsWith('#')) {
            continue;
        }
        const r = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
        const v = r ? Number(r[3]) : NaN;
        if (r && Number.isFinite(v)) {
            m.set(r[1], (m.get(r[1]) || 0) + v);
        }
    }
    return m;
}

// What each chart draws from two successive samples a and b (dt seconds).
const CHARTS = [
    {
        id: 'requests', title: 'Requests/s', unit: '/s',
        hint: 'HTTP requests, WebSocket calls and gRPC calls started on this member',
        value: (a, b, dt) => ['cairn_http_requests_total', 'cairn_http_ws_mux_requests_total', 'grpc_server_started_total']
            .reduce((t, n) => t + Math.max(0, (b.get(n) || 0) - (a.get(n) || 0)), 0) / dt,
    },
    {
        id: 'latency', title: 'Request latency (mean)', unit: ' ms',
        hint: 'cairn_api_request_duration_seconds: every API call from arrival to answer, the mean over each interval',
        value: (a, b) => {
            const n = (b.get('cairn_api_request_duration_seconds_count') || 0) - (a.get('cairn_api_request_duration_seconds_count') || 0);
            const t = (b.get('cairn_api_request_duration_seconds_sum') || 0) - (a.get('cairn_api_request_duration_seconds_sum') || 0);
            return n > 0 ? (1000 * t) / n : null;
        },
    },
    {
        id: 'watchers', title: 'Watchers', unit: '',
        hint: 'etcd_debugging_mvcc_watcher_total on this member',
        value: (a, b) => (b.has('etcd_debugging_mvcc_watcher_total') ? b.get('etcd_debugging_mvcc_watcher_total') : null),
    },
];

function fmtNum(v) {
    if (v === null) {
        return '-';
    }
    if (Number.isInteger(v)) {
        return String(v);
    }
    return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
}

// An SVG line chart of values (null: a gap), newest on the right.
function drawChart(svg, values, unit) {
    const W = 320;
    const H = 100;
    const PAD = 4;
    while (svg.firstChild) {
        svg.firstChild.remove();
    }
    const nums = values.filter((v) => v !== null);
    const max = Math.max(1e-9, ...nums) * 1.1;
    const x = (i) => PAD + ((W - 2 * PAD) * (i + SAMPLES - values.length)) / (SAMPLES - 1);
    const y = (v) => H - PAD - ((H - 2 * PAD) * v) / max;
    const el = (tag, attrs) => {
        const e = document.createElementNS(SVG, tag);
        for (const [k, v] of Object.entries(attrs)) {
            e.setAttribute(k, String(v));
        }
        return e;
    };
    svg.append(el('line', { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, class: 'axis' }));
    let pts = [];
    const flush = () => {
        if (pts.length === 1) {
            svg.append(el('circle', { cx: pts[0][0], cy: pts[0][1], r: 2, class: 'line' }));
        } else if (pts.length > 1) {
            svg.append(el('polyline', { points: pts.map((p) => p.join(',')).join(' '), class: 'line' }));
        }
        pts = [];
    };
    values.forEach((v, i) => {
        if (v === null) {
            flush();
        } else {
            pts.push([x(i).toFixed(1), y(v).toFixed(1)]);
        }
    });
    flush();
    const top = el('text', { x: PAD + 2, y: 12, class: 'scale' });
    top.textContent = nums.length ? `max ${fmtNum(Math.max(0, ...nums))}${unit}` : 'no data yet';
    svg.append(top);
    svg.dataset.points = String(nums.length);
}

export function mount(main) {
    const v = new ClusterView(main);
    return () => v.stop();
}

class ClusterView {
    constructor(main) {
        this.alive = true;
        this.leader = null;
        this.quota = null;
        this.n = 0;
        this.defrag = new Map(); // member id -> { state, msg }
        this.authOn = !!api.session().token;
        this.defragWhy = ''; // why this user may not defragment ('' : may)
        this.members = [];
        this.samples = []; // { t, m: Map } of /metrics
        this.series = new Map(CHARTS.map((c) => [c.id, []]));
        this.build(main);
        this.refresh();
        this.timer = setInterval(() => this.refresh(), REFRESH_MS);
        this.sample();
        this.sampler = setInterval(() => this.sample(), SAMPLE_MS);
        if (this.authOn) {
            this.checkRoot();
        }
    }

    async checkRoot() {
        try {
            await api.call('/v3/auth/role/list', {});
        } catch (e) {
            if (e.permissionDenied) {
                this.defragWhy = `Defragmentation needs the root role (the server says: ${e.message}).`;
                this.defragReason.hidden = false;
                this.defragReason.textContent = this.defragWhy;
                const all = document.getElementById('defrag-all');
                all.disabled = true;
                all.title = this.defragWhy;
                this.renderDefrag();
            }
        }
    }

    stop() {
        this.alive = false;
        clearInterval(this.timer);
        clearInterval(this.sampler);
    }

    maintenance() {
        this.compactRev = h('input', { id: 'compact-rev', inputmode: 'numeric', pattern: '[0-9]+', size: '10', required: true });
        this.physical = h('input', { type: 'checkbox', id: 'compact-physical' });
        this.compactMsg = h('p', { id: 'compact-msg', role: 'status' });
        this.defragMsg = h('p', { id: 'defrag-msg', role: 'status' });
        this.defragReason = h('p', { class: 'reason', id: 'defrag-reason', hidden: true });
        const form = h('form', { class: 'inline', 'aria-labelledby': 'compact-title' },
            h('label', { for: 'compact-rev' }, 'Compact at revision'), this.compactRev,
            h('label', { class: 'check' }, this.physical, ' physical (answer once the space is reclaimed)'),
            h('button', { type: 'submit', class: 'danger', id: 'compact' }, 'Compact'));
        form.addEventListener('submit', (ev) => {
            ev.preventDefault();
            this.compact();
        });
        return h('section', { class: 'card', 'aria-labelledby': 'maint-title' },
            h('h2', { id: 'maint-title' }, 'Maintenance'),
            h('h3', { id: 'compact-title' }, 'Compaction'),
            h('p', { class: 'muted' }, 'Drops every revision older than the one given: the keys as they are now stay, their history before it is gone (Keys shows such revisions as compacted).'),
            form, this.compactMsg,
            h('h3', {}, 'Defragmentation'),
            h('p', { class: 'muted' }, 'Returns the free space inside a member\'s database file to the file system. The member does not answer while it runs; members are done one at a time.'),
            h('div', { class: 'buttons' }, h('button', {
                // enabled by the first member list (refreshOnce): a click
                // before it would defragment no member at all
                type: 'button', id: 'defrag-all', onclick: () => this.defragAll(), disabled: true, dataset: { waiting: '1' },
                title: this.authOn ? 'With auth on: this page\'s member only (a token is valid on the member that issued it)' : null,
            }, this.authOn ? 'Defragment this member' : 'Defragment every member')),
            this.defragReason, this.defragMsg);
    }

    async compact() {
        const rev = this.compactRev.value.trim();
        if (!/^[0-9]+$/.test(rev)) {
            this.compactMsg.className = 'error';
            this.compactMsg.textContent = 'A revision is a number.';
            return;
        }
        const ok = await confirmDialog('Compact the history?',
            [`Every revision before ${rev} is dropped on every member. Past values of keys older than that can no longer be read, and watches cannot start before it.`],
            `Compact at ${rev}`);
        if (!ok) {
            return;
        }
        const t0 = performance.now();
        this.compactMsg.className = 'muted';
        this.compactMsg.textContent = `compacting at revision ${rev}...`;
        try {
            await api.call('/v3/kv/compaction', { revision: rev, physical: this.physical.checked }, { timeoutMs: DEFRAG_TIMEOUT_MS });
            this.compactMsg.className = 'ok';
            this.compactMsg.dataset.done = rev;
            this.compactMsg.textContent = `Compacted at revision ${rev}${this.physical.checked ? ' (physically)' : ''} in ${Math.round(performance.now() - t0)} ms.`;
        } catch (e) {
            this.compactMsg.className = 'error';
            this.compactMsg.textContent = 'Not compacted: ' + e.message;
        }
    }

    async defragAll() {
        const list = this.members.filter((m) => !this.authOn || m.id === this.self);
        const btn = document.getElementById('defrag-all');
        btn.disabled = true;
        this.defragMsg.textContent = `defragmenting ${list.length} member(s), one at a time...`;
        let okN = 0;
        for (const m of list) {
            okN += (await this.defragment(m)) ? 1 : 0;
        }
        btn.disabled = false;
        this.defragMsg.textContent = `${okN} of ${list.length} member(s) defragmented (${now()}).`;
    }

    async defragment(m) {
        const self = m.id === this.self;
        if (!m.url && !self) {
            this.defrag.set(m.id, { state: 'failed', msg: 'no client URL' });
            return false;
        }
        const t0 = performance.now();
        this.defrag.set(m.id, { state: 'running', msg: 'running...' });
        this.renderDefrag();
        try {
            await api.call('/v3/maintenance/defragment', {}, { base: self ? '' : m.url.replace(/\/+$/, ''), timeoutMs: DEFRAG_TIMEOUT_MS });
            this.defrag.set(m.id, { state: 'done', msg: `done in ${Math.round(performance.now() - t0)} ms`, at: now() });
            return true;
        } catch (e) {
            this.defrag.set(m.id, { state: 'failed', msg: 'failed: ' + e.message });
            return false;
        } finally {
            this.renderDefrag();
        }
    }

    // The defragment cell of each row, also between two refreshes.
    renderDefrag() {
        for (const tr of this.tbody.querySelectorAll('tr[data-id]')) {
            const cell = tr.querySelector('td.defrag');
            const d = this.defrag.get(tr.dataset.id);
            const m = this.members.find((x) => x.id === tr.dataset.id);
            if (!cell || !m) {
                continue;
            }
            const busy = [...this.defrag.values()].some((x) => x.state === 'running');
            const why = this.defragWhy || (this.authOn && m.id !== this.self
                ? 'With auth on, only the member that served this page (its token is valid there only): open the console on that member, or use etcdctl defrag'
                : tr.dataset.role === 'unreachable' ? 'The member does not answer' : '');
            clear(cell).append(
                h('button', { type: 'button', class: 'small', disabled: busy || !!why, title: why || null, 'aria-label': `Defragment ${m.name}`, onclick: () => this.defragment(m) }, 'Defragment'),
                d ? h('div', { class: 'defrag-state ' + d.state, dataset: { state: d.state }, title: d.at ? 'at ' + d.at : null }, d.msg) : null);
        }
    }

    async sample() {
        let body;
        try {
            body = await api.metricsText();
        } catch (e) {
            this.chartsNote.textContent = 'Cannot read /metrics: ' + e.message;
            return;
        }
        if (!this.alive) {
            return;
        }
        this.chartsNote.textContent = `/metrics of this member, every ${SAMPLE_MS / 1000} s, last ${(SAMPLES * SAMPLE_MS) / 60000} minutes`;
        const cur = { t: performance.now(), m: parseMetrics(body) };
        const prev = this.samples[this.samples.length - 1];
        this.samples = [prev, cur].filter(Boolean);
        if (!prev) {
            return;
        }
        const dt = (cur.t - prev.t) / 1000;
        for (const c of CHARTS) {
            const vals = this.series.get(c.id);
            vals.push(c.value(prev.m, cur.m, dt));
            if (vals.length > SAMPLES) {
                vals.shift();
            }
            const box = this.charts.get(c.id);
            drawChart(box.svg, vals, c.unit);
            box.now.textContent = fmtNum(vals[vals.length - 1]) + c.unit;
        }
    }

    chartsSection() {
        this.charts = new Map();
        this.chartsNote = h('p', { class: 'muted', id: 'charts-note' }, 'reading /metrics...');
        const figs = CHARTS.map((c) => {
            const svg = document.createElementNS(SVG, 'svg');
            svg.setAttribute('viewBox', '0 0 320 100');
            svg.setAttribute('role', 'img');
            svg.setAttribute('aria-label', `${c.title}, last 5 minutes`);
            svg.setAttribute('id', 'chart-' + c.id);
            svg.dataset.points = '0';
            const cur = h('span', { class: 'chart-now', id: 'chart-now-' + c.id }, '-');
            this.charts.set(c.id, { svg, now: cur });
            return h('figure', { class: 'chart' }, h('figcaption', { title: c.hint }, c.title, ': ', cur), svg);
        });
        return h('section', { class: 'card', 'aria-labelledby': 'charts-title' },
            h('h2', { id: 'charts-title' }, 'Metrics'), this.chartsNote, h('div', { class: 'charts' }, figs));
    }

    build(main) {
        const card = (id, title) => h('div', { class: 'stat' }, h('div', { class: 'stat-title' }, title), h('div', { class: 'stat-value', id }, '-'));
        this.updated = h('span', { class: 'muted', id: 'cluster-updated' });
        this.tbody = h('tbody', { id: 'member-rows' });
        this.alarms = h('div', { id: 'alarms' }, '-');
        this.events = h('ol', { class: 'tail', id: 'leader-events', reversed: true });
        main.append(h('div', { class: 'page' },
            h('h1', {}, 'Cluster ', this.updated),
            h('section', { class: 'stats', 'aria-label': 'Summary' },
                card('leader', 'Leader'), card('term', 'Term'), card('revision', 'Revision'),
                card('members', 'Members'), card('dbsize', 'DB size / quota'), card('cluster-id', 'Cluster ID')),
            h('section', { class: 'card', 'aria-labelledby': 'members-title' },
                h('h2', { id: 'members-title' }, 'Members'),
                h('div', { class: 'scroll' },
                    h('table', { class: 'grid', id: 'members' },
                        h('thead', {}, h('tr', {},
                            ['Name and client URL', 'Member ID', 'Role', 'Term', 'Commit index', 'Applied index', 'Log last index', 'DB size (in use)', 'Version', 'Status', 'Defragment']
                                .map((t) => h('th', { scope: 'col' }, t)))),
                        this.tbody))),
            this.chartsSection(),
            this.maintenance(),
            h('section', { class: 'card', 'aria-labelledby': 'alarms-title' },
                h('h2', { id: 'alarms-title' }, 'Alarms'), this.alarms),
            h('section', { class: 'card', 'aria-labelledby': 'events-title' },
                h('h2', { id: 'events-title' }, 'Leader changes seen'), this.events)));
    }

    async refresh() {
        if (this.busy || !this.alive) {
            return;
        }
        this.busy = true;
        try {
            await this.refreshOnce();
        } finally {
            this.busy = false;
        }
    }

    async refreshOnce() {
        const ml = await this.memberList();
        if (!ml) {
            return;
        }
        const self = ml.header && ml.header.member_id;
        const members = (ml.members || []).map((m) => ({
            id: m.ID, name: m.name || '(not started)', url: (m.clientURLs || [])[0] || '', learner: !!m.isLearner,
        }));
        const statuses = await Promise.all(members.map((m) => this.status(m, m.id === self)));
        if (!this.alive) {
            return;
        }
        if (this.n++ % QUOTA_EVERY === 0 && !statuses.some((s) => s.st?.dbSizeQuota)) {
            api.metricsText().then((t) => { this.quota = api.metric(t, 'etcd_server_quota_backend_bytes'); }, () => {});
        }
        this.members = members;
        this.self = self;
        const all = document.getElementById('defrag-all');
        if (all && all.dataset.waiting) {
            delete all.dataset.waiting;
            all.disabled = !!this.defragWhy;
        }
        this.render(ml, members, statuses, self);
        this.renderDefrag();
        this.refreshAlarms(members);
    }

    // The member list from this page's member, else (it may be the one
    // that died) from another member the last list named.
    async memberList() {
        let why = '';
        for (const base of ['', ...(this.others || [])]) {
            try {
                const ml = await api.call('/v3/cluster/member/list', {}, { base, timeoutMs: base ? STATUS_TIMEOUT_MS : 2000 });
                this.others = (ml.members || []).filter((m) => m.clientURLs?.length)
                    .map((m) => m.clientURLs[0].replace(/\/+$/, ''));
                if (base) {
                    ml.header.member_id = null; // no member is "this page" now
                }
                return ml;
            } catch (e) {
                why = why || e.message;
            }
        }
        this.updated.textContent = `(cannot list members: ${why})`;
        return null;
    }

    async status(m, isSelf) {
        if (!m.url && !isSelf) {
            return { err: 'no client URL' };
        }
        try {
            const base = isSelf ? '' : m.url.replace(/\/+$/, '');
            // the log's last index is not in Status: the member's /metrics
            // (cairn_raft_log_last_index; '-' from a server without it)
            const [st, mt] = await Promise.all([
                api.call('/v3/maintenance/status', {}, { base, timeoutMs: STATUS_TIMEOUT_MS }),
                api.metricsText(base).catch(() => null)]);
            const last = mt ? api.metric(mt, 'cairn_raft_log_last_index') : null;
            return { st, last };
        } catch (e) {
            return { err: e.message };
        }
    }

    render(ml, members, statuses, self) {
        const byId = new Map(members.map((m) => [m.id, m]));
        // the leader most reachable members agree on, at the highest term
        let best = null;
        for (const s of statuses) {
            if (s.st && s.st.leader && s.st.leader !== '0') {
                const term = BigInt(s.st.raftTerm || 0);
                if (!best || term > best.term) {
                    best = { id: s.st.leader, term };
                }
            }
        }
        const leaderId = best ? best.id : null;
        const leaderName = leaderId ? (byId.get(leaderId)?.name || hex(leaderId)) : 'none';
        if (leaderId !== this.leader) {
            const from = this.leader === null ? null : (this.leader ? byId.get(this.leader)?.name || hex(this.leader) : 'none');
            this.events.prepend(h('li', {}, h('span', { class: 'muted' }, now() + ' '),
                from === null ? `leader is ${leaderName}` : `leader changed from ${from} to ${leaderName}`,
                best ? ` (term ${best.term})` : ''));
            this.leader = leaderId;
        }
        const leaderEl = document.getElementById('leader');
        leaderEl.textContent = leaderName;
        leaderEl.dataset.leader = leaderName;
        document.getElementById('term').textContent = best ? String(best.term) : (ml.header?.raft_term || '-');
        const mine = statuses[members.findIndex((m) => m.id === self)]?.st;
        document.getElementById('revision').textContent = mine?.header?.revision || '-';
        if (!this.compactRev.value && mine?.header?.revision) {
            this.compactRev.value = mine.header.revision;
        }
        const up = statuses.filter((s) => s.st).length;
        document.getElementById('members').textContent = `${up} of ${members.length} up`;
        document.getElementById('cluster-id').textContent = hex(ml.header?.cluster_id);
        const db = mine ? Number(mine.dbSize || 0) : null;
        const quota = mine && Number(mine.dbSizeQuota || 0) ? Number(mine.dbSizeQuota) : this.quota;
        const dbEl = document.getElementById('dbsize');
        clear(dbEl).append(`${fmtBytes(db)} / ${quota ? fmtBytes(quota) : '-'}`);
        if (db !== null && quota) {
            const pct = Math.min(100, (100 * db) / quota);
            dbEl.append(h('meter', { min: '0', max: '100', value: pct.toFixed(1), 'aria-label': 'DB size as a share of the quota', title: pct.toFixed(1) + '% of the quota' }));
        }
        this.updated.textContent = `(updated ${now()}, every ${REFRESH_MS / 1000} s)`;
        const tb = clear(this.tbody);
        members.forEach((m, i) => {
            const s = statuses[i];
            const role = !s.st ? 'unreachable' : m.learner ? 'learner' : m.id === s.st.leader ? 'leader' : 'follower';
            const st = s.st || {};
            tb.append(h('tr', { class: role, dataset: { member: m.name, role, id: m.id } },
                h('th', { scope: 'row' }, m.name, m.id === self ? h('span', { class: 'muted' }, ' (this page)') : null,
                    h('div', { class: 'url' }, m.url)),
                h('td', {}, h('code', {}, hex(m.id))),
                h('td', {}, h('span', { class: 'role ' + role }, role)),
                h('td', { class: 'num' }, st.raftTerm || '-'),
                h('td', { class: 'num' }, st.raftIndex || '-'),
                h('td', { class: 'num' }, st.raftAppliedIndex || '-'),
                h('td', { class: 'num last-index' }, s.last != null ? String(s.last) : '-'),
                h('td', { class: 'num' }, s.st ? `${fmtBytes(Number(st.dbSize || 0))} (${fmtBytes(Number(st.dbSizeInUse || 0))})` : '-'),
                h('td', {}, st.version || '-'),
                h('td', {}, s.err ? h('span', { class: 'error' }, s.err) : (st.errors || []).join('; ') || 'ok'),
                h('td', { class: 'defrag' })));
        });
    }

    async refreshAlarms(members) {
        let r;
        try {
            r = await api.call('/v3/maintenance/alarm', { action: 'GET' }, { timeoutMs: 2000 });
        } catch (e) {
            clear(this.alarms).append(h('span', { class: 'muted' }, 'Cannot read alarms: ' + e.message));
            return;
        }
        const list = (r.alarms || []).filter((a) => a.alarm && a.alarm !== 'NONE');
        const names = new Map(members.map((m) => [m.id, m.name]));
        clear(this.alarms).append(list.length === 0 ? h('p', {}, 'No alarms.')
            : h('ul', {}, list.map((a) => h('li', { class: 'error' }, `${a.alarm} on ${names.get(a.memberID) || hex(a.memberID)}`,
                a.alarm === 'NOSPACE' ? ' - writes are refused until space is freed (compact, defragment) and the alarm disarmed' : ''))));
    }
}
