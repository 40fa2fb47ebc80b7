// cluster.js - the Cluster page: members, the leader, term, commit and
// applied index per member, alarms, DB size against the quota; read again
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
import * as api from './api.js';
import { h, clear, fmtBytes, hex, now } from './util.js';

const REFRESH_MS = 1000;
const STATUS_TIMEOUT_MS = 800;
const QUOTA_EVERY = 10; // refreshes between /metrics reads

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
        this.build(main);
        this.refresh();
        this.timer = setInterval(() => this.refresh(), REFRESH_MS);
    }

    stop() {
        this.alive = false;
        clearInterval(this.timer);
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
                            ['Name', 'Member ID', 'Client URL', 'Role', 'Term', 'Commit index', 'Applied index', 'DB size (in use)', 'Version', 'Status']
                                .map((t) => h('th', { scope: 'col' }, t)))),
                        this.tbody))),
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
        this.render(ml, members, statuses, self);
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
            const st = await api.call('/v3/maintenance/status', {}, { base, timeoutMs: STATUS_TIMEOUT_MS });
            return { st };
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
            tb.append(h('tr', { class: role, dataset: { member: m.name, role } },
                h('th', { scope: 'row' }, m.name, m.id === self ? h('span', { class: 'muted' }, ' (this page)') : null),
                h('td', {}, h('code', {}, hex(m.id))),
                h('td', {}, m.url),
                h('td', {}, h('span', { class: 'role ' + role }, role)),
                h('td', { class: 'num' }, st.raftTerm || '-'),
                h('td', { class: 'num' }, st.raftIndex || '-'),
                h('td', { class: 'num' }, st.raftAppliedIndex || '-'),
                h('td', { class: 'num' }, s.st ? `${fmtBytes(Number(st.dbSize || 0))} (${fmtBytes(Number(st.dbSizeInUse || 0))})` : '-'),
                h('td', {}, st.version || '-'),
                h('td', {}, s.err ? h('span', { class: 'error' }, s.err) : (st.errors || []).join('; ') || 'ok')));
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
