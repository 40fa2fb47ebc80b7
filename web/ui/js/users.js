// users.js - the Users and roles page: etcd's auth users and roles, for
// root, through the gateway's /v3/auth/* calls (what etcdctl user and
// etcdctl role do). Users: list with their roles, add, delete, change a
// password, grant and revoke a role. Roles: list with their permissions,
// add, delete, grant a permission (read, write or readwrite on one key, a
// prefix or a range [key, range_end)) and revoke one.
//
// Only root may read or change these while auth is on. The page asks the
// server (the user list) and, when it refuses, shows its reason and
// disables every control. With auth off anyone may change them; the page
// says that they take effect once auth is enabled (etcdctl auth enable).
// Deletes are confirmed. After each change both lists are read again, so
// the page shows the server's state, not the page's guess.
import * as api from './api.js';
import { h, clear, banner, confirmDialog } from './util.js';

const PERM_TYPES = ['READ', 'WRITE', 'READWRITE'];
const DETAIL_MAX = 200; // users or roles read in detail (one call each)

export function mount(main) {
    const v = new AuthView(main);
    return () => { v.alive = false; };
}

// A permission's range in words: one key, a prefix, a range.
function permRange(p) {
    const key = api.unb64(p.key);
    const end = api.unb64(p.range_end);
    if (!end) {
        return { kind: 'key', text: api.text(key) };
    }
    if (end === api.prefixEnd(key)) {
        return { kind: 'prefix', text: api.text(key) + '*' };
    }
    if (end === '\0') {
        return key === '\0' || key === ''
            ? { kind: 'all', text: 'every key' }
            : { kind: 'from', text: `${api.text(key)} and every key after it` };
    }
    return { kind: 'range', text: `[${api.text(key)}, ${api.text(end)})` };
}

// The permType of a Permission: a name or a number; READ (0) may be left
// out, as proto3 JSON leaves out default values.
const permType = (p) => (typeof p.permType === 'number' ? PERM_TYPES[p.permType] : p.permType || 'READ');

class AuthView {
    constructor(main) {
        this.alive = true;
        this.controls = [];
        this.build(main);
        this.load();
    }

    ctl(el) {
        this.controls.push(el);
        return el;
    }

    input(id, attrs = {}) {
        return this.ctl(h('input', { id, ...attrs }));
    }

