// keys.js - the Keys page: a tree of keys split on '/', a key's value and
// revisions, create / edit / delete, delete by prefix, and a live tail.
//
// The tree loads a folder's children on demand, PAGE keys at a time
// (keys_only ranges with a limit). A page's keys are grouped by their next
// segment; when a page ends inside a sub-folder the next page starts after
// that whole sub-folder (its prefix end), so a folder with 100,000 keys
// below one child still lists its other children in a few pages.
//
// Writes are guarded by a Txn: an edit only lands if the key's mod
// revision is still the one the editor opened (else the editor says who
// won and keeps the text), a create only if the key does not exist, a
// delete only if the key did not change. Delete by prefix counts first
// (count_only) and says the number in the confirmation.
//
// The selected folder (the root at first) is watched (POST /v3/watch from
// the revision it was listed at): events go to the tail and into the
// loaded parts of the tree, so keys written elsewhere appear without a
// reload.
import * as api from './api.js';
import { h, clear, field, banner, confirmDialog, hex, now } from './util.js';
import { looksLikeYaml, yamlNodes } from './yaml.js';

const PAGE = 200; // keys per tree page
const TAIL = 50; // events kept in the live tail
const HEX_MAX = 4096; // bytes of a binary value shown as hex
const HISTORY_MAX = 20; // past versions read back per step of the history
const HISTORY_SHOWN = 200; // characters of a past value shown in the history

const authOn = () => !!api.session().token;
const label = (bs) => api.text(bs);

export function mount(main) {
    const v = new KeysView(main);
    return () => v.stop();
}

class KeysView {
    constructor(main) {
        this.selected = null; // { kind: 'folder' | 'key', node }
        this.stopWatch = null;
        this.watchPrefix = null;
        this.alive = true;
        this.build(main);
        this.setRoot('');
    }

    // Show the tree from prefix (''; all keys): a user allowed to read only
    // under some prefix starts there.
    async setRoot(prefix) {
        if (this.stopWatch) {
            this.stopWatch();
            this.stopWatch = null;
        }
        this.watchPrefix = null;
        this.root = this.folder(prefix, 0, prefix ? label(prefix) : 'All keys');
        this.treeEl.replaceChildren(this.root.li);
        await this.toggle(this.root, true);
        // open the usual "/" folder too, and start on the root
        const slash = prefix === '' && this.root.children.get('/');
        if (slash) {
            await this.toggle(slash, true);
        }
        this.selectFolder(this.root, false);
    }

    stop() {
        this.alive = false;
        if (this.stopWatch) {
            this.stopWatch();
        }
    }

    build(main) {
        this.treeEl = h('ul', { class: 'tree', id: 'tree' });
        this.detail = h('section', { class: 'detail', id: 'detail', 'aria-labelledby': 'detail-title' });
        this.tailState = h('span', { class: 'muted', id: 'tail-state' }, 'starting');
        this.tailList = h('ol', { class: 'tail', id: 'tail', reversed: true });
        const treeNav = h('nav', { class: 'pane tree-pane', 'aria-label': 'Key tree' },
            h('h1', { class: 'pane-title' }, 'Keys'),
            h('p', { class: 'hint' }, 'Folders split keys on "/". Arrow keys move; Right opens, Left closes.'),
            this.treeEl);
        treeNav.addEventListener('keydown', (ev) => this.treeKey(ev));
        const prefixIn = h('input', { id: 'root-prefix', placeholder: '/app/', spellcheck: 'false', autocomplete: 'off' });
        const rootForm = h('form', { class: 'root-form', role: 'search' },
            h('label', { for: 'root-prefix' }, 'Browse from prefix'), prefixIn,
            h('button', { type: 'submit', id: 'root-open' }, 'Open'));
        rootForm.addEventListener('submit', (ev) => {
            ev.preventDefault();
            this.setRoot(api.bytes(prefixIn.value));
        });
        treeNav.insertBefore(rootForm, this.treeEl);
        const tail = h('section', { class: 'pane tail-pane', 'aria-labelledby': 'tail-title' },
            h('h2', { id: 'tail-title' }, 'Live changes ', this.tailState),
            this.tailList);
        main.append(h('div', { class: 'keys-layout' }, treeNav, h('div', { class: 'right' }, this.detail, tail)));
    }

