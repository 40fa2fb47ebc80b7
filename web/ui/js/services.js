// services.js - the Services page: the registry's namespaces, the
// services of one with healthy/total counts and protection state, and the
// instances of one service (address, zone, version, weight, status,
// health, the last check result), with drain and restore.
//
// The namespace is followed live through the registry's pushed discovery
// stream (GET /api/v1/watch/registry/<ns> as Server-Sent Events: a
// snapshot, then one put or delete per change), so an instance registered,
// drained, gone critical or expired anywhere shows without a reload and
// without polling. The counts are computed from the same instances (healthy
// is status up and health passing, as the discovery API's healthy=true).
// The protect threshold is a service setting outside the stream, read from
// GET /api/v1/registry/<ns>/<svc> when a service is opened.
//
// Drain and restore are PATCH {"status":"draining"|"up"}; the change then
// comes back through the stream like anyone else's.
import * as api from './api.js';
import { h, clear, banner } from './util.js';

const authOn = () => !!api.session().token;
const healthy = (d) => d.status === 'up' && d.health === 'passing';

export function mount(main) {
    const v = new ServicesView(main);
    return () => v.stop();
}

class ServicesView {
    constructor(main) {
        this.alive = true;
        this.ns = null;
        this.svc = null;
        this.instances = new Map(); // "svc/id" -> document
        this.thresholds = new Map(); // svc -> protect threshold
        this.stopStream = null;
        this.build(main);
        const m = location.hash.match(/^#\/services\/([^/]+)(?:\/([^/]+))?/);
        this.loadNamespaces(m && decodeURIComponent(m[1]), m && m[2] && decodeURIComponent(m[2]));
    }

    stop() {
        this.alive = false;
        if (this.stopStream) {
            this.stopStream();
        }
    }

    build(main) {
        this.nsList = h('ul', { class: 'list', id: 'ns-list', 'aria-label': 'Namespaces' });
        this.svcList = h('ul', { class: 'list', id: 'svc-list', 'aria-label': 'Services' });
        this.streamState = h('span', { class: 'muted', id: 'svc-stream' }, 'starting');
        this.detail = h('section', { class: 'detail', id: 'svc-detail', 'aria-labelledby': 'svc-title' },
            h('h2', { id: 'svc-title', tabindex: '-1' }, 'No service selected'),
            h('p', { class: 'muted' }, 'Choose a namespace and a service.'));
        const left = h('nav', { class: 'pane', 'aria-label': 'Namespaces and services' },
            h('h1', { class: 'pane-title' }, 'Services'),
            h('h2', { class: 'sub' }, 'Namespaces'), this.nsList,
            h('h2', { class: 'sub' }, 'Services ', this.streamState), this.svcList);
        main.append(h('div', { class: 'keys-layout side' }, left, h('div', { class: 'right' }, this.detail)));
    }

    async loadNamespaces(wantNs, wantSvc) {
        let r;
        try {
            r = await api.rest('GET', '/registry');
        } catch (e) {
            banner('Cannot list the registry\'s namespaces: ' + e.message, 'error');
            return;
        }
        if (!this.alive) {
            return;
        }
        const names = (r.namespaces || []).map((n) => n.namespace);
        clear(this.nsList);
        if (!names.length) {
            this.nsList.append(h('li', { class: 'muted empty' }, 'No namespaces yet: register an instance (PUT /api/v1/registry/<ns>/<svc>/<id>).'));
            this.streamState.textContent = '';
            return;
        }
        for (const n of names) {
            this.nsList.append(h('li', {}, h('button', {
                type: 'button', class: 'node', dataset: { ns: n }, onclick: () => this.openNs(n, null),
            }, n)));
        }
        const ns = names.includes(wantNs) ? wantNs : names[0];
        this.openNs(ns, wantSvc);
    }

    // Follow namespace ns through the discovery stream.
    openNs(ns, wantSvc) {
        for (const b of this.nsList.querySelectorAll('button')) {
            b.toggleAttribute('aria-current', b.dataset.ns === ns);
        }
        if (this.stopStream) {
            this.stopStream();
        }
        this.ns = ns;
        this.svc = wantSvc || null;
        this.instances = new Map();
        this.thresholds = new Map();
        this.snapshotSeen = false;
        this.streamState.textContent = 'connecting';
        this.streamState.dataset.state = 'connecting';
        clear(this.svcList);
        this.stopStream = api.sse(`/watch/registry/${api.seg(ns)}`, (m) => this.onMessage(ns, m), (st, why) => {
            this.streamState.dataset.state = st;
            this.streamState.textContent = st === 'live' ? 'live' : st === 'retrying' ? 'reconnecting...' : 'stopped: ' + why;
        });
        if (this.svc) {
            this.openSvc(this.svc);
        } else {
            this.renderDetail();
        }
    }

    onMessage(ns, m) {
        if (!this.alive || ns !== this.ns) {
            return;
        }
        const key = (d) => `${d.service}/${d.id}`;
        if (m.type === 'snapshot') {
            this.instances = new Map((m.instances || []).map((d) => [key(d), d]));
            this.snapshotSeen = true;
        } else if (m.type === 'put' && m.instance) {
            this.instances.set(key(m.instance), m.instance);
        } else if (m.type === 'delete' && m.instance) {
            this.instances.delete(key(m.instance));
        } else {
            return; // compacted: a snapshot follows
        }
        this.revision = m.revision;
        // a change redraws the lists: keep the keyboard focus where it was
        const f = document.activeElement;
        const sel = f && f.closest && (f.closest('#svc-list') ? `#svc-list button[data-svc="${CSS.escape(f.dataset.svc || '')}"]`
            : f.closest('#instance-rows tr') ? `#instance-rows tr[data-instance="${CSS.escape(f.closest('tr').dataset.instance)}"] button` : null);
        this.renderServices();
        this.renderInstances();
        if (sel && !document.activeElement?.closest?.('main')) {
            document.querySelector(sel)?.focus();
        }
    }

    services() {
        const by = new Map();
        for (const d of this.instances.values()) {
            const s = by.get(d.service) || { total: 0, healthy: 0, draining: 0 };
            s.total++;
            s.healthy += healthy(d) ? 1 : 0;
            s.draining += d.status === 'draining' ? 1 : 0;
            by.set(d.service, s);
        }
        return new Map([...by.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    }

    protection(name, s) {
        const thr = this.thresholds.get(name) || 0;
        return { thr, active: s.total > 0 && thr > 0 && s.healthy / s.total < thr };
    }

    renderServices() {
        const svcs = this.services();
        clear(this.svcList);
        if (!svcs.size) {
            this.svcList.append(h('li', { class: 'muted empty' }, 'No instances in this namespace.'));
        }
        for (const [name, s] of svcs) {
            const p = this.protection(name, s);
            this.svcList.append(h('li', {}, h('button', {
                type: 'button', class: 'node svc', dataset: { svc: name }, 'aria-current': name === this.svc ? 'true' : null,
                onclick: () => this.openSvc(name),
            }, h('span', {}, name), h('span', {
                class: 'count' + (s.healthy < s.total ? ' low' : ''), dataset: { healthy: s.healthy, total: s.total },
                'aria-label': `${s.healthy} of ${s.total} healthy`,
            }, `${s.healthy}/${s.total}`), p.active ? h('span', { class: 'badge warn', title: 'Protection active' }, 'protected') : null)));
        }
    }

    async openSvc(name) {
        this.svc = name;
        history.replaceState(null, '', `#/services/${api.seg(this.ns)}/${api.seg(name)}`);
        this.renderServices();
        this.renderDetail();
        const ns = this.ns;
        try {
            const r = await api.rest('GET', `/registry/${api.seg(ns)}/${api.seg(name)}`);
            if (this.ns === ns) {
                this.thresholds.set(name, Number(r.protection && r.protection.threshold || 0));
                this.renderServices();
                this.renderInstances();
            }
        } catch (e) {
            if (!e.permissionDenied) {
                banner(`Cannot read ${name}'s settings: ${e.message}`, 'error');
            }
        }
        this.guard(ns, name);
    }

    // With auth on: may this user write the service's instances? If not,
    // Drain and Restore are disabled with the server's reason.
    async guard(ns, name) {
        this.writeWhy = null;
        if (!authOn()) {
            return;
        }
        this.writeWhy = 'checking permission...';
        this.renderInstances();
        let r;
        try {
            r = await api.canWrite(api.bytes(`/registry/${ns}/services/${name}/`), true);
        } catch (e) {
            r = { ok: false, why: e.message };
        }
        if (this.ns !== ns || this.svc !== name) {
            return;
        }
        this.writeWhy = r.ok ? null : `Read-only: user ${api.session().user} may not change instances of ${ns}/${name} (${r.why}).`;
        this.renderInstances();
    }

    renderDetail() {
        const d = clear(this.detail);
        if (!this.svc) {
            d.append(h('h2', { id: 'svc-title', tabindex: '-1' }, this.ns ? `Namespace ${this.ns}` : 'No service selected'),
                h('p', { class: 'muted' }, 'Choose a service. The counts are healthy (up and passing) of all instances, kept live by the discovery stream.'));
            return;
        }
        this.protEl = h('p', { id: 'svc-protection' });
        this.reasonEl = h('p', { class: 'reason', id: 'write-reason', hidden: true });
        this.tbody = h('tbody', { id: 'instance-rows' });
        d.append(h('h2', { id: 'svc-title', tabindex: '-1' }, `${this.ns} / ${this.svc}`),
            this.protEl, this.reasonEl,
            h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'instances' },
                h('thead', {}, h('tr', {},
                    ['Instance', 'Address', 'Zone', 'Version', 'Weight', 'Status', 'Health', 'Last check', ''].map((t) =>
                        h('th', { scope: 'col' }, t || h('span', { class: 'sr-only' }, 'Actions'))))),
                this.tbody)));
        this.renderInstances();
    }

