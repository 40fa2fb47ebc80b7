// config.js - the Config page: namespaces and apps, an app's configs, and
// one config: its editor (Check, and Publish after the same check: the
// server's .../validate answers an invalid document's line and column,
// marked at that line, before anything is published), history with a diff between
// any two versions, rollback, gray release (rule, promote, abandon), the
// subscribers of this member with the version each was sent and acked, and
// the config's audit records.
//
// Everything goes through /api/v1/config and /api/v1/audit (docs/config.md,
// docs/audit.md). The check is POST .../validate (a 200 with the verdict,
// so an invalid document leaves no failed request in the browser's log);
// the publish checks again and writes nothing when it refuses. A publish
// sends expect_version (the
// version the editor opened), so it never replaces a release someone else
// published meanwhile without saying so. The namespaces are the first
// segments of the /config/ keys (a keys_only range per namespace, through
// the etcd gateway: etcdctl get --prefix /config/ --keys-only shows them
// too); a user who may not read all of /config/ types the namespace.
//
// Subscribers and acks are per member and have no stream of their own (a
// stream opened here would count as a subscriber), so that table is read
// again every SUBS_MS while a config is open.
import * as api from './api.js';
import { h, clear, field, banner, confirmDialog } from './util.js';

const SUBS_MS = 3000;
const NS_MAX = 200; // namespaces listed
const AUDIT_SHOWN = 50;
const FORMATS = ['yaml', 'json', 'properties', 'text'];