    // ------------------------------------------------------------ tree

    // A folder: every key with prefix; name is its part after the
    // parent's prefix ("app/", or "/" for the keys that start with one).
    folder(prefix, level, name) {
        const n = {
            kind: 'folder', prefix, level, children: new Map(),
            loaded: false, more: false, next: null, rev: '0', open: false,
        };
        n.btn = h('button', {
            type: 'button', class: 'node folder', 'aria-expanded': 'false',
            dataset: { prefix: label(prefix) }, onclick: () => this.folderClick(n),
        }, h('span', { class: 'twisty', 'aria-hidden': 'true' }), name);
        n.ul = h('ul', { role: 'group', hidden: true });
        n.moreBtn = h('button', { type: 'button', class: 'link more', hidden: true, onclick: () => this.loadPage(n) }, `Load more (${PAGE} keys per page)`);
        n.li = h('li', {}, n.btn, n.ul, n.moreBtn);
        return n;
    }

    leaf(key, level) {
        const n = { kind: 'key', key, level };
        n.btn = h('button', {
            type: 'button', class: 'node key', dataset: { key: label(key) },
            onclick: () => this.selectKey(n),
        }, label(key.slice(key.lastIndexOf('/') + 1)) || label(key));
        n.li = h('li', {}, n.btn);
        return n;
    }

    async folderClick(n) {
        await this.toggle(n, !n.open || this.selected?.node !== n ? true : false);
        this.selectFolder(n, true);
    }

    async toggle(n, open) {
        n.open = open;
        n.btn.setAttribute('aria-expanded', String(open));
        n.ul.hidden = !open;
        n.moreBtn.hidden = !open || !n.more;
        if (open && !n.loaded) {
            await this.loadPage(n);
        }
    }

    // The child of folder f that key k falls under: [name, isFolder].
    childOf(f, k) {
        const rest = k.slice(f.prefix.length);
        const i = rest.indexOf('/');
        return i < 0 ? [rest, false] : [rest.slice(0, i + 1), true];
    }

    async loadPage(f) {
        const end = api.prefixEnd(f.prefix);
        const start = f.next ?? (f.prefix || '\0');
        let r;
        try {
            r = await api.range(start, end, { keysOnly: true, limit: PAGE });
        } catch (e) {
            banner(`Cannot list ${label(f.prefix) || 'the keys'}: ${e.message}`, 'error');
            return;
        }
        if (!this.alive) {
            return;
        }
        if (!f.loaded) {
            f.rev = r.revision;
        }
        f.loaded = true;
        let last = null;
        for (const kv of r.kvs) {
            const [name, isFolder] = this.childOf(f, kv.key);
            last = isFolder ? api.prefixEnd(f.prefix + name) : kv.key + '\0';
            this.addChild(f, name, isFolder, kv.key, false);
        }
        f.next = last;
        f.more = r.more && last !== null && (end === '\0' || last < end);
        f.moreBtn.hidden = !f.open || !f.more;
        if (!f.children.size) {
            f.ul.replaceChildren(h('li', { class: 'muted empty' }, 'no keys'));
        }
    }

    // Add a child to folder f in byte order (no-op when present); fresh
    // marks one that came from the watch.
    addChild(f, name, isFolder, key, fresh) {
        if (f.children.has(name)) {
            return f.children.get(name);
        }
        const n = isFolder ? this.folder(f.prefix + name, f.level + 1, label(name)) : this.leaf(key, f.level + 1);
        f.ul.querySelector('.empty')?.remove();
        let before = null;
        for (const [other, c] of f.children) {
            if (other > name) {
                before = c.li;
                break;
            }
        }
        const entries = [...f.children.entries(), [name, n]].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        f.children = new Map(entries);
        f.ul.insertBefore(n.li, before);
        if (fresh) {
            n.btn.classList.add('fresh');
            setTimeout(() => n.btn.classList.remove('fresh'), 4000);
        }
        return n;
    }