    renderInstances() {
        if (!this.svc || !this.tbody) {
            return;
        }
        const list = [...this.instances.values()].filter((d) => d.service === this.svc)
            .sort((a, b) => (a.id < b.id ? -1 : 1));
        const s = { total: list.length, healthy: list.filter(healthy).length };
        const p = this.protection(this.svc, s);
        this.protEl.textContent = `${s.healthy} of ${s.total} healthy. ` + (p.thr > 0
            ? `Protect threshold ${p.thr}: ${p.active ? 'protection ACTIVE (below the threshold, healthy=true answers include the critical instances that are up).' : 'not active.'}`
            : 'No protect threshold set.');
        this.protEl.className = p.active ? 'notice' : '';
        this.protEl.dataset.active = String(p.active);
        this.reasonEl.hidden = !this.writeWhy;
        this.reasonEl.textContent = this.writeWhy || '';
        const tb = clear(this.tbody);
        if (!list.length) {
            tb.append(h('tr', {}, h('td', { colspan: '9', class: 'muted' }, this.snapshotSeen ? 'No instances.' : 'loading...')));
        }
        for (const d of list) {
            const draining = d.status === 'draining';
            const btn = h('button', {
                type: 'button', class: 'small' + (draining ? '' : ' danger'), dataset: { action: draining ? 'restore' : 'drain' },
                'aria-label': `${draining ? 'Restore' : 'Drain'} ${d.id}`,
                disabled: !!this.writeWhy, title: this.writeWhy || null,
                'aria-describedby': this.writeWhy ? 'write-reason' : null,
                onclick: () => this.setStatus(d, draining ? 'up' : 'draining'),
            }, draining ? 'Restore' : 'Drain');
            const ck = d.check;
            tb.append(h('tr', { dataset: { instance: d.id, status: d.status, health: d.health } },
                h('th', { scope: 'row' }, h('code', {}, d.id)),
                h('td', {}, h('code', {}, d.addr || '')),
                h('td', {}, d.zone || h('span', { class: 'muted' }, '-')),
                h('td', {}, d.version || h('span', { class: 'muted' }, '-')),
                h('td', { class: 'num' }, String(d.weight ?? '')),
                h('td', {}, h('span', { class: 'badge ' + (draining ? 'warn' : 'ok') }, d.status)),
                h('td', {}, h('span', { class: 'badge ' + ({ passing: 'ok', critical: 'bad' }[d.health] || '') }, d.health)),
                h('td', { class: 'check' }, ck ? [h('span', {}, ck.status), ck.output ? h('span', { class: 'muted' }, ': ' + ck.output) : null,
                    ck.since ? h('div', { class: 'muted small' }, 'since ' + ck.since) : null]
                    : d.checks ? h('span', { class: 'muted' }, 'no result yet')
                        : h('span', { class: 'muted', title: 'No active checks: the session heartbeat is the check' }, 'none (heartbeat)')),
                h('td', {}, btn)));
        }
    }

    async setStatus(d, status) {
        try {
            await api.rest('PATCH', `/registry/${api.seg(d.namespace)}/${api.seg(d.service)}/${api.seg(d.id)}`, { status });
            banner(`${d.id}: ${status === 'up' ? 'restored (up)' : 'draining'}.`, 'ok', 5000);
        } catch (e) {
            banner(`${d.id} not changed: ${e.message}`, 'error');
        }
    }
}
