// util.js - small DOM helpers shared by the pages: element building (no
// innerHTML with server data anywhere: keys and values are arbitrary bytes),
// the confirmation dialog, the status banner, number formatting.

// h('button', { class: 'x', onclick: fn }, 'text', child...)
export function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) {
            continue;
        }
        if (k.startsWith('on') && typeof v === 'function') {
            el.addEventListener(k.slice(2), v);
        } else if (k === 'class') {
            el.className = v;
        } else if (k === 'dataset') {
            Object.assign(el.dataset, v);
        } else if (v === true) {
            el.setAttribute(k, '');
        } else {
            el.setAttribute(k, String(v));
        }
    }
    for (const c of children.flat()) {
        if (c === undefined || c === null || c === false) {
            continue;
        }
        el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
}

export function clear(el) {
    while (el.firstChild) {
        el.firstChild.remove();
    }
    return el;
}

let uid = 0;
export const newId = (p) => `${p}-${++uid}`;

// A labelled form control: label text, then the control (given or an
// input made from attrs).
export function field(label, control, hint) {
    if (!control.id) {
        control.id = newId('f');
    }
    const parts = [h('label', { for: control.id }, label), control];
    if (hint) {
        const hid = newId('hint');
        control.setAttribute('aria-describedby', hid);
        parts.push(h('small', { id: hid, class: 'hint' }, hint));
    }
    return h('div', { class: 'field' }, parts);
}

// The status banner under the header: kind 'error' | 'ok' | 'info'.
let bannerTimer = 0;
export function banner(msg, kind = 'info', ms = 0) {
    const b = document.getElementById('banner');
    clearTimeout(bannerTimer);
    if (!msg) {
        b.hidden = true;
        return;
    }
    b.hidden = false;
    b.className = 'banner ' + kind;
    b.textContent = msg;
    if (ms) {
        bannerTimer = setTimeout(() => { b.hidden = true; }, ms);
    }
}

// A modal confirmation: resolves true when OK was chosen. body is text or
// nodes; okText names the action ("Delete 12 keys").
export function confirmDialog(title, body, okText, danger = true) {
    const d = document.getElementById('dialog');
    document.getElementById('dialog-title').textContent = title;
    const b = clear(document.getElementById('dialog-body'));
    b.append(...[].concat(body).map((x) => (x instanceof Node ? x : h('p', {}, x))));
    const ok = document.getElementById('dialog-ok');
    ok.textContent = okText;
    ok.className = danger ? 'danger' : 'primary';
    d.returnValue = '';
    return new Promise((resolve) => {
        d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
        d.showModal();
        document.getElementById('dialog-cancel').focus();
    });
}

export function fmtBytes(n) {
    if (n === null || n === undefined || Number.isNaN(n)) {
        return '-';
    }
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) {
        n /= 1024;
        i++;
    }
    return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}

export function fmtDuration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) {
        return s + ' s';
    }
    const m = Math.floor(s / 60);
    if (m < 60) {
        return `${m} min ${s % 60} s`;
    }
    return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export const hex = (id) => BigInt(id || 0).toString(16);

export const now = () => new Date().toLocaleTimeString();