    // A watch event: put the key into (or take it out of) the loaded tree.
    applyToTree(type, key) {
        if (!key.startsWith(this.root.prefix)) {
            return; // outside the tree shown
        }
        let f = this.root;
        const path = []; // [folder, name in its parent] on the way down
        for (let depth = 0; depth < 256 && f.loaded; depth++) {
            const [name, isFolder] = this.childOf(f, key);
            let c = f.children.get(name);
            if (!c && type === 'PUT') {
                // only inside what is loaded: past the last page, paging finds it
                const pos = isFolder ? f.prefix + name : key;
                if (f.more && f.next !== null && pos >= f.next) {
                    return;
                }
                c = this.addChild(f, name, isFolder, key, true);
            }
            if (!c) {
                return;
            }
            if (!isFolder) {
                if (type === 'DELETE') {
                    c.li.remove();
                    f.children.delete(name);
                    if (this.selected?.node === c) {
                        this.keyGone(c);
                    }
                    this.pruneEmpty(f, path);
                }
                return;
            }
            path.push([f, name]);
            f = c;
        }
    }

    // Folders left with no keys (all pages loaded, none left) go from the
    // tree, up to the first that still has some; the selected or watched
    // one stays, showing "no keys". (A folder never opened is not known to
    // be empty, so it stays too.)
    pruneEmpty(f, path) {
        while (path.length && f.loaded && !f.more && f.children.size === 0 &&
            this.selected?.node !== f && this.watchPrefix !== f.prefix) {
            const [parent, name] = path.pop();
            f.li.remove();
            parent.children.delete(name);
            f = parent;
        }
        if (f.loaded && !f.more && f.children.size === 0 && !f.ul.querySelector('.empty')) {
            f.ul.replaceChildren(h('li', { class: 'muted empty' }, 'no keys'));
        }
    }

    // Up/Down between visible nodes, Right opens a folder, Left closes it
    // (or goes to the parent folder).
    treeKey(ev) {
        if (!ev.target.classList.contains('node')) {
            return;
        }
        const all = [...this.treeEl.querySelectorAll('button.node')].filter((b) => b.offsetParent !== null);
        const i = all.indexOf(ev.target);
        const folderOf = (b) => b.classList.contains('folder');
        if (ev.key === 'ArrowDown' && i < all.length - 1) {
            all[i + 1].focus();
        } else if (ev.key === 'ArrowUp' && i > 0) {
            all[i - 1].focus();
        } else if (ev.key === 'ArrowRight' && folderOf(ev.target) && ev.target.getAttribute('aria-expanded') === 'false') {
            ev.target.click();
        } else if (ev.key === 'ArrowLeft') {
            if (folderOf(ev.target) && ev.target.getAttribute('aria-expanded') === 'true') {
                const n = this.findFolder(this.root, ev.target);
                if (n) {
                    this.toggle(n, false);
                }
            } else {
                ev.target.closest('ul[role=group]')?.parentElement?.querySelector(':scope > button')?.focus();
            }
        } else if (ev.key === 'Home') {
            all[0]?.focus();
        } else if (ev.key === 'End') {
            all[all.length - 1]?.focus();
        } else {
            return;
        }
        ev.preventDefault();
    }

    findFolder(f, btn) {
        if (f.btn === btn) {
            return f;
        }
        for (const c of f.children.values()) {
            if (c.kind === 'folder') {
                const r = this.findFolder(c, btn);
                if (r) {
                    return r;
                }
            }
        }
        return null;
    }

    mark(n) {
        this.treeEl.querySelector('[aria-current]')?.removeAttribute('aria-current');
        n.btn.setAttribute('aria-current', 'true');
    }

    // ------------------------------------------------------------ watch

