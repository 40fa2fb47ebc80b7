// leases.js - the Leases page: every lease with its granted TTL, the time
// left (counting down each second between refreshes), its keys; grant and
// revoke. LeaseLeases lists the IDs; LeaseTimeToLive (keys: true) gives
// each one's TTL and keys. The list is read again every REFRESH_MS and
// after each change; at most SHOWN leases are detailed.
import * as api from './api.js';
import { h, clear, field, banner, confirmDialog, fmtDuration, hex } from './util.js';

const REFRESH_MS = 5000;
const SHOWN = 100;
const KEYS_SHOWN = 5;

export function mount(main) {
    const v = new LeasesView(main);
    return () => v.stop();
}

class LeasesView {
    constructor(main) {
        this.rows = []; // { id, granted, ttl, at, keys, tr, left }
        this.alive = true;
        this.build(main);
        this.refresh();
        this.timer = setInterval(() => this.tick(), 1000);
        this.refresher = setInterval(() => this.refresh(), REFRESH_MS);
    }

    stop() {
        this.alive = false;
        clearInterval(this.timer);
        clearInterval(this.refresher);
    }

    build(main) {
        const ttl = h('input', { id: 'grant-ttl', type: 'number', min: '1', max: '9000000000', value: '60', required: true, inputmode: 'numeric' });
        const msg = h('p', { id: 'grant-msg', role: 'status' });
        const form = h('form', { class: 'inline', 'aria-labelledby': 'grant-title' },
            h('h2', { id: 'grant-title' }, 'Grant a lease'),
            field('TTL (seconds)', ttl),
            h('button', { type: 'submit', class: 'primary', id: 'grant' }, 'Grant'),
            msg);
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            try {
                const r = await api.call('/v3/lease/grant', { TTL: String(ttl.value), ID: '0' });
                if (r.error) {
                    throw new Error(r.error);
                }
                msg.textContent = `Granted lease ${hex(r.ID)} with a TTL of ${r.TTL} s. Attach keys to it from the Keys page (New key) or with etcdctl put --lease=${hex(r.ID)}.`;
                this.refresh();
            } catch (e) {
                msg.textContent = 'Not granted: ' + e.message;
            }
        });
        this.summary = h('p', { id: 'lease-summary', class: 'muted' }, 'loading...');
        this.tbody = h('tbody', { id: 'lease-rows' });
        main.append(h('div', { class: 'page' },
            h('h1', {}, 'Leases'),
            h('section', { class: 'card' }, form),
            h('section', { class: 'card', 'aria-labelledby': 'lease-list-title' },
                h('h2', { id: 'lease-list-title' }, 'Leases'),
                this.summary,
                h('div', { class: 'scroll' },
                    h('table', { class: 'grid', id: 'leases' },
                        h('thead', {}, h('tr', {},
                            h('th', { scope: 'col' }, 'Lease ID'),
                            h('th', { scope: 'col' }, 'Granted TTL'),
                            h('th', { scope: 'col' }, 'Time left'),
                            h('th', { scope: 'col' }, 'Keys'),
                            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
                        this.tbody)))));
    }

    async refresh() {
        if (this.busy) {
            return;
        }
        this.busy = true;
        try {
            const r = await api.call('/v3/lease/leases', {});
            const ids = (r.leases || []).map((l) => l.ID);
            const shown = ids.slice(0, SHOWN);
            const infos = await Promise.all(shown.map((id) => api.call('/v3/lease/timetolive', { ID: id, keys: true }).catch(() => null)));
            if (!this.alive) {
                return;
            }
            const at = performance.now();
            this.rows = shown.map((id, i) => ({ id, info: infos[i], at })).filter((x) => x.info && Number(x.info.TTL) !== -1);
            this.summary.textContent = ids.length === 0 ? 'No leases.'
                : `${ids.length} lease${ids.length === 1 ? '' : 's'}${ids.length > SHOWN ? `; the first ${SHOWN} are shown` : ''}. Refreshed every ${REFRESH_MS / 1000} s; the time left counts down in between.`;
            this.render();
        } catch (e) {
            this.summary.textContent = 'Cannot list leases: ' + e.message;
        } finally {
            this.busy = false;
        }
    }

    render() {
        const tb = clear(this.tbody);
        for (const row of this.rows) {
            const keys = (row.info.keys || []).map(api.unb64);
            row.left = h('td', { class: 'num ttl' });
            const keyCell = keys.length === 0 ? h('span', { class: 'muted' }, 'none')
                : h('ul', { class: 'keys' }, keys.slice(0, KEYS_SHOWN).map((k) => h('li', {}, h('code', {}, api.text(k)))),
                    keys.length > KEYS_SHOWN ? h('li', { class: 'muted' }, `and ${keys.length - KEYS_SHOWN} more`) : null);
            row.tr = h('tr', { dataset: { lease: hex(row.id) } },
                h('th', { scope: 'row' }, h('code', {}, hex(row.id))),
                h('td', { class: 'num' }, fmtDuration(Number(row.info.grantedTTL || 0))),
                row.left,
                h('td', {}, keyCell),
                h('td', {}, h('button', {
                    type: 'button', class: 'danger small', 'aria-label': `Revoke lease ${hex(row.id)}`,
                    onclick: () => this.revoke(row, keys),
                }, 'Revoke')));
            tb.append(row.tr);
        }
        this.tick();
    }

    tick() {
        const t = performance.now();
        for (const row of this.rows) {
            const left = Number(row.info.TTL || 0) - (t - row.at) / 1000;
            row.left.textContent = left > 0 ? fmtDuration(left) : 'expiring';
            row.left.classList.toggle('low', left < 10);
        }
    }

    async revoke(row, keys) {
        const body = [`Revoke lease ${hex(row.id)}?`];
        if (keys.length) {
            body.push(`Its ${keys.length} key${keys.length === 1 ? '' : 's'} will be deleted: ${keys.slice(0, KEYS_SHOWN).map(api.text).join(', ')}${keys.length > KEYS_SHOWN ? ', ...' : ''}`);
        }
        if (!(await confirmDialog('Revoke lease', body, 'Revoke'))) {
            return;
        }
        try {
            await api.call('/v3/lease/revoke', { ID: row.id });
            banner(`Revoked lease ${hex(row.id)}.`, 'ok', 5000);
        } catch (e) {
            banner(`Not revoked: ${e.message}`, 'error');
        }
        this.refresh();
    }
}