    build(main) {
        const lab = (id, t) => h('label', { for: id }, t);
        this.reason = h('p', { class: 'reason', id: 'write-reason', hidden: true });
        this.status = h('p', { class: 'muted', id: 'auth-status' }, 'reading...');
        this.userRows = h('tbody', { id: 'user-rows' });
        this.roleRows = h('tbody', { id: 'role-rows' });
        this.grantUser = this.ctl(h('select', { id: 'grant-user' }));
        this.grantRole = this.ctl(h('select', { id: 'grant-role' }));
        this.pwUser = this.ctl(h('select', { id: 'pw-user' }));
        this.permRole = this.ctl(h('select', { id: 'perm-role' }));
        this.permType = this.ctl(h('select', { id: 'perm-type' },
            h('option', { value: 'READ' }, 'read'), h('option', { value: 'WRITE' }, 'write'),
            h('option', { value: 'READWRITE', selected: true }, 'readwrite')));
        this.permKind = this.ctl(h('select', { id: 'perm-kind' },
            h('option', { value: 'prefix' }, 'every key with this prefix'), h('option', { value: 'key' }, 'this key only'),
            h('option', { value: 'range' }, 'keys from key up to range end')));
        this.permKey = this.input('perm-key', { placeholder: '/app/' });
        this.permEnd = this.input('perm-end', { disabled: true });
        this.permKind.addEventListener('change', () => { this.permEnd.disabled = this.denied || this.permKind.value !== 'range'; });
        const form = (id, fields, btnText, fn) => {
            const btn = this.ctl(h('button', { type: 'submit', class: 'primary', id }, btnText));
            const f = h('form', { class: 'inline' }, fields, btn);
            f.addEventListener('submit', (ev) => {
                ev.preventDefault();
                this.run(fn);
            });
            return f;
        };
        const addName = this.input('user-add-name', { autocomplete: 'off', required: true });
        const addPw = this.input('user-add-password', { type: 'password', autocomplete: 'new-password', required: true });
        const pw = this.input('pw-new', { type: 'password', autocomplete: 'new-password', required: true });
        const roleName = this.input('role-add-name', { autocomplete: 'off', required: true });
        main.append(h('div', { class: 'page' },
            h('h1', {}, 'Users and roles'),
            this.status, this.reason,
            h('section', { class: 'card', 'aria-labelledby': 'users-title' },
                h('h2', { id: 'users-title' }, 'Users'),
                h('div', { class: 'scroll' }, h('table', { class: 'grid' },
                    h('thead', {}, h('tr', {}, ['User', 'Roles', ''].map((t) => h('th', { scope: 'col' }, t)))),
                    this.userRows)),
                form('user-add', [h('div', { class: 'field' }, lab('user-add-name', 'New user'), addName),
                    h('div', { class: 'field' }, lab('user-add-password', 'Password'), addPw)], 'Add user',
                async () => {
                    await api.call('/v3/auth/user/add', { name: addName.value, password: addPw.value });
                    const msg = `Added user ${addName.value}.`;
                    addName.value = '';
                    addPw.value = '';
                    return msg;
                }),
                form('user-grant', [h('div', { class: 'field' }, lab('grant-user', 'Grant to user'), this.grantUser),
                    h('div', { class: 'field' }, lab('grant-role', 'the role'), this.grantRole)], 'Grant role',
                async () => {
                    await api.call('/v3/auth/user/grant', { user: this.grantUser.value, role: this.grantRole.value });
                    return `Granted role ${this.grantRole.value} to ${this.grantUser.value}.`;
                }),
                form('pw-change', [h('div', { class: 'field' }, lab('pw-user', 'Change the password of'), this.pwUser),
                    h('div', { class: 'field' }, lab('pw-new', 'New password'), pw)], 'Change password',
                async () => {
                    await api.call('/v3/auth/user/changepw', { name: this.pwUser.value, password: pw.value });
                    pw.value = '';
                    return `Changed the password of ${this.pwUser.value}.`;
                })),
            h('section', { class: 'card', 'aria-labelledby': 'roles-title' },
                h('h2', { id: 'roles-title' }, 'Roles'),
                h('div', { class: 'scroll' }, h('table', { class: 'grid' },
                    h('thead', {}, h('tr', {}, ['Role', 'Permissions', ''].map((t) => h('th', { scope: 'col' }, t)))),
                    this.roleRows)),
                form('role-add', [h('div', { class: 'field' }, lab('role-add-name', 'New role'), roleName)], 'Add role',
                    async () => {
                        await api.call('/v3/auth/role/add', { name: roleName.value });
                        const msg = `Added role ${roleName.value}.`;
                        roleName.value = '';
                        return msg;
                    }),
                form('perm-grant', [h('div', { class: 'field' }, lab('perm-role', 'Grant to role'), this.permRole),
                    h('div', { class: 'field' }, lab('perm-type', 'Permission'), this.permType),
                    h('div', { class: 'field' }, lab('perm-key', 'Key'), this.permKey),
                    h('div', { class: 'field' }, lab('perm-kind', 'On'), this.permKind),
                    h('div', { class: 'field' }, lab('perm-end', 'Range end (exclusive)'), this.permEnd)], 'Grant permission',
                () => this.grantPerm()))));
    }

    async grantPerm() {
        const key = api.bytes(this.permKey.value);
        const kind = this.permKind.value;
        const perm = { permType: this.permType.value, key: api.b64(key || (kind === 'key' ? '' : '\0')) };
        if (kind === 'prefix') {
            perm.range_end = api.b64(api.prefixEnd(key));
        } else if (kind === 'range') {
            perm.range_end = api.b64(api.bytes(this.permEnd.value) || '\0');
        } else if (!key) {
            throw new Error('a key is needed');
        }
        await api.call('/v3/auth/role/grant', { name: this.permRole.value, perm });
        return `Granted ${this.permType.value.toLowerCase()} on ${permRange(perm).text} to role ${this.permRole.value}.`;
    }

    // Run one change, show its result, read the lists again.
    async run(fn) {
        try {
            banner(await fn(), 'ok', 4000);
        } catch (e) {
            banner('Not done: ' + e.message, 'error');
        }
        await this.load();
    }

    async confirmRun(title, body, okText, fn) {
        if (await confirmDialog(title, [body], okText)) {
            await this.run(fn);
        }
    }

    disable(why) {
        this.denied = true;
        this.reason.hidden = false;
        this.reason.textContent = why;
        for (const c of this.controls) {
            c.disabled = true;
            c.title = why;
        }
    }