    watch(prefix, rev) {
        if (this.watchPrefix === prefix && this.stopWatch) {
            return;
        }
        if (this.stopWatch) {
            this.stopWatch();
        }
        this.watchPrefix = prefix;
        const start = (BigInt(rev || '0') + 1n).toString();
        this.tailState.textContent = `connecting: ${label(prefix) || 'all keys'}`;
        this.stopWatch = api.watchPrefix(prefix, start, (evs) => this.onEvents(evs), (st, why) => {
            if (st === 'live') {
                this.tailState.textContent = `watching ${label(prefix) || 'all keys'} since revision ${start}`;
                this.tailState.dataset.state = 'live';
            } else if (st === 'retrying') {
                this.tailState.textContent = 'reconnecting...';
                this.tailState.dataset.state = 'retrying';
            } else if (st === 'compacted') {
                // the revisions since the listing are gone: list it again
                this.tailState.textContent = 'history compacted: listing again';
                this.tailState.dataset.state = 'compacted';
                this.relist(prefix);
            } else {
                this.tailState.textContent = `not watching: ${why}`;
                this.tailState.dataset.state = st;
            }
        });
    }

    async relist(prefix) {
        const f = this.findPrefix(prefix);
        this.stopWatch = null;
        if (!f || !this.alive) {
            return;
        }
        f.children.clear();
        clear(f.ul);
        f.loaded = false;
        f.next = null;
        await this.toggle(f, true);
        if (this.watchPrefix === prefix && !this.stopWatch) {
            this.watch(prefix, f.rev);
        }
    }

    findPrefix(prefix) {
        if (!prefix.startsWith(this.root.prefix)) {
            return null;
        }
        let f = this.root;
        for (let depth = 0; depth < 256 && f; depth++) {
            if (f.prefix === prefix) {
                return f;
            }
            const [name, isFolder] = this.childOf(f, prefix);
            f = isFolder ? f.children.get(name) : null;
        }
        return null;
    }

    onEvents(evs) {
        for (const e of evs) {
            this.applyToTree(e.type, e.kv.key);
            const li = h('li', { class: e.type === 'DELETE' ? 'del' : 'put' },
                h('span', { class: 'rev' }, 'rev ' + e.kv.mod), ' ',
                h('span', { class: 'type' }, e.type), ' ',
                h('code', {}, label(e.kv.key)),
                e.type === 'PUT' ? h('span', { class: 'muted' }, ` v${e.kv.version}, ${e.kv.value.length} bytes`) : null,
                h('span', { class: 'muted when' }, ' ' + now()));
            this.tailList.prepend(li);
            const sel = this.selected;
            if (sel?.kind === 'key' && sel.node.key === e.kv.key && sel.kv && e.kv.mod !== sel.kv.mod) {
                this.changedElsewhere(e);
            }
        }
        while (this.tailList.children.length > TAIL) {
            this.tailList.lastElementChild.remove();
        }
    }

    // ------------------------------------------------------------ detail

    detailTitle(text) {
        return h('h2', { id: 'detail-title', tabindex: '-1' }, text);
    }

    // Would the server let this user write here? (Only asked when signed
    // in: with auth off every client may.) Disables the buttons with the
    // server's reason when not.
    async guard(key, prefix, buttons, reasonEl) {
        if (!authOn()) {
            return;
        }
        buttons.forEach((b) => { b.disabled = true; });
        let r;
        try {
            r = await api.canWrite(key, prefix);
        } catch (e) {
            r = { ok: false, why: e.message };
        }
        if (r.ok) {
            buttons.forEach((b) => { b.disabled = false; });
            return;
        }
        const who = api.session().user;
        reasonEl.hidden = false;
        reasonEl.textContent = `Read-only: user ${who} may not write ${prefix ? 'under ' : ''}${label(key) || 'all keys'} (${r.why}).`;
        buttons.forEach((b) => {
            b.title = reasonEl.textContent;
            b.setAttribute('aria-describedby', reasonEl.id);
        });
    }