const authOn = () => !!api.session().token;
// RFC 3339 without the milliseconds, for tables
const when = (t) => (t ? t.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');
const P = (...parts) => parts.map(api.seg).join('/');

export function mount(main) {
    const v = new ConfigView(main);
    return () => v.stop();
}

class ConfigView {
    constructor(main) {
        this.alive = true;
        this.ns = null;
        this.app = null;
        this.cfg = null; // { ns, app, name, head }
        this.build(main);
        const m = location.hash.match(/^#\/config\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?/);
        this.start(m && decodeURIComponent(m[1]), m && m[2] && decodeURIComponent(m[2]), m && m[3] && decodeURIComponent(m[3]));
        this.subsTimer = setInterval(() => this.loadSubscribers(), SUBS_MS);
    }

    stop() {
        this.alive = false;
        clearInterval(this.subsTimer);
    }

    build(main) {
        this.nsIn = h('input', { id: 'cfg-ns', list: 'cfg-ns-names', spellcheck: 'false', autocomplete: 'off', placeholder: 'prod' });
        this.nsNames = h('datalist', { id: 'cfg-ns-names' });
        const nsForm = h('form', { class: 'root-form' },
            h('label', { for: 'cfg-ns' }, 'Namespace'), this.nsIn, this.nsNames,
            h('button', { type: 'submit', id: 'cfg-ns-open' }, 'Open'));
        nsForm.addEventListener('submit', (ev) => {
            ev.preventDefault();
            this.openNs(this.nsIn.value.trim());
        });
        this.appList = h('ul', { class: 'list', id: 'app-list', 'aria-label': 'Apps' });
        this.cfgList = h('ul', { class: 'list', id: 'cfg-list', 'aria-label': 'Configs' });
        this.newName = h('input', { id: 'new-cfg-name', spellcheck: 'false', autocomplete: 'off', placeholder: 'app.yaml' });
        this.newApp = h('input', { id: 'new-cfg-app', spellcheck: 'false', autocomplete: 'off', placeholder: 'shop' });
        const newForm = h('form', { class: 'root-form', 'aria-labelledby': 'new-cfg-title' },
            h('h2', { class: 'sub', id: 'new-cfg-title' }, 'New config'),
            h('label', { for: 'new-cfg-app' }, 'App'), this.newApp,
            h('label', { for: 'new-cfg-name' }, 'Name'), this.newName,
            h('button', { type: 'submit', id: 'new-cfg' }, 'Open editor'));
        newForm.addEventListener('submit', (ev) => {
            ev.preventDefault();
            const app = this.newApp.value.trim();
            const name = this.newName.value.trim();
            if (this.ns && app && name) {
                // a config this app's list does not show is new: nothing to read
                const known = app === this.app && this.cfgList.querySelector(`button[data-cfg="${CSS.escape(name)}"]`);
                this.openConfig(this.ns, app, name, !known);
            }
        });
        this.detail = h('div', { class: 'right', id: 'cfg-detail' },
            h('section', { class: 'detail' }, h('h2', { id: 'cfg-title', tabindex: '-1' }, 'No config selected'),
                h('p', { class: 'muted' }, 'Choose a namespace, an app and a config, or start a new one.')));
        const left = h('nav', { class: 'pane', 'aria-label': 'Namespaces, apps and configs' },
            h('h1', { class: 'pane-title' }, 'Config'), nsForm,
            h('h2', { class: 'sub' }, 'Apps'), this.appList,
            h('h2', { class: 'sub' }, 'Configs'), this.cfgList, newForm);
        main.append(h('div', { class: 'keys-layout side' }, left, this.detail));
    }

    async start(ns, app, name) {
        const names = await this.namespaces();
        if (!this.alive) {
            return;
        }
        clear(this.nsNames).append(...names.map((n) => h('option', { value: n })));
        ns = ns || names[0];
        if (!ns) {
            this.appList.append(h('li', { class: 'muted empty' }, 'No configs yet. Type a namespace, then start a new config.'));
            return;
        }
        await this.openNs(ns, app);
        if (app && name) {
            this.openConfig(ns, app, name);
        }
    }

    // The namespaces: one keys_only range of limit 1 per namespace, each
    // starting after the previous namespace's keys.
    async namespaces() {
        const out = [];
        let from = api.bytes('/config/');
        const end = api.prefixEnd(from);
        try {
            while (out.length < NS_MAX) {
                const r = await api.range(from, end, { keysOnly: true, limit: 1 });
                if (!r.kvs.length) {
                    break;
                }
                const rest = api.text(r.kvs[0].key).slice('/config/'.length);
                const ns = rest.slice(0, rest.indexOf('/'));
                if (!ns) {
                    break;
                }
                out.push(ns);
                from = api.prefixEnd(api.bytes(`/config/${ns}/`));
            }
        } catch (e) {
            // a user who may not read all of /config/ types the namespace
        }
        return out;
    }

    async openNs(ns, wantApp) {
        if (!ns) {
            return;
        }
        this.ns = ns;
        this.nsIn.value = ns;
        clear(this.appList);
        clear(this.cfgList);
        let r;
        try {
            r = await api.rest('GET', `/config/${P(ns)}`);
        } catch (e) {
            this.appList.append(h('li', { class: 'error' }, `Cannot list ${ns}: ${e.message}`));
            return;
        }
        if (!this.alive || this.ns !== ns) {
            return;
        }
        const apps = r.apps || [];
        if (!apps.length) {
            this.appList.append(h('li', { class: 'muted empty' }, 'No apps in this namespace.'));
        }
        for (const a of apps) {
            this.appList.append(h('li', {}, h('button', { type: 'button', class: 'node', dataset: { app: a }, onclick: () => this.openApp(a) }, a)));
        }
        const app = apps.includes(wantApp) ? wantApp : apps[0];
        if (app) {
            await this.openApp(app);
        }
    }

    async openApp(app) {
        this.app = app;
        this.newApp.value = app;
        for (const b of this.appList.querySelectorAll('button')) {
            b.toggleAttribute('aria-current', b.dataset.app === app);
        }
        const ns = this.ns;
        let r;
        try {
            r = await api.rest('GET', `/config/${P(ns, app)}`);
        } catch (e) {
            clear(this.cfgList).append(h('li', { class: 'error' }, `Cannot list ${app}: ${e.message}`));
            return;
        }
        if (!this.alive || this.ns !== ns || this.app !== app) {
            return;
        }
        clear(this.cfgList);
        for (const c of r.configs || []) {
            this.cfgList.append(h('li', {}, h('button', {
                type: 'button', class: 'node svc', dataset: { cfg: c.name }, onclick: () => this.openConfig(ns, app, c.name),
                'aria-current': this.cfg && this.cfg.ns === ns && this.cfg.app === app && this.cfg.name === c.name ? 'true' : null,
            }, h('span', {}, c.name), h('span', { class: 'count' }, `v${c.version}`),
            c.gray ? h('span', { class: 'badge warn' }, 'gray') : null)));
        }
        if (!(r.configs || []).length) {
            this.cfgList.append(h('li', { class: 'muted empty' }, 'No configs.'));
        }
    }

    // ------------------------------------------------------------ a config

    async openConfig(ns, app, name, isNew) {
        this.cfg = { ns, app, name, head: null, versions: [], gray: null };
        history.replaceState(null, '', `#/config/${P(ns, app, name)}`);
        const c = this.cfg;
        const base = `/config/${P(ns, app, name)}`;
        let head = null;
        let vers = null;
        if (isNew) {
            this.render();
            this.guard(c);
            this.loadSubscribers();
            this.loadAudit();
            return;
        }
        try {
            [head, vers] = await Promise.all([
                api.rest('GET', base).catch((e) => { if (e.status === 404) return null; throw e; }),
                api.rest('GET', base + '/versions').catch((e) => { if (e.status === 404) return null; throw e; }),
            ]);
        } catch (e) {
            banner(`Cannot read ${app}/${name}: ${e.message}`, 'error');
            return;
        }
        if (!this.alive || this.cfg !== c) {
            return;
        }
        if (head && head.gray && vers) {
            // this console's request matched the gray rule: show the main release
            head = await api.rest('GET', `${base}/versions/${vers.version}`).catch(() => head);
        }
        c.head = head;
        c.versions = vers ? vers.versions || [] : [];
        c.gray = vers && vers.gray ? await api.rest('GET', base + '/gray').catch(() => null) : null;
        if (this.cfg !== c) {
            return;
        }
        this.render();
        for (const b of this.cfgList.querySelectorAll('button')) {
            b.toggleAttribute('aria-current', b.dataset.cfg === name && this.app === app);
        }
        this.guard(c);
        this.loadSubscribers();
        this.loadAudit();
    }

    // With auth on: may this user publish in this app? If not, the write
    // buttons are disabled with the server's reason.
    async guard(c) {
        if (!authOn()) {
            return;
        }
        const btns = [...this.detail.querySelectorAll('button[data-write]')];
        btns.forEach((b) => { b.disabled = true; });
        let r;
        try {
            r = await api.canWrite(api.bytes(`/config/${c.ns}/${c.app}/`), true);
        } catch (e) {
            r = { ok: false, why: e.message };
        }
        if (this.cfg !== c) {
            return;
        }
        if (r.ok) {
            // allowed: still disabled where a gray release blocks them
            btns.forEach((b) => { b.disabled = !!b.dataset.blocked; });
            return;
        }
        const why = `Read-only: user ${api.session().user} may not write configs of ${c.ns}/${c.app} (${r.why}).`;
        this.reasonEl.hidden = false;
        this.reasonEl.textContent = why;
        btns.forEach((b) => {
            b.title = why;
            b.setAttribute('aria-describedby', 'write-reason');
        });
    }

    render() {
        const c = this.cfg;
        const hd = c.head;
        this.reasonEl = h('p', { class: 'reason', id: 'write-reason', hidden: true });
        const meta = hd ? h('dl', { class: 'meta', id: 'cfg-meta' },
            h('dt', {}, 'Version'), h('dd', { id: 'cfg-version' }, String(hd.version)),
            h('dt', {}, 'Format'), h('dd', {}, hd.format),
            h('dt', {}, 'Author'), h('dd', {}, hd.author || '-'),
            h('dt', {}, 'Message'), h('dd', {}, hd.message || '-'),
            h('dt', {}, 'Published'), h('dd', {}, hd.created_at || '-'),
            h('dt', {}, 'SHA-256'), h('dd', { class: 'hash' }, hd.sha256 || '-'))
            : h('p', { class: 'muted', id: 'cfg-meta' }, 'Not published yet: the first publish creates it.');
        clear(this.detail).append(
            h('section', { class: 'detail', 'aria-labelledby': 'cfg-title' },
                h('h2', { id: 'cfg-title', tabindex: '-1' }, `${c.ns} / ${c.app} / ${c.name}`),
                meta, this.reasonEl,
                c.gray ? h('p', { class: 'notice' }, `A gray release (v${c.gray.version}) is open: publish and rollback wait until it is promoted or abandoned.`) : null),
            this.editorCard(),
            this.historyCard(),
            this.subsCard(),
            this.grayCard(),
            this.auditCard());
        document.getElementById('cfg-title').focus();
    }

    // A textarea with a line-number gutter; mark(line, col, msg) flags a line.
    editorBox(id, text, labelText) {
        const ta = h('textarea', { id, rows: '14', spellcheck: 'false', wrap: 'off', autocomplete: 'off' });
        ta.value = text;
        const gutter = h('pre', { class: 'gutter', id: id + '-gutter', 'aria-hidden': 'true' });
        // the server's message, beside the line it names
        const note = h('div', { class: 'lineerr', id: id + '-lineerr', hidden: true, 'aria-hidden': 'true' });
        const box = { ta, gutter, errLine: 0 };
        const place = () => {
            gutter.scrollTop = ta.scrollTop;
            const top = 6 + (box.errLine - 1) * 18 - ta.scrollTop;
            note.hidden = !box.errLine || top < 0 || top > ta.clientHeight - 12;
            note.style.top = top + 'px';
        };
        const redraw = () => {
            const n = ta.value.split('\n').length;
            clear(gutter);
            for (let i = 1; i <= n; i++) {
                gutter.append(h('span', { class: i === box.errLine ? 'err' : null, dataset: { line: i } }, String(i)), '\n');
            }
            place();
        };
        ta.addEventListener('input', () => { box.errLine = 0; redraw(); });
        ta.addEventListener('scroll', place);
        box.unmark = () => { box.errLine = 0; redraw(); };
        box.mark = (line, col, msg) => {
            box.errLine = line;
            note.textContent = `line ${line}, column ${col}: ${msg}`;
            redraw();
            // put the caret at the place the server named
            const lines = ta.value.split('\n');
            let pos = 0;
            for (let i = 0; i < line - 1 && i < lines.length; i++) {
                pos += lines[i].length + 1;
            }
            pos += Math.max(0, (col || 1) - 1);
            ta.focus();
            ta.setSelectionRange(pos, pos);
            ta.scrollTop = Math.max(0, (line - 3) * 18); // line-height in console.css
            place();
        };
        redraw();
        box.el = h('div', { class: 'field' }, h('label', { for: id }, labelText), h('div', { class: 'editor' }, gutter, ta, note));
        return box;
    }

    formatSelect(id, value) {
        return h('select', { id }, FORMATS.map((f) => h('option', { value: f, selected: f === value }, f)));
    }

    // Show a refused write: an invalid document at its line.
    refused(msgEl, box, e, what) {
        msgEl.className = 'error';
        if (e.body && e.body.line) {
            box.mark(e.body.line, e.body.column, e.message.replace(/^.* at line \d+, column \d+: /, ''));
            msgEl.textContent = `${what}: ${e.message}. Nothing was written.`;
        } else {
            msgEl.textContent = `${what}: ${e.message}`;
        }
    }

    editorCard() {
        const c = this.cfg;
        const hd = c.head;
        const box = this.editorBox('cfg-editor', hd ? hd.content ?? '' : '', 'Content');
        const fmt = this.formatSelect('cfg-format', hd ? hd.format : (/\.ya?ml$/.test(c.name) ? 'yaml' : /\.json$/.test(c.name) ? 'json' : /\.properties$/.test(c.name) ? 'properties' : 'text'));
        const msgIn = h('input', { id: 'cfg-message', maxlength: '1024', autocomplete: 'off' });
        const out = h('p', { id: 'publish-msg', role: 'status' });
        const pub = h('button', { type: 'submit', class: 'primary', id: 'publish', dataset: { write: '1', ...(c.gray ? { blocked: '1' } : {}) }, disabled: !!c.gray }, 'Publish');
        const check = h('button', { type: 'button', id: 'check' }, 'Check');
        // the server's document check without a publish: true when valid
        // (the line marked and false when not; null when it cannot say)
        const validate = async () => {
            let v;
            try {
                v = await api.rest('POST', `/config/${P(c.ns, c.app, c.name)}/validate`, { content: box.ta.value, format: fmt.value });
            } catch (e) {
                out.className = 'error';
                out.textContent = `Cannot check: ${e.message}`;
                return null;
            }
            box.unmark();
            if (!v.valid) {
                this.refused(out, box, { message: v.error, body: v }, 'Not valid');
                return false;
            }
            out.className = 'ok';
            out.textContent = `Valid ${v.format} (${v.bytes} bytes).`;
            return true;
        };
        check.addEventListener('click', () => { out.className = ''; out.textContent = 'checking...'; validate(); });
        const form = h('form', { 'aria-labelledby': 'editor-title' },
            h('h2', { id: 'editor-title' }, hd ? `Edit and publish (now v${hd.version})` : 'New config'),
            field('Format', fmt, 'The server checks the document in this format before it writes anything.'),
            box.el,
            field('Message', msgIn, 'Why: kept with the release and in the audit log.'),
            h('div', { class: 'buttons' }, check, pub), out);
        if (hd && hd.redacted) {
            box.ta.value = '';
            box.ta.placeholder = 'This secret config is redacted for you: publishing replaces it.';
        }
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            out.className = '';
            out.textContent = 'checking...';
            if (await validate() === false) {
                out.textContent = out.textContent.replace(/^Not valid/, 'Not published');
                return;
            }
            out.className = '';
            out.textContent = 'publishing...';
            const body = { content: box.ta.value, format: fmt.value, message: msgIn.value, expect_version: hd ? hd.version : 0 };
            try {
                const r = await api.rest('PUT', `/config/${P(c.ns, c.app, c.name)}`, body);
                banner(`Published ${c.app}/${c.name} v${r.version}.`, 'ok', 5000);
                await this.openConfig(c.ns, c.app, c.name);
                this.openNs(c.ns, c.app);
                const m = document.getElementById('publish-msg');
                if (m) {
                    m.className = 'ok';
                    m.textContent = `Published v${r.version} (revision ${r.revision}).`;
                }
            } catch (e) {
                if (e.status === 409) {
                    out.className = 'error';
                    out.textContent = `Not published: ${e.message}. Someone published since you opened it, or a gray release is open; reload to see the current version (your text stays here until then).`;
                    return;
                }
                this.refused(out, box, e, 'Not published');
            }
        });
        return h('section', { class: 'card' }, form);
    }

    grayCard() {
        const c = this.cfg;
        const g = c.gray;
        const base = `/config/${P(c.ns, c.app, c.name)}/gray`;
        const out = h('p', { id: 'gray-msg', role: 'status' });
        if (g) {
            const rule = g.rule && g.rule.labels
                ? 'clients whose labels include ' + Object.entries(g.rule.labels).map(([k, v]) => `${k}=${v}`).join(', ')
                : `${g.rule && g.rule.percentage}% of client ids`;
            const act = async (method, path, what) => {
                try {
                    await api.rest(method, path, method === 'POST' ? {} : undefined);
                    banner(`Gray release v${g.version} ${what}.`, 'ok', 5000);
                    await this.openConfig(c.ns, c.app, c.name);
                    this.openNs(c.ns, c.app);
                } catch (e) {
                    out.className = 'error';
                    out.textContent = `Not ${what}: ${e.message}`;
                }
            };
            return h('section', { class: 'card', 'aria-labelledby': 'gray-title', id: 'gray', dataset: { open: 'true' } },
                h('h2', { id: 'gray-title' }, `Gray release v${g.version} (open)`),
                h('p', { id: 'gray-state' }, `Rule: ${rule}. Based on v${g.base_version}. ${g.message ? 'Message: ' + g.message : ''}`),
                h('pre', { class: 'value' }, g.content ?? '(redacted)'),
                h('div', { class: 'buttons' },
                    h('button', { type: 'button', class: 'primary', id: 'gray-promote', dataset: { write: '1' }, onclick: () => act('POST', base + '/promote', 'promoted') }, `Promote v${g.version} to everyone`),
                    h('button', { type: 'button', class: 'danger', id: 'gray-abandon', dataset: { write: '1' }, onclick: async () => {
                        if (await confirmDialog('Abandon gray release', `Abandon gray release v${g.version}? Its clients go back to v${c.head ? c.head.version : '?'}; the number v${g.version} is not reused.`, 'Abandon')) {
                            act('DELETE', base, 'abandoned');
                        }
                    } }, 'Abandon')),
                out);
        }
        if (!c.head) {
            return h('section', { class: 'card', id: 'gray', dataset: { open: 'false' } }, h('h2', {}, 'Gray release'),
                h('p', { class: 'muted' }, 'Publish a first version before a gray release.'));
        }
        const kind = h('select', { id: 'gray-kind' }, h('option', { value: 'labels' }, 'clients with labels'), h('option', { value: 'percentage' }, 'a percentage of client ids'));
        const labels = h('input', { id: 'gray-labels', placeholder: 'zone=z1,env=canary', autocomplete: 'off', spellcheck: 'false' });
        const pct = h('input', { id: 'gray-percent', type: 'number', min: '0', max: '100', step: '0.01', value: '10', inputmode: 'decimal' });
        const pctField = field('Percentage', pct, 'Sticky per client id (SHA-256 bucket); clients without an id never get it.');
        pctField.hidden = true;
        const labelsField = field('Labels', labels, 'k=v pairs, comma-separated: every pair must match.');
        kind.addEventListener('change', () => {
            pctField.hidden = kind.value !== 'percentage';
            labelsField.hidden = kind.value !== 'labels';
        });
        const box = this.editorBox('gray-content', c.head.content ?? '', 'Gray content');
        const msgIn = h('input', { id: 'gray-message', autocomplete: 'off' });
        const form = h('form', { 'aria-labelledby': 'gray-title' },
            h('h2', { id: 'gray-title' }, 'Start a gray release'),
            h('p', { class: 'hint' }, 'Only the clients the rule picks get this version; promote makes it everyone\'s under the same number.'),
            field('Rule', kind), labelsField, pctField, box.el, field('Message', msgIn),
            h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', id: 'gray-start', dataset: { write: '1' } }, 'Start gray release')), out);
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            let rule;
            if (kind.value === 'percentage') {
                rule = { percentage: Number(pct.value) };
            } else {
                const m = {};
                for (const kv of labels.value.split(',').map((s) => s.trim()).filter(Boolean)) {
                    const i = kv.indexOf('=');
                    m[i < 0 ? kv : kv.slice(0, i).trim()] = i < 0 ? '' : kv.slice(i + 1).trim();
                }
                rule = { labels: m };
            }
            try {
                const r = await api.rest('PUT', base, { content: box.ta.value, format: c.head.format, message: msgIn.value, rule });
                banner(`Gray release v${r.version} started.`, 'ok', 5000);
                await this.openConfig(c.ns, c.app, c.name);
                this.openNs(c.ns, c.app);
            } catch (e) {
                this.refused(out, box, e, 'Not started');
            }
        });
        return h('section', { class: 'card', id: 'gray', dataset: { open: 'false' } }, form);
    }

    historyCard() {
        const c = this.cfg;
        const vs = c.versions;
        const diffOut = h('pre', { class: 'value diff', id: 'diff', hidden: true });
        const diffMsg = h('p', { id: 'diff-msg', role: 'status' });
        const rows = vs.map((v, i) => h('tr', { dataset: { version: v.version } },
            h('td', {}, h('input', { type: 'radio', name: 'diff-from', value: v.version, checked: i === 1 || (vs.length === 1 && i === 0), 'aria-label': `Diff from v${v.version}` })),
            h('td', {}, h('input', { type: 'radio', name: 'diff-to', value: v.version, checked: i === 0, 'aria-label': `Diff to v${v.version}` })),
            h('th', { scope: 'row' }, `v${v.version}`, c.head && v.version === c.head.version ? h('span', { class: 'muted' }, ' (current)') : null),
            h('td', {}, v.source + (v.from_version ? ` of v${v.from_version}` : '')),
            h('td', {}, v.author || '-'),
            h('td', {}, v.message || ''),
            h('td', { class: 'nowrap' }, when(v.created_at)),
            h('td', {}, c.head && v.version !== c.head.version ? h('button', {
                type: 'button', class: 'small nowrap', dataset: { rollback: v.version, write: '1', ...(c.gray ? { blocked: '1' } : {}) }, disabled: !!c.gray,
                'aria-label': `Roll back to v${v.version}`, onclick: () => this.rollback(v.version),
            }, 'Roll back') : null)));
        const show = async () => {
            const from = this.detail.querySelector('input[name=diff-from]:checked')?.value;
            const to = this.detail.querySelector('input[name=diff-to]:checked')?.value;
            if (!from || !to) {
                return;
            }
            try {
                const t = await api.rest('GET', `/config/${P(c.ns, c.app, c.name)}/diff?from=${from}&to=${to}`, undefined, { text: true });
                clear(diffOut);
                for (const line of t.split('\n')) {
                    const cls = line.startsWith('+++') || line.startsWith('---') ? 'hdr' : line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : line.startsWith('@@') ? 'hunk' : null;
                    diffOut.append(h('span', { class: cls }, line), '\n');
                }
                diffOut.hidden = false;
                diffMsg.textContent = t ? `Changes from v${from} to v${to}:` : `v${from} and v${to} are the same.`;
            } catch (e) {
                diffMsg.textContent = 'No diff: ' + e.message;
            }
        };
        return h('section', { class: 'card', 'aria-labelledby': 'history-title' },
            h('h2', { id: 'history-title' }, 'History'),
            vs.length ? h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'versions' },
                h('thead', {}, h('tr', {}, ['From', 'To', 'Version', 'Source', 'Author', 'Message', 'Published', ''].map((t) =>
                    h('th', { scope: 'col' }, t || h('span', { class: 'sr-only' }, 'Actions'))))),
                h('tbody', {}, rows))) : h('p', { class: 'muted' }, 'No versions yet.'),
            vs.length ? h('div', { class: 'buttons' }, h('button', { type: 'button', id: 'diff-show', onclick: show }, 'Show diff')) : null,
            diffMsg, diffOut);
    }

    async rollback(v) {
        const c = this.cfg;
        if (!(await confirmDialog('Roll back', `Publish v${v}'s content of ${c.app}/${c.name} as a new version? Subscribers are pushed it.`, `Roll back to v${v}`, false))) {
            return;
        }
        try {
            const r = await api.rest('POST', `/config/${P(c.ns, c.app, c.name)}/rollback`, { to: v, message: `rollback to v${v} (console)` });
            banner(`Rolled back: v${r.version} has v${v}'s content.`, 'ok', 5000);
            await this.openConfig(c.ns, c.app, c.name);
            this.openNs(c.ns, c.app);
        } catch (e) {
            banner('Not rolled back: ' + e.message, 'error');
        }
    }

    subsCard() {
        this.subsBody = h('tbody', { id: 'subscriber-rows' });
        this.subsNote = h('p', { class: 'muted', id: 'subs-note' }, 'loading...');
        return h('section', { class: 'card', 'aria-labelledby': 'subs-title' },
            h('h2', { id: 'subs-title' }, 'Who runs which version'),
            this.subsNote,
            h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'subscribers' },
                h('thead', {}, h('tr', {}, ['Client id', 'Labels', 'Address', 'Connected since', 'Sent', 'Acked', 'Acked at'].map((t) => h('th', { scope: 'col' }, t)))),
                this.subsBody)));
    }

    async loadSubscribers() {
        const c = this.cfg;
        if (!c || !this.subsBody || !this.alive) {
            return;
        }
        let r;
        try {
            r = await api.rest('GET', `/config/${P(c.ns, c.app, c.name)}/subscribers`);
        } catch (e) {
            this.subsNote.textContent = 'Cannot list subscribers: ' + e.message;
            return;
        }
        if (this.cfg !== c) {
            return;
        }
        const subs = r.subscribers || [];
        const cur = c.head ? c.head.version : null;
        this.subsNote.textContent = `${subs.length} subscriber${subs.length === 1 ? '' : 's'} on this member (each member answers for its own streams); read every ${SUBS_MS / 1000} s.`;
        const tb = clear(this.subsBody);
        for (const s of subs) {
            const labels = s.labels && typeof s.labels === 'object' ? Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(', ') : (s.labels || '');
            const behind = cur !== null && s.acked_version !== cur && !(c.gray && s.acked_version === c.gray.version);
            tb.append(h('tr', { dataset: { client: s.client_id || '', acked: s.acked_version ?? '' } },
                h('th', { scope: 'row' }, s.client_id || h('span', { class: 'muted' }, '(no id)')),
                h('td', {}, labels || h('span', { class: 'muted' }, '-')),
                h('td', {}, h('code', {}, s.address || '')),
                h('td', { class: 'nowrap' }, when(s.connected_since)),
                h('td', { class: 'num' }, s.delivered_version ? `v${s.delivered_version}` : '-'),
                h('td', { class: 'num' + (behind ? ' low' : '') }, s.acked_version ? `v${s.acked_version}` : 'not yet'),
                h('td', { class: 'nowrap' }, when(s.acked_at))));
        }
    }

    auditCard() {
        this.auditBody = h('tbody', { id: 'audit-rows' });
        this.auditNote = h('p', { class: 'muted', id: 'audit-note' }, 'loading...');
        return h('section', { class: 'card', 'aria-labelledby': 'audit-title' },
            h('h2', { id: 'audit-title' }, 'Audit records'),
            this.auditNote,
            h('div', { class: 'scroll' }, h('table', { class: 'grid', id: 'audit' },
                h('thead', {}, h('tr', {}, ['Seq', 'Time', 'Principal', 'Source', 'Action', 'Version', 'Message', 'Revision'].map((t) => h('th', { scope: 'col' }, t)))),
                this.auditBody)));
    }

    // The newest records of the namespace, this config's only, newest first.
    async loadAudit() {
        const c = this.cfg;
        let r;
        try {
            r = await api.rest('GET', `/audit?namespace=${api.seg(c.ns)}&limit=1000`);
        } catch (e) {
            this.auditNote.textContent = 'Cannot read the audit log: ' + e.message;
            return;
        }
        if (this.cfg !== c) {
            return;
        }
        const target = `${c.app}/${c.name}`;
        const recs = (r.records || []).filter((x) => x.target === target).reverse();
        this.auditNote.textContent = recs.length
            ? `${recs.length > AUDIT_SHOWN ? `The newest ${AUDIT_SHOWN} of ` : ''}${recs.length} record${recs.length === 1 ? '' : 's'} for ${target} (GET /api/v1/audit?namespace=${c.ns}), newest first.`
            : `No records for ${target}.`;
        const tb = clear(this.auditBody);
        for (const x of recs.slice(0, AUDIT_SHOWN)) {
            tb.append(h('tr', { dataset: { seq: x.seq, action: x.action } },
                h('th', { scope: 'row', class: 'num' }, String(x.seq)),
                h('td', { class: 'nowrap' }, when(x.time)),
                h('td', {}, x.principal),
                h('td', {}, h('code', {}, x.source)),
                h('td', {}, x.action),
                h('td', { class: 'num' }, x.version ? `v${x.version}` : '-'),
                h('td', {}, x.message || ''),
                h('td', { class: 'num' }, String(x.revision))));
        }
    }
}