    async load() {
        let users;
        let roles;
        let st = null;
        try {
            st = await api.call('/v3/auth/status', {}).catch(() => null);
            users = (await api.call('/v3/auth/user/list', {})).users || [];
            roles = (await api.call('/v3/auth/role/list', {})).roles || [];
        } catch (e) {
            if (!this.alive) {
                return;
            }
            this.status.textContent = '';
            this.disable(e.permissionDenied
                ? `Only root may see and change users and roles (the server says: ${e.message}).`
                : 'Cannot read users and roles: ' + e.message);
            return;
        }
        const userRoles = await Promise.all(users.slice(0, DETAIL_MAX).map((u) =>
            api.call('/v3/auth/user/get', { name: u }).then((r) => r.roles || [], (e) => ({ err: e.message }))));
        const perms = await Promise.all(roles.slice(0, DETAIL_MAX).map((r) =>
            api.call('/v3/auth/role/get', { role: r }).then((x) => x.perm || [], (e) => ({ err: e.message }))));
        if (!this.alive) {
            return;
        }
        this.status.textContent = st && !st.enabled
            ? 'Auth is disabled on this cluster: users and roles take effect once it is enabled (etcdctl auth enable, which needs a root user with the root role).'
            : `${users.length} user(s), ${roles.length} role(s). Auth is enabled.`;
        this.status.dataset.enabled = String(!!st?.enabled);
        this.renderUsers(users, userRoles);
        this.renderRoles(roles, perms);
        const opts = (sel, names) => {
            const was = sel.value;
            clear(sel).append(...names.map((n) => h('option', { value: n, selected: n === was }, n)));
        };
        opts(this.grantUser, users);
        opts(this.pwUser, users);
        opts(this.grantRole, roles);
        opts(this.permRole, roles);
    }

    renderUsers(users, userRoles) {
        const tb = clear(this.userRows);
        users.forEach((u, i) => {
            const rs = userRoles[i];
            const cell = rs === undefined ? h('span', { class: 'muted' }, 'not read')
                : rs.err ? h('span', { class: 'error' }, rs.err)
                    : rs.length === 0 ? h('span', { class: 'muted' }, 'none')
                        : h('ul', { class: 'chips' }, rs.map((r) => h('li', { dataset: { role: r } }, r, ' ',
                            h('button', {
                                type: 'button', class: 'link', 'aria-label': `Revoke role ${r} from ${u}`,
                                onclick: () => this.confirmRun(`Revoke role ${r}?`, `${u} loses the permissions of role ${r}.`, 'Revoke',
                                    async () => {
                                        await api.call('/v3/auth/user/revoke', { name: u, role: r });
                                        return `Revoked role ${r} from ${u}.`;
                                    }),
                            }, 'revoke'))));
            tb.append(h('tr', { dataset: { user: u } },
                h('th', { scope: 'row' }, u), h('td', {}, cell),
                h('td', {}, h('button', {
                    type: 'button', class: 'danger small', 'aria-label': `Delete user ${u}`,
                    onclick: () => this.confirmRun(`Delete user ${u}?`, `${u} can no longer sign in; tokens it holds stop working.`, `Delete ${u}`,
                        async () => {
                            await api.call('/v3/auth/user/delete', { name: u });
                            return `Deleted user ${u}.`;
                        }),
                }, 'Delete'))));
        });
    }

    renderRoles(roles, perms) {
        const tb = clear(this.roleRows);
        roles.forEach((r, i) => {
            const ps = perms[i];
            const cell = ps === undefined ? h('span', { class: 'muted' }, 'not read')
                : ps.err ? h('span', { class: 'error' }, ps.err)
                    : ps.length === 0 ? h('span', { class: 'muted' }, r === 'root' ? 'everything (root)' : 'none')
                        : h('ul', { class: 'perms' }, ps.map((p) => {
                            const rg = permRange(p);
                            const t = permType(p);
                            return h('li', { dataset: { key: api.text(api.unb64(p.key)), kind: rg.kind, type: t } },
                                h('span', { class: 'badge' }, t.toLowerCase()), ' ', h('code', {}, rg.text), ' ',
                                h('button', {
                                    type: 'button', class: 'link', 'aria-label': `Revoke ${t.toLowerCase()} on ${rg.text} from role ${r}`,
                                    onclick: () => this.confirmRun('Revoke permission?', `Role ${r} loses ${t.toLowerCase()} on ${rg.text}.`, 'Revoke',
                                        async () => {
                                            await api.call('/v3/auth/role/revoke', { role: r, key: p.key, range_end: p.range_end || '' });
                                            return `Revoked ${t.toLowerCase()} on ${rg.text} from role ${r}.`;
                                        }),
                                }, 'revoke'));
                        }));
            tb.append(h('tr', { dataset: { role: r } },
                h('th', { scope: 'row' }, r), h('td', {}, cell),
                h('td', {}, h('button', {
                    type: 'button', class: 'danger small', 'aria-label': `Delete role ${r}`,
                    onclick: () => this.confirmRun(`Delete role ${r}?`, `Users with role ${r} lose its permissions.`, `Delete ${r}`,
                        async () => {
                            await api.call('/v3/auth/role/delete', { role: r });
                            return `Deleted role ${r}.`;
                        }),
                }, 'Delete'))));
        });
    }
}