    selectFolder(f, focusTitle) {
        this.selected = { kind: 'folder', node: f };
        this.mark(f);
        this.watch(f.prefix, f.rev);
        const d = clear(this.detail);
        const name = label(f.prefix) || 'All keys';
        const count = h('span', { id: 'folder-count' }, 'counting...');
        const reason = h('p', { class: 'reason', id: 'write-reason', hidden: true });
        const newBtn = h('button', { type: 'button', class: 'primary', id: 'new-key', onclick: () => this.createForm(f) }, 'New key');
        const delBtn = h('button', { type: 'button', class: 'danger', id: 'delete-prefix', onclick: () => this.deletePrefix(f) }, f.prefix ? 'Delete prefix...' : 'Delete all keys...');
        d.append(this.detailTitle(f.prefix ? `Prefix ${name}` : name),
            h('p', {}, count),
            h('div', { class: 'buttons' }, newBtn, delBtn),
            reason);
        if (focusTitle) {
            d.querySelector('h2').focus({ preventScroll: true });
        }
        api.range(f.prefix || '\0', api.prefixEnd(f.prefix), { countOnly: true }).then((r) => {
            count.textContent = `${r.count} key${r.count === 1 ? '' : 's'} ${f.prefix ? 'with this prefix' : 'in the cluster'} at revision ${r.revision}.`;
        }, (e) => { count.textContent = 'Cannot count: ' + e.message; });
        this.guard(f.prefix, true, [newBtn, delBtn], reason);
    }

    async selectKey(n) {
        this.selected = { kind: 'key', node: n };
        this.mark(n);
        const d = clear(this.detail);
        d.append(this.detailTitle(label(n.key)), h('p', { class: 'muted' }, 'loading...'));
        let r;
        try {
            r = await api.get(n.key);
        } catch (e) {
            d.lastChild.textContent = 'Cannot read: ' + e.message;
            return;
        }
        if (this.selected?.node !== n) {
            return;
        }
        if (!r.kv) {
            this.keyGone(n);
            return;
        }
        this.showKey(n, r.kv, r.revision);
    }

    keyGone(n) {
        const d = clear(this.detail);
        d.append(this.detailTitle(label(n.key)), h('p', { role: 'alert' }, 'This key does not exist (any more).'));
    }

    showKey(n, kv, rev) {
        this.selected = { kind: 'key', node: n, kv };
        const d = clear(this.detail);
        const reason = h('p', { class: 'reason', id: 'write-reason', hidden: true });
        const shown = renderValue(kv.value, n.key);
        const editBtn = h('button', { type: 'button', class: 'primary', id: 'edit-key', onclick: () => this.editForm(n, kv) }, 'Edit');
        const delBtn = h('button', { type: 'button', class: 'danger', id: 'delete-key', onclick: () => this.deleteKey(n, kv) }, 'Delete');
        if (shown.kind === 'hex') {
            editBtn.disabled = true;
            editBtn.title = 'Binary value: edit it with etcdctl or a client library';
        }
        d.append(this.detailTitle(label(n.key)),
            h('div', { class: 'notice', id: 'changed', role: 'alert', hidden: true }),
            h('dl', { class: 'meta' },
                h('dt', {}, 'Create revision'), h('dd', { id: 'meta-create' }, kv.create),
                h('dt', {}, 'Mod revision'), h('dd', { id: 'meta-mod' }, kv.mod),
                h('dt', {}, 'Version'), h('dd', { id: 'meta-version' }, kv.version),
                h('dt', {}, 'Lease'), h('dd', { id: 'meta-lease' }, kv.lease !== '0' ? h('a', { href: '#/leases' }, hex(kv.lease)) : 'none'),
                h('dt', {}, 'Size'), h('dd', {}, `${kv.value.length} bytes`),
                h('dt', {}, 'Read at'), h('dd', {}, `revision ${rev}`)),
            h('h3', {}, 'Value ', h('span', { class: 'muted', id: 'value-kind' }, `(${shown.desc})`)),
            h('pre', { class: 'value ' + shown.kind, id: 'value', tabindex: '0', 'aria-label': 'Value' }, shown.nodes || shown.text),
            h('div', { class: 'buttons' }, editBtn, delBtn),
            reason,
            this.historyBox(n, kv));
        this.guard(n.key, false, shown.kind === 'hex' ? [delBtn] : [editBtn, delBtn], reason);
    }

