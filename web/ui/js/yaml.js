// yaml.js - YAML shown with syntax colouring, for the Keys page. Not a
// parser: each line is split into indentation, "- " markers, a key, its
// value and a trailing comment, and each part becomes a <span> whose text
// is set with textContent (a value cannot inject markup). The indentation
// is kept as written (re-indenting YAML changes its meaning when block
// scalars are involved); tabs, which YAML forbids in indentation, are
// marked. Lines inside a block scalar (after "key: |" or "key: >") are
// shown as strings.
import { h } from './util.js';

const MAX_LINES = 5000; // a longer value is shown as plain text

const KEY_LINE = /^(\s*)((?:-\s+)*)((?:"[^"]*"|'[^']*'|[^\s#'"{[\]][^#]*?)):(?=\s|$)(.*)$/;
const ITEM_LINE = /^(\s*)((?:-\s+)+|-$)(.*)$/;

// Does text look like a YAML document? A .yaml/.yml key says so; else at
// least one "key:" line at the left margin, and every other line at the
// margin a key, an item, a comment or a document marker.
export function looksLikeYaml(text, key = '') {
    if (/\.ya?ml$/i.test(key)) {
        return true;
    }
    const lines = text.split('\n');
    if (lines.length < 2 || lines.length > MAX_LINES) {
        return false;
    }
    let keys = 0;
    for (const l of lines) {
        if (/^\s*$/.test(l) || /^\s*#/.test(l) || /^(---|\.\.\.)(\s|$)/.test(l) || /^\s/.test(l)) {
            continue;
        }
        if (KEY_LINE.test(l)) {
            keys++;
        } else if (!ITEM_LINE.test(l)) {
            return false;
        }
    }
    return keys > 0;
}

// The class of a plain value: string, number, boolean/null, alias/anchor.
function valueClass(v) {
    const s = v.trim();
    if (/^(["']).*\1$/.test(s)) {
        return 'y-str';
    }
    if (/^[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|0x[0-9a-fA-F]+|\.inf|\.nan)$/.test(s)) {
        return 'y-num';
    }
    if (/^(true|false|yes|no|on|off|null|~)$/i.test(s)) {
        return 'y-bool';
    }
    if (/^[&*!]/.test(s)) {
        return 'y-anchor';
    }
    return 'y-plain';
}

// A value and its trailing comment (" #" outside quotes starts one).
function valueParts(rest) {
    let q = '';
    for (let i = 0; i < rest.length; i++) {
        const c = rest[i];
        if (q) {
            q = c === q ? '' : q;
        } else if (c === '"' || c === "'") {
            q = c;
        } else if (c === '#' && (i === 0 || /\s/.test(rest[i - 1]))) {
            return [rest.slice(0, i), rest.slice(i)];
        }
    }
    return [rest, ''];
}

function valueSpans(rest) {
    const [v, comment] = valueParts(rest);
    const lead = v.match(/^\s*/)[0];
    const body = v.trim();
    const trail = v.slice(lead.length + body.length);
    return [lead, body ? h('span', { class: valueClass(body) }, body) : null, trail,
        comment ? h('span', { class: 'y-comment' }, comment) : null];
}

// The document as a list of nodes (spans and text) for a <pre>.
export function yamlNodes(text) {
    const out = [];
    const lines = text.split('\n');
    let block = -1; // indentation of the key that opened a block scalar
    lines.forEach((line, i) => {
        const indent = line.match(/^[ \t]*/)[0];
        const nl = i < lines.length - 1 ? '\n' : '';
        if (block >= 0 && (line.trim() === '' || indent.length > block)) {
            out.push(h('span', { class: 'y-str' }, line), nl);
            return;
        }
        block = -1;
        const pre = indent.includes('\t') ? h('span', { class: 'y-tab', title: 'a tab in the indentation (YAML allows spaces only)' }, indent) : indent;
        const rest = line.slice(indent.length);
        let m;
        if (rest === '') {
            out.push(line, nl);
        } else if (rest.startsWith('#')) {
            out.push(pre, h('span', { class: 'y-comment' }, rest), nl);
        } else if (/^(---|\.\.\.)(\s|$)/.test(line)) {
            out.push(h('span', { class: 'y-doc' }, line), nl);
        } else if ((m = KEY_LINE.exec(rest))) {
            const [, , dash, k, val] = m;
            if (/^\s*[|>][-+0-9]*\s*(#.*)?$/.test(val)) {
                block = indent.length + dash.length;
            }
            out.push(pre, dash ? h('span', { class: 'y-dash' }, dash) : null,
                h('span', { class: 'y-key' }, k), ':', ...valueSpans(val), nl);
        } else if ((m = ITEM_LINE.exec(rest))) {
            out.push(pre, h('span', { class: 'y-dash' }, m[2]), ...valueSpans(m[3]), nl);
        } else {
            out.push(pre, ...valueSpans(rest), nl);
        }
    });
    return out.filter((n) => n !== null && n !== '');
}
