// app.js - the console's shell: finds out whether the server wants a login
// (etcd's auth: a read without a token fails with "user name is empty"),
// shows the login form or the page the URL's hash names (#/keys, #/leases,
// #/services, #/config, #/cluster, #/users), and the signed-in user with a
// way out. Each page module has mount(main) -> unmount(); unmount stops its
// timers and streams.
import * as api from './api.js';
import { h, clear, field, banner } from './util.js';
import * as keys from './keys.js';
import * as leases from './leases.js';
import * as cluster from './cluster.js';
import * as services from './services.js';
import * as config from './config.js';
import * as users from './users.js';

const pages = { keys, leases, services, config, cluster, users };
const app = { unmount: null, page: null, auth: 'unknown' };

function showWho() {
    const who = clear(document.getElementById('who'));
    const s = api.session();
    if (s.token) {
        who.append(
            h('span', { class: 'user', title: 'Signed in (etcd auth)' }, 'User: ', h('strong', { id: 'who-user' }, s.user)),
            h('button', { type: 'button', class: 'link', onclick: logout }, 'Sign out'),
        );
    } else if (app.auth === 'off') {
        who.append(h('span', { class: 'muted', title: 'The server has auth disabled: every client may read and write' }, 'Auth disabled'));
    }
}

function logout() {
    api.setSession('', '');
    route(true);
}

function setNav(page) {
    for (const a of document.querySelectorAll('nav a[data-page]')) {
        if (a.dataset.page === page) {
            a.setAttribute('aria-current', 'page');
        } else {
            a.removeAttribute('aria-current');
        }
    }
}

function unmount() {
    if (app.unmount) {
        app.unmount();
        app.unmount = null;
    }
}

function loginForm(reason) {
    unmount();
    setNav('');
    app.page = 'login';
    document.title = 'Sign in - Cairn console';
    const main = clear(document.getElementById('main'));
    const user = h('input', { name: 'user', autocomplete: 'username', required: true });
    const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    const msg = h('p', { class: 'error', role: 'alert', id: 'login-error' });
    const form = h('form', { class: 'card login', 'aria-labelledby': 'login-title' },
        h('h1', { id: 'login-title' }, 'Sign in'),
        h('p', { class: 'muted' }, reason || 'This cluster has authentication enabled. Sign in with an etcd user (etcdctl user add).'),
        field('User name', user),
        field('Password', pass),
        msg,
        h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
    form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        msg.textContent = '';
        try {
            const r = await api.call('/v3/auth/authenticate', { name: user.value, password: pass.value });
            api.setSession(user.value, r.token);
            app.auth = 'on';
            route(true);
        } catch (e) {
            msg.textContent = 'Sign-in failed: ' + e.message;
            pass.select();
        }
    });
    main.append(form);
    showWho();
    user.focus();
}

// Does this server need a token from us? One cheap read says.
async function probeAuth() {
    try {
        await api.call('/v3/kv/range', { key: btoa('\0'), count_only: true, limit: '1' });
        app.auth = api.session().token ? 'on' : 'off';
    } catch (e) {
        if (e.authNeeded) {
            app.auth = 'needed';
        } else if (e.permissionDenied) {
            app.auth = 'on'; // signed in, just not allowed to read there
        } else {
            throw e;
        }
    }
}

async function route(recheck) {
    banner('');
    if (recheck || app.auth === 'unknown') {
        try {
            await probeAuth();
        } catch (e) {
            banner('Cannot reach the server: ' + e.message, 'error');
            return;
        }
    }
    if (app.auth === 'needed') {
        api.setSession('', '');
        loginForm();
        return;
    }
    const name = (location.hash.match(/^#\/(\w+)/) || [])[1] || 'keys';
    const page = pages[name] ? name : 'keys';
    unmount();
    setNav(page);
    app.page = page;
    showWho();
    const main = clear(document.getElementById('main'));
    document.title = `${page[0].toUpperCase()}${page.slice(1)} - Cairn console`;
    app.unmount = pages[page].mount(main);
}

api.onAuthLost(() => {
    if (app.page === 'login') {
        return;
    }
    api.setSession('', '');
    app.auth = 'needed';
    loginForm('Your session has ended (the token expired or was revoked). Sign in again.');
});

window.addEventListener('hashchange', () => route(false));
route(true);