    // The key's past values: a range at revision (mod - 1) gives the
    // version before, whose mod revision leads further back, until the
    // version that created the key (version 1) or a revision the server
    // has compacted away (the gateway's OutOfRange error, which the browser
    // logs as a failed request: so the history is read when asked for,
    // not on every click). HISTORY_MAX versions per step; "Older" reads
    // the next ones.
    historyBox(n, kv) {
        const rows = h('tbody', { id: 'history-rows' });
        const state = h('p', { class: 'muted', id: 'history-state' }, 'reading...');
        const box = h('section', { class: 'history', 'aria-labelledby': 'history-title' },
            h('h3', { id: 'history-title' }, 'History'),
            h('div', { class: 'scroll' }, h('table', { class: 'grid' },
                h('thead', {}, h('tr', {}, ['Mod revision', 'Version', 'Value'].map((t) => h('th', { scope: 'col' }, t)))),
                rows)),
            state);
        const row = (k, cls) => h('tr', { class: cls || '', dataset: { rev: k.mod, version: k.version } },
            h('td', { class: 'num' }, k.mod), h('td', { class: 'num' }, k.version),
            h('td', {}, h('code', { class: 'hval' }, shortValue(k.value))));
        rows.append(row(kv, 'current'));
        const more = async (from) => {
            let cur = from;
            clear(state).append('reading...');
            for (let i = 0; i < HISTORY_MAX; i++) {
                if (cur.version === '1' || BigInt(cur.mod) <= 1n) {
                    clear(state).append(`Created at revision ${cur.create}.`);
                    return;
                }
                const at = (BigInt(cur.mod) - 1n).toString();
                let r;
                try {
                    r = await api.range(n.key, undefined, { revision: at });
                } catch (e) {
                    if (e.code === 11 || /compacted/.test(e.message)) {
                        rows.append(h('tr', { class: 'compacted', dataset: { rev: at, compacted: 'true' } },
                            h('td', { class: 'num' }, `<= ${at}`), h('td', { class: 'num' }, `< ${cur.version}`),
                            h('td', {}, 'compacted: the server no longer keeps revisions this old')));
                        clear(state).append(`${cur.version - 1} older version(s) were compacted away.`);
                    } else {
                        clear(state).append('Cannot read the history: ' + e.message);
                    }
                    return;
                }
                if (!box.isConnected || !r.kvs[0]) {
                    clear(state).append(r.kvs[0] ? '' : `No version at revision ${at}.`);
                    return;
                }
                cur = r.kvs[0];
                rows.append(row(cur));
            }
            clear(state).append(h('button', { type: 'button', id: 'history-older', onclick: () => more(cur) }, 'Older versions'));
        };
        if (kv.version === '1') {
            clear(state).append(`Created at revision ${kv.create}.`);
        } else {
            clear(state).append(h('button', { type: 'button', id: 'history-show', onclick: () => more(kv) }, 'Show earlier versions'));
        }
        return box;
    }

    changedElsewhere(e) {
        const box = this.detail.querySelector('#changed');
        if (!box) {
            return; // the editor shows its own conflict on save
        }
        box.hidden = false;
        clear(box).append(`Changed by another client at revision ${e.kv.mod} (${e.type}). `,
            h('button', { type: 'button', class: 'link', onclick: () => this.selectKey(this.selected.node) }, 'Reload'));
    }

    editForm(n, kv) {
        const d = clear(this.detail);
        const ta = h('textarea', { id: 'editor', rows: '14', spellcheck: 'false' });
        ta.value = api.strictText(kv.value) ?? '';
        const msg = h('div', { id: 'edit-msg', role: 'alert' });
        const save = h('button', { type: 'submit', class: 'primary', id: 'save' }, 'Save');
        const form = h('form', { class: 'editor', 'aria-labelledby': 'detail-title' },
            this.detailTitle(`Edit ${label(n.key)}`),
            h('p', { class: 'muted' }, `Opened at mod revision ${kv.mod}, version ${kv.version}. Saving checks that nobody changed the key since.`),
            field('Value', ta),
            msg,
            h('div', { class: 'buttons' }, save,
                h('button', { type: 'button', onclick: () => this.selectKey(n) }, 'Cancel')));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            save.disabled = true;
            try {
                await this.save(n, kv, ta, msg);
            } finally {
                save.disabled = false;
            }
        });
        d.append(form);
        ta.focus();
    }

    async save(n, kv, ta, msg, overwrite) {
        clear(msg).className = '';
        let r;
        try {
            r = await api.putIf(n.key, api.bytes(ta.value), overwrite || kv.mod);
        } catch (e) {
            msg.className = 'error';
            msg.textContent = 'Not saved: ' + e.message;
            return;
        }
        if (r.ok) {
            banner(`Saved ${label(n.key)} at revision ${r.revision}.`, 'ok', 5000);
            this.selectKey(n);
            return;
        }
        msg.className = 'conflict';
        if (!r.current) {
            msg.append(h('strong', {}, 'Conflict: not saved. '), `Another client deleted ${label(n.key)} after you opened it (at mod revision ${kv.mod}).`);
            return;
        }
        const cur = r.current;
        msg.append(
            h('strong', {}, 'Conflict: not saved. '),
            `Another client changed ${label(n.key)} at revision ${cur.mod} (now version ${cur.version}) after you opened it at revision ${kv.mod}. Your text is still here.`,
            h('p', {}, 'Their value:'),
            h('pre', { class: 'value' }, renderValue(cur.value).text),
            h('div', { class: 'buttons' },
                h('button', { type: 'button', class: 'danger', id: 'overwrite', onclick: () => this.save(n, kv, ta, msg, cur.mod) }, 'Save mine over theirs'),
                h('button', { type: 'button', onclick: () => this.selectKey(n) }, 'Discard mine, show theirs')));
    }

    createForm(f) {
        const d = clear(this.detail);
        const keyIn = h('input', { id: 'new-key-name', required: true, spellcheck: 'false', autocomplete: 'off' });
        keyIn.value = label(f.prefix);
        const ta = h('textarea', { id: 'new-key-value', rows: '8', spellcheck: 'false' });
        const leaseIn = h('input', { id: 'new-key-lease', placeholder: 'none', spellcheck: 'false', autocomplete: 'off', inputmode: 'text' });
        const msg = h('div', { id: 'create-msg', role: 'alert' });
        const form = h('form', { class: 'editor', 'aria-labelledby': 'detail-title' },
            this.detailTitle('New key'),
            field('Key', keyIn),
            field('Value', ta),
            field('Lease ID (hex, optional)', leaseIn, 'The key is deleted when the lease expires. Grant one on the Leases page.'),
            msg,
            h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', id: 'create' }, 'Create'),
                h('button', { type: 'button', onclick: () => this.selectFolder(f, true) }, 'Cancel')));
        form.addEventListener('submit', async (ev) => {
            ev.preventDefault();
            msg.className = 'error';
            const key = api.bytes(keyIn.value);
            if (!key) {
                msg.textContent = 'A key cannot be empty.';
                return;
            }
            let lease;
            try {
                lease = api.leaseParse(leaseIn.value);
            } catch {
                msg.textContent = 'Lease ID: not a hex number.';
                return;
            }
            try {
                const r = await api.putIf(key, api.bytes(ta.value), '0', { lease });
                if (!r.ok) {
                    msg.textContent = `${keyIn.value} exists already (version ${r.current?.version}); open it to edit.`;
                    return;
                }
                banner(`Created ${keyIn.value} at revision ${r.revision}.`, 'ok', 5000);
                this.applyToTree('PUT', key);
                const leaf = await this.reveal(key);
                if (leaf) {
                    this.selectKey(leaf);
                }
            } catch (e) {
                msg.textContent = 'Not created: ' + e.message;
            }
        });
        d.append(form);
        keyIn.focus();
    }

    // Open the folders down to key and return its leaf (null: not in the
    // loaded tree, e.g. past a folder's last loaded page).
    async reveal(key) {
        if (!key.startsWith(this.root.prefix)) {
            return null;
        }
        let f = this.root;
        for (let depth = 0; depth < 256 && f; depth++) {
            if (!f.open) {
                await this.toggle(f, true);
            }
            const [name, isFolder] = this.childOf(f, key);
            const c = f.children.get(name);
            if (!isFolder) {
                return c || null;
            }
            f = c;
        }
        return null;
    }

    async deleteKey(n, kv) {
        const ok = await confirmDialog('Delete key', [`Delete ${label(n.key)} (version ${kv.version})?`, 'This cannot be undone.'], 'Delete key');
        if (!ok) {
            return;
        }
        try {
            if (!(await api.deleteIf(n.key, kv.mod))) {
                banner(`Not deleted: ${label(n.key)} changed since you opened it. Look again.`, 'error');
                this.selectKey(n);
                return;
            }
            banner(`Deleted ${label(n.key)}.`, 'ok', 5000);
            this.applyToTree('DELETE', n.key);
            this.keyGone(n);
        } catch (e) {
            banner('Not deleted: ' + e.message, 'error');
        }
    }

    async deletePrefix(f) {
        const name = label(f.prefix);
        let r;
        try {
            r = await api.range(f.prefix || '\0', api.prefixEnd(f.prefix), { countOnly: true });
        } catch (e) {
            banner('Cannot count the keys: ' + e.message, 'error');
            return;
        }
        if (r.count === 0) {
            banner(`No keys with prefix ${name}.`, 'info', 5000);
            return;
        }
        const what = `${r.count} key${r.count === 1 ? '' : 's'}`;
        const ok = await confirmDialog('Delete prefix',
            [f.prefix ? `Delete all ${what} whose names start with ${name}?` : `Delete all ${what} in the cluster?`,
                `Counted at revision ${r.revision}. This cannot be undone.`],
            `Delete ${what}`);
        if (!ok) {
            return;
        }
        try {
            const n = await api.deletePrefix(f.prefix);
            const diff = n !== r.count ? ` (the count changed from ${r.count} meanwhile)` : '';
            banner(`Deleted ${n} key${n === 1 ? '' : 's'} with prefix ${name || '(all)'}${diff}.`, 'ok', 8000);
            f.children.clear();
            clear(f.ul);
            f.loaded = false;
            f.next = null;
            await this.toggle(f, true);
            this.selectFolder(f, false);
        } catch (e) {
            banner('Not deleted: ' + e.message, 'error');
        }
    }
}

// How to show a value: JSON pretty-printed, text as is, anything else
// (invalid UTF-8, control characters) as a hex dump.
export function renderValue(bs, key = '') {
    const t = api.strictText(bs);
    if (t === null) {
        const lines = [];
        for (let off = 0; off < Math.min(bs.length, HEX_MAX); off += 16) {
            const row = bs.slice(off, off + 16);
            const hx = [...row].map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join(' ');
            const asc = [...row].map((c) => (c >= ' ' && c <= '~' ? c : '.')).join('');
            lines.push(`${off.toString(16).padStart(8, '0')}  ${hx.padEnd(47)}  ${asc}`);
        }
        if (bs.length > HEX_MAX) {
            lines.push(`... ${bs.length - HEX_MAX} more bytes`);
        }
        return { kind: 'hex', desc: 'binary, shown as hex', text: lines.join('\n') };
    }
    const s = t.trim();
    if ((s.startsWith('{') && s.endsWith('}')) || (s.startsWith('[') && s.endsWith(']'))) {
        try {
            return { kind: 'json', desc: 'JSON, pretty-printed', text: JSON.stringify(JSON.parse(s), null, 2) };
        } catch {
            // not JSON after all: plain text
        }
    }
    if (looksLikeYaml(t, api.text(key))) {
        return { kind: 'yaml', desc: 'YAML, highlighted', text: t, nodes: yamlNodes(t) };
    }
    return { kind: 'text', desc: t === '' ? 'empty' : 'text', text: t };
}

// A past value in one line for the history table.
function shortValue(bs) {
    const t = api.strictText(bs);
    if (t === null) {
        return `(${bs.length} bytes of binary)`;
    }
    const one = t.replace(/\n/g, '\u21b5');
    return one.length > HISTORY_SHOWN ? one.slice(0, HISTORY_SHOWN) + '...' : one;
}
