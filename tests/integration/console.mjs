// console.mjs PHASE ... - drives the web console (/ui/) in Debian's
// Chromium through playwright-core, for tests/integration/console.test.
//
//   console.mjs single BASE EP       keys (history, YAML), leases, cluster
//                                    (charts, compaction, defrag) on one
//                                    member
//   console.mjs services BASE EP     the services and config pages against
//                                    the registry and config API
//   console.mjs auth BASE EP         login as a read-only user, then root
//                                    (the Users page: a user and a role
//                                    with a prefix permission, who signs in)
//   console.mjs cluster BASE PIDS    3 members: leader shown, SIGKILL it
//                                    (PIDS: JSON {name: pid}, started by
//                                    the .test script), new leader shown
//
// BASE is the member's client URL (http://127.0.0.1:PORT), EP its etcdctl
// endpoint. Prints "ok <what>" or "FAIL <what>" lines (the .test turns them
// into TAP) and "# ..." notes; exits 0 when nothing failed. Screenshots go
// to $SHOTS (1280x800, and one phone-sized). Every wait is bounded
// (playwright's timeouts, stretched by CAIRN_TIMEOUT_SCALE).
import { createRequire } from 'module';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_MODULE);
const SCALE = Number(process.env.CAIRN_TIMEOUT_SCALE || 1);
const SHOTS = process.env.SHOTS;
const ETCDCTL = process.env.ETCDCTL || '/usr/bin/etcdctl';
const [phase, base, arg] = process.argv.slice(2);
let failed = 0;

const ok = (what) => console.log(`ok ${what}`);
const fail = (what, why) => {
    failed++;
    console.log(`FAIL ${what}${why ? ` (${String(why).split('\n')[0]})` : ''}`);
};
const note = (s) => console.log(`# ${s}`);
async function check(what, fn) {
    try {
        const r = await fn();
        if (r === false) {
            fail(what);
        } else {
            ok(what);
        }
    } catch (e) {
        fail(what, e.message);
    }
}

function ctl(...args) {
    return execFileSync(ETCDCTL, [`--endpoints=${arg}`, '--dial-timeout=3s', '--command-timeout=8s', ...args], {
        timeout: 20000 * SCALE, encoding: 'utf8', input: '',
    }).trim();
}

// Keys with prefix p, as etcdctl (3.4: no --count-only) sees them.
const keyCount = (p) => ctl('get', p, '--prefix', '--keys-only').split('\n').filter((l) => l !== '').length;

async function shot(page, name) {
    if (SHOTS) {
        await page.screenshot({ path: path.join(SHOTS, name) });
    }
}

// A fresh browser profile; page errors and console errors are collected.
async function browser() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-console-chrome-'));
    const ctx = await chromium.launchPersistentContext(dir, {
        executablePath: '/usr/bin/chromium',
        headless: true,
        viewport: { width: 1280, height: 800 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    page.setDefaultTimeout(10000 * SCALE);
    const errors = [];
    page.on('console', (m) => {
        if (m.type() === 'error') {
            errors.push(m.text());
        }
    });
    page.on('pageerror', (e) => errors.push('uncaught: ' + e.message));
    const close = async () => {
        await ctx.close();
        fs.rmSync(dir, { recursive: true, force: true });
    };
    return { page, errors, close, ctx };
}

// Every control a person types into has a label (or an aria-label).
async function unlabelled(page) {
    return page.evaluate(() => [...document.querySelectorAll('input, textarea, select')]
        .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.name || el.tagName));
}

const tree = (page, attr, v) => page.locator(`#tree button[data-${attr}="${v}"]`);

async function single(page, errors, ctx) {
    for (const v of ['one', 'two', 'three']) {
        ctl('put', '/app/hist', v);
    }
    ctl('put', '/app/deploy', 'replicas: 3 # three\nimage: "cairn:1"\nports:\n  - 80\nenabled: true\n');
    // every page loads, with no console errors
    const pages = {
        keys: () => page.waitForSelector('#tail-state[data-state=live]'),
        leases: () => page.waitForFunction(() => !/loading/.test(document.getElementById('lease-summary')?.textContent || 'loading')),
        cluster: () => page.waitForFunction(() => (document.getElementById('leader')?.dataset.leader || 'none') !== 'none'),
    };
    for (const [name, ready] of Object.entries(pages)) {
        await check(`${name} page loads without console errors`, async () => {
            errors.length = 0;
            await page.goto(`${base}/ui/#/${name}`);
            await ready();
            await page.waitForTimeout(300); // late errors of the first refresh
            if (errors.length) {
                throw new Error(errors.join(' | '));
            }
        });
    }
    if (failed) {
        fail('the console does not load: the rest of this phase is not run');
        return;
    }
    await check('the cluster page names this member the leader', async () =>
        (await page.textContent('#leader')) === 'default' &&
        (await page.locator('#member-rows tr[data-role=leader]').count()) === 1);
    await shot(page, 'cluster-1.png');

    // the tree, a JSON value, a binary value
    await page.goto(`${base}/ui/#/keys`);
    await page.waitForSelector('#tail-state[data-state=live]');
    await check('the tree shows the seeded folders', async () => {
        await tree(page, 'prefix', '/app/').click();
        await tree(page, 'key', '/app/config.json').waitFor();
        return true;
    });
    await check('a JSON value is shown pretty-printed with its revisions', async () => {
        await tree(page, 'key', '/app/config.json').click();
        await page.waitForSelector('#value.json');
        const v = await page.textContent('#value');
        const ver = await page.textContent('#meta-version');
        return v.includes('\n  "replicas": 3') && ver === '2';
    });
    await shot(page, 'keys.png');
    await check('a key put three times shows its three values in its history, newest first', async () => {
        await tree(page, 'prefix', '/app/').click();
        await tree(page, 'key', '/app/hist').click();
        await page.click('#history-show');
        await page.waitForSelector('#history-state:has-text("Created at revision")');
        const rows = await page.$$eval('#history-rows tr', (rs) => rs.map((r) => `${r.dataset.version}=${r.querySelector('code')?.textContent}`));
        return rows.join(',') === '3=three,2=two,1=one' || (() => { throw new Error(rows.join(',')); })();
    });
    await shot(page, 'keys-history.png');
    await check('a YAML value is shown with its keys, numbers and comments coloured', async () => {
        await tree(page, 'key', '/app/deploy').click();
        await page.waitForSelector('#value.yaml');
        const got = await page.evaluate(() => ['y-key', 'y-num', 'y-comment', 'y-str', 'y-bool', 'y-dash']
            .map((c) => [...document.querySelectorAll('#value .' + c)].map((e) => e.textContent).join('|')).join(' '));
        return got === 'replicas|image|ports|enabled 3|80 # three "cairn:1" true - ' || (() => { throw new Error(got); })();
    });
    await check('a binary value is shown as hex', async () => {
        await tree(page, 'key', '/app/blob').click();
        await page.waitForSelector('#value.hex');
        return (await page.textContent('#value')).includes('00 01 02 ff');
    });

    // put a key in the UI, read it with etcdctl
    await check('a key created in the UI is read back by etcdctl', async () => {
        await tree(page, 'prefix', '/app/').click(); // selects the folder (it stays open)
        await page.click('#new-key');
        await page.fill('#new-key-name', '/app/ui/created');
        await page.fill('#new-key-value', 'from the browser');
        const missing = await unlabelled(page);
        if (missing.length) {
            throw new Error('unlabelled controls: ' + missing.join(','));
        }
        await page.click('#create');
        await page.waitForSelector('#banner.ok');
        const got = ctl('get', '/app/ui/created', '--print-value-only');
        if (got !== 'from the browser') {
            throw new Error(`etcdctl read '${got}'`);
        }
    });
    await check('creating a key that exists is refused, not overwritten', async () => {
        await tree(page, 'prefix', '/app/').click();
        await page.click('#new-key');
        await page.fill('#new-key-name', '/app/name');
        await page.fill('#new-key-value', 'clobber');
        await page.click('#create');
        await page.waitForSelector('#create-msg:has-text("exists already")');
        return ctl('get', '/app/name', '--print-value-only') === 'cairn';
    });

    // a key put by etcdctl appears in the tree, live
    await check('a key put by etcdctl appears in the open folder without a reload', async () => {
        await tree(page, 'prefix', '/app/ui/').click();
        await page.waitForFunction(() => /watching \/app\/ui\//.test(document.getElementById('tail-state').textContent));
        ctl('put', '/app/ui/live', 'from etcdctl');
        await tree(page, 'key', '/app/ui/live').waitFor({ timeout: 5000 * SCALE });
        await page.waitForSelector('#tail li:has-text("/app/ui/live")');
    });
    await check('a new sub-folder written by etcdctl appears too', async () => {
        ctl('put', '/app/ui/deeper/x', '1');
        await tree(page, 'prefix', '/app/ui/deeper/').waitFor({ timeout: 5000 * SCALE });
    });
    await shot(page, 'keys-live.png');

    // edit conflict: etcdctl writes while the editor is open
    await check('an edit conflict is detected and nothing is overwritten', async () => {
        await tree(page, 'key', '/app/ui/created').click();
        await page.waitForSelector('#meta-mod');
        await page.click('#edit-key');
        await page.fill('#editor', 'mine');
        ctl('put', '/app/ui/created', 'theirs');
        await page.click('#save');
        await page.waitForSelector('#edit-msg.conflict');
        const msg = await page.textContent('#edit-msg');
        if (!/Conflict: not saved/.test(msg) || !msg.includes('theirs')) {
            throw new Error('message: ' + msg);
        }
        return ctl('get', '/app/ui/created', '--print-value-only') === 'theirs' &&
            (await page.inputValue('#editor')) === 'mine';
    });
    await shot(page, 'keys-conflict.png');
    await check('after the conflict, "save mine over theirs" saves', async () => {
        await page.click('#overwrite');
        // the save's own banner: an earlier one ("Created ...") may still
        // be up for its 5 s, and waiting for any ok banner then raced the
        // save (make test on 0cf3dc9 read 'theirs')
        await page.waitForSelector('#banner.ok:has-text("Saved /app/ui/created")');
        return ctl('get', '/app/ui/created', '--print-value-only') === 'mine';
    });
    await check('an edit with nobody else writing saves and keeps the version count', async () => {
        await tree(page, 'key', '/app/ui/created').click();
        await page.waitForSelector('#meta-version');
        const before = Number(await page.textContent('#meta-version'));
        await page.click('#edit-key');
        await page.fill('#editor', 'mine again');
        await page.click('#save');
        await page.waitForSelector(`#meta-version:text-is("${before + 1}")`);
        return ctl('get', '/app/ui/created', '--print-value-only') === 'mine again';
    });

    // delete a key; delete a prefix says how many
    await check('delete a key (confirmed)', async () => {
        await tree(page, 'key', '/app/ui/live').click();
        await page.click('#delete-key');
        await page.click('#dialog-ok');
        await page.waitForSelector('#banner.ok');
        await tree(page, 'key', '/app/ui/live').waitFor({ state: 'detached' });
        return ctl('get', '/app/ui/live', '--print-value-only') === '';
    });
    for (let i = 1; i <= 7; i++) {
        ctl('put', `/app/bulk/k${i}`, String(i));
    }
    await check('delete prefix asks about the right count (7 keys)', async () => {
        await tree(page, 'prefix', '/app/').click();
        await page.waitForFunction(() => /watching \/app\//.test(document.getElementById('tail-state').textContent));
        await tree(page, 'prefix', '/app/bulk/').click();
        await page.click('#delete-prefix');
        await page.waitForSelector('#dialog[open]');
        const body = await page.textContent('#dialog-body');
        const okText = await page.textContent('#dialog-ok');
        if (!body.includes('Delete all 7 keys whose names start with /app/bulk/') || okText !== 'Delete 7 keys') {
            throw new Error(`dialog: ${body} / ${okText}`);
        }
    });
    await shot(page, 'keys-delete-prefix.png');
    await check('delete prefix deletes them (etcdctl counts 0, the rest stays)', async () => {
        await page.click('#dialog-ok');
        await page.waitForSelector('#banner.ok:has-text("Deleted 7 keys")');
        return keyCount('/app/bulk/') === 0 &&
            ctl('get', '/app/name', '--print-value-only') === 'cairn';
    });
    await check('cancelling delete prefix deletes nothing', async () => {
        await tree(page, 'prefix', '/app/ui/').click();
        await page.click('#delete-prefix');
        await page.click('#dialog-cancel');
        return keyCount('/app/ui/') === 2;
    });

    // a folder listed before a compaction is listed again when watched
    await check('a folder whose history was compacted away is listed again, then watched', async () => {
        ctl('put', '/app/after-compaction', 'x');
        const rev = JSON.parse(ctl('get', '/app/after-compaction', '-w', 'json')).header.revision;
        ctl('compact', String(rev));
        await tree(page, 'prefix', '/app/').click(); // watched from its (old) listing
        await tree(page, 'key', '/app/after-compaction').waitFor({ timeout: 8000 * SCALE });
        await page.waitForSelector('#tail-state[data-state=live]');
        ctl('put', '/app/after-compaction-2', 'y');
        await tree(page, 'key', '/app/after-compaction-2').waitFor({ timeout: 5000 * SCALE });
    });

    await check('a folder whose last key is deleted by etcdctl leaves the tree', async () => {
        ctl('put', '/app/tmpdir/only', '1');
        await tree(page, 'prefix', '/app/tmpdir/').click(); // opens (loads) it
        await tree(page, 'key', '/app/tmpdir/only').waitFor();
        await tree(page, 'prefix', '/app/').click(); // the parent is watched again
        await page.waitForFunction(() => /watching \/app\/ /.test(document.getElementById('tail-state').textContent));
        ctl('del', '/app/tmpdir/only');
        await tree(page, 'prefix', '/app/tmpdir/').waitFor({ state: 'detached', timeout: 5000 * SCALE });
    });

    // keyboard: the tree moves with the arrow keys
    await check('the tree works from the keyboard (arrows, Enter)', async () => {
        await tree(page, 'prefix', '').focus();
        await page.keyboard.press('Home');
        for (let i = 0; i < 40; i++) {
            const k = await page.evaluate(() => document.activeElement?.dataset.key);
            if (k === '/app/name') {
                break;
            }
            await page.keyboard.press('ArrowDown');
        }
        await page.keyboard.press('Enter');
        await page.waitForSelector('#detail-title:text-is("/app/name")');
    });

    // cluster maintenance and charts
    await check('the cluster page charts requests/s from /metrics after some puts', async () => {
        await page.goto(`${base}/ui/#/cluster`);
        for (let i = 0; i < 10; i++) {
            ctl('put', `/app/chart/k${i}`, String(i));
        }
        await page.waitForFunction(() => Number(document.getElementById('chart-requests')?.dataset.points) >= 2,
            null, { timeout: 12000 * SCALE });
        const pts = await page.$$eval('#chart-requests polyline', (ps) => ps.map((p) => p.getAttribute('points')).join(' '));
        const now = parseFloat(await page.textContent('#chart-now-requests'));
        const w = await page.getAttribute('#chart-watchers', 'data-points');
        if (!(now > 0) || pts.split(' ').length < 2 || Number(w) < 2) {
            throw new Error(`now ${now}, points ${pts}, watcher points ${w}`);
        }
    });
    await check('the request latency chart (cairn_api_request_duration_seconds) has points above 0 ms after puts', async () => {
        for (let i = 0; i < 10; i++) {
            ctl('put', `/app/chart/l${i}`, String(i));
        }
        await page.waitForFunction(() => Number(document.getElementById('chart-latency')?.dataset.points) >= 1 &&
            parseFloat(document.getElementById('chart-now-latency')?.textContent) > 0, null, { timeout: 12000 * SCALE });
        return /^Request latency/.test(await page.getAttribute('#chart-latency', 'aria-label'));
    });
    await check('the watchers chart counts the watch of a Keys page open in another tab', async () => {
        const other = await ctx.newPage();
        try {
            await other.goto(`${base}/ui/#/keys`);
            await other.waitForSelector('#tail-state[data-state=live]');
            await page.waitForFunction(() => parseFloat(document.getElementById('chart-now-watchers')?.textContent) >= 1,
                null, { timeout: 12000 * SCALE });
        } finally {
            await other.close();
        }
    });
    await check('the cluster page has labelled controls and fits a phone-sized viewport', async () => {
        const missing = await unlabelled(page);
        if (missing.length) {
            throw new Error('unlabelled: ' + missing.join(','));
        }
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(200);
        const w = await widthAt(page, 392);
        await page.setViewportSize({ width: 1280, height: 800 });
        if (w.width > 392) {
            throw new Error(`page is ${w.width} px wide: ${w.out.join(' ')}`);
        }
    });
    let beforeRev = '';
    await check('compaction from the UI (physical): etcdctl can no longer read an older revision', async () => {
        ctl('put', '/app/hist2', 'old');
        beforeRev = JSON.parse(ctl('get', '/app/hist2', '-w', 'json')).kvs[0].mod_revision;
        ctl('put', '/app/hist2', 'new');
        const rev = JSON.parse(ctl('get', '/app/hist2', '-w', 'json')).header.revision;
        await page.fill('#compact-rev', String(rev));
        await page.check('#compact-physical');
        await page.click('#compact');
        await page.waitForSelector('#dialog[open]');
        await page.click('#dialog-ok');
        await page.waitForSelector(`#compact-msg[data-done="${rev}"]`);
        let refused = false;
        try {
            ctl('get', '/app/hist2', `--rev=${beforeRev}`);
        } catch (e) {
            refused = /compacted/.test(String(e.stderr));
        }
        return refused && /physically/.test(await page.textContent('#compact-msg'));
    });
    await check('defragmentation from the UI shows done for the member', async () => {
        await page.click('#member-rows tr[data-member=default] td.defrag button');
        await page.waitForSelector('#member-rows tr[data-member=default] .defrag-state[data-state=done]', { timeout: 60000 * SCALE });
    });
    await shot(page, 'cluster-maintenance.png');
    await check('the history of a key stops at the compaction, shown as compacted', async () => {
        const seen = errors.length;
        await page.goto(`${base}/ui/#/keys`);
        await page.waitForSelector('#tail-state[data-state=live]');
        await tree(page, 'prefix', '/app/').click();
        await tree(page, 'key', '/app/hist2').click();
        await page.click('#history-show');
        await page.waitForSelector('#history-rows tr[data-compacted=true]');
        const rows = await page.$$eval('#history-rows tr', (rs) => rs.map((r) => r.dataset.compacted ? 'compacted' : r.querySelector('code').textContent));
        // the read at the compacted revision is refused with 400, which
        // Chromium logs as a console error: only those are expected here
        const mine = errors.splice(seen);
        const other = mine.filter((e) => !/status of 400 \(Bad Request\)/.test(e));
        if (other.length || mine.length === 0) {
            throw new Error('console: ' + (other.join(' | ') || 'no 400 for the compacted read'));
        }
        return rows.join(',') === 'new,compacted' || (() => { throw new Error(rows.join(',')); })();
    });

    // leases: grant, see the key and the countdown, revoke
    let hexId = '';
    await check('a lease granted in the UI is listed by etcdctl', async () => {
        await page.goto(`${base}/ui/#/leases`);
        await page.fill('#grant-ttl', '300');
        await page.click('#grant');
        await page.waitForSelector('#grant-msg:has-text("Granted lease")');
        hexId = (await page.textContent('#grant-msg')).match(/Granted lease ([0-9a-f]+)/)[1];
        return ctl('lease', 'list').includes(hexId);
    });
    await check('the lease shows its key and a TTL counting down', async () => {
        ctl('put', '--lease=' + hexId, '/app/session', 'leased');
        const row = page.locator(`#lease-rows tr[data-lease="${hexId}"]`);
        await row.locator('li:has-text("/app/session")').waitFor({ timeout: 8000 * SCALE });
        const t1 = await row.locator('td.ttl').textContent();
        await page.waitForTimeout(2100);
        const t2 = await row.locator('td.ttl').textContent();
        if (t1 === t2) {
            throw new Error(`still ${t1}`);
        }
    });
    await shot(page, 'leases.png');
    await check('revoking the lease in the UI deletes it and its key', async () => {
        await page.click(`#lease-rows tr[data-lease="${hexId}"] button`);
        await page.waitForSelector('#dialog-body:has-text("/app/session")');
        await page.click('#dialog-ok');
        await page.waitForSelector(`#lease-rows tr[data-lease="${hexId}"]`, { state: 'detached' });
        return !ctl('lease', 'list').includes(hexId) && ctl('get', '/app/session', '--print-value-only') === '';
    });

    // a phone-sized screen: one column, nothing wider than the screen
    await check('the keys page fits a phone-sized viewport (390x844)', async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await page.goto(`${base}/ui/#/keys`);
        await page.waitForSelector('#tail-state[data-state=live]');
        await tree(page, 'prefix', '/app/').click();
        await tree(page, 'key', '/app/config.json').click();
        await page.waitForSelector('#value.json');
        if (SHOTS) {
            await page.screenshot({ path: path.join(SHOTS, 'phone-keys.png'), fullPage: true });
        }
        const w = await page.evaluate(() => document.documentElement.scrollWidth);
        await page.setViewportSize({ width: 1280, height: 800 });
        if (w > 392) {
            throw new Error(`page is ${w} px wide`);
        }
    });
    await check('no console errors in the whole session', async () => {
        if (errors.length) {
            throw new Error(errors.join(' | '));
        }
    });
}

// The registry and config API of the member under test, as a script
// would call it (Node's fetch).
async function api(method, p, body, token) {
    const headers = body === undefined ? {} : { 'Content-Type': 'application/json' };
    if (token) {
        headers.Authorization = token;
    }
    const r = await fetch(`${base}/api/v1${p}`, {
        method, body: body === undefined ? undefined : JSON.stringify(body), headers,
        signal: AbortSignal.timeout(10000 * SCALE),
    });
    const t = await r.text();
    let j = null;
    try {
        j = JSON.parse(t);
    } catch {
        j = t;
    }
    if (!r.ok) {
        throw new Error(`${method} ${p}: ${r.status} ${t}`);
    }
    return j;
}

// An HTTP health endpoint on a loopback port: 200 on /health until
// close() (after which the port refuses connections).
async function healthServer() {
    const http = await import('node:http');
    const srv = http.createServer((req, res) => {
        res.writeHead(req.url === '/health' ? 200 : 404);
        res.end('ok');
    });
    await new Promise((res) => srv.listen(0, '127.0.0.1', res));
    return {
        port: srv.address().port,
        close: () => new Promise((res) => {
            srv.close(res);
            srv.closeAllConnections();
        }),
    };
}

// The page's width, and the first elements that stick out past w.
const widthAt = (page, w) => page.evaluate((max) => ({
    width: document.documentElement.scrollWidth,
    out: [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > max && !e.closest('.scroll table'))
        .slice(0, 3).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className}`),
}), w);

const row = (page, id) => page.locator(`#instance-rows tr[data-instance="${id}"]`);
const svcCount = (page, svc) => page.getAttribute(`#svc-list button[data-svc="${svc}"] .count`, 'aria-label');

// The Services page: instances registered, gone critical, deregistered
// and expired through the API appear and go live (the page is never
// reloaded: a mark set on window at the start must still be there); drain
// and restore from the UI are seen through the API.
async function services(page, errors) {
    await api('PUT', '/registry/shop/cart', { protect_threshold: 0.6 });
    await api('PUT', '/registry/shop/cart/i1', { addr: '127.0.0.1:9001', ttl: 300, zone: 'z1', version: 'v1.2', weight: 70 });
    const reqs = [];
    page.on('request', (r) => {
        if (r.url().includes('/api/v1/')) {
            reqs.push(r.method() + ' ' + r.url().replace(/^.*\/api\/v1/, ''));
        }
    });
    await check('services page loads without console errors', async () => {
        errors.length = 0;
        await page.goto(`${base}/ui/#/services/shop/cart`);
        await page.waitForSelector('#svc-stream[data-state=live]');
        await row(page, 'i1').waitFor();
        await page.evaluate(() => { window.cairnNoReload = 1; });
        if (errors.length) {
            throw new Error(errors.join(' | '));
        }
    });
    if (failed) {
        fail('the services page does not load: the rest of this phase is not run');
        return;
    }
    await check('an instance shows address, zone, version, weight, status and health', async () => {
        const t = await row(page, 'i1').textContent();
        for (const want of ['127.0.0.1:9001', 'z1', 'v1.2', '70', 'up', 'passing']) {
            if (!t.includes(want)) {
                throw new Error(`row lacks ${want}: ${t}`);
            }
        }
        return (await svcCount(page, 'cart')) === '1 of 1 healthy';
    });
    const hs = await healthServer();
    await check('an instance registered through the API appears live, and passes its HTTP check', async () => {
        await api('PUT', '/registry/shop/cart/i2', {
            addr: `127.0.0.1:${hs.port}`, ttl: 300, zone: 'z2',
            checks: [{ type: 'http', url: `http://127.0.0.1:${hs.port}/health`, interval: 1, timeout: 1, fail_after: 1 }],
        });
        await row(page, 'i2').waitFor({ timeout: 5000 * SCALE });
        await page.waitForSelector('#instance-rows tr[data-instance="i2"][data-health="passing"]', { timeout: 10000 * SCALE });
        return (await svcCount(page, 'cart')) === '2 of 2 healthy';
    });
    await check('its health endpoint stops: it turns critical with the check\'s output, 1/2, protection active', async () => {
        await hs.close();
        await page.waitForSelector('#instance-rows tr[data-instance="i2"][data-health="critical"]', { timeout: 10000 * SCALE });
        const t = await row(page, 'i2').locator('td.check').textContent();
        if (!/critical.*http/.test(t)) {
            throw new Error('check cell: ' + t);
        }
        await page.waitForSelector('#svc-protection[data-active=true]');
        return (await svcCount(page, 'cart')) === '1 of 2 healthy';
    });
    await shot(page, 'services.png');
    await check('an instance deregistered through the API goes live', async () => {
        await api('DELETE', '/registry/shop/cart/i2');
        await row(page, 'i2').waitFor({ state: 'detached', timeout: 5000 * SCALE });
        return (await svcCount(page, 'cart')) === '1 of 1 healthy';
    });
    await check('an instance whose session expires goes live', async () => {
        const s = await api('POST', '/sessions', { ttl: 1 });
        await api('PUT', '/registry/shop/cart/i3', { addr: '127.0.0.1:9003', session: s.session });
        await row(page, 'i3').waitFor({ timeout: 5000 * SCALE });
        await row(page, 'i3').waitFor({ state: 'detached', timeout: 10000 * SCALE });
    });
    await check('a new service in the namespace appears in the list live', async () => {
        await api('PUT', '/registry/shop/pay/p1', { addr: '127.0.0.1:9100', ttl: 300 });
        await page.waitForSelector('#svc-list button[data-svc="pay"]', { timeout: 5000 * SCALE });
    });
    await check('drain from the UI: the API reads status draining', async () => {
        await row(page, 'i1').locator('button[data-action=drain]').click();
        await page.waitForSelector('#instance-rows tr[data-instance="i1"][data-status=draining]');
        const r = await api('GET', '/registry/shop/cart/i1');
        return r.instance.status === 'draining' && (await svcCount(page, 'cart')) === '0 of 1 healthy';
    });
    await shot(page, 'services-draining.png');
    await check('restore from the keyboard (Enter): the API reads status up, the focus stays on the row', async () => {
        await row(page, 'i1').locator('button[data-action=restore]').focus();
        await page.keyboard.press('Enter');
        await page.waitForSelector('#instance-rows tr[data-instance="i1"][data-status=up]');
        const focused = await page.evaluate(() => document.activeElement?.closest('tr')?.dataset.instance);
        if (focused !== 'i1') {
            throw new Error(`focus on ${focused}`);
        }
        return (await api('GET', '/registry/shop/cart/i1')).instance.status === 'up';
    });
    await check('a drain made by a script shows live', async () => {
        await api('PATCH', '/registry/shop/cart/i1', { status: 'draining' });
        await page.waitForSelector('#instance-rows tr[data-instance="i1"][data-status=draining]', { timeout: 5000 * SCALE });
        await api('PATCH', '/registry/shop/cart/i1', { status: 'up' });
        await page.waitForSelector('#instance-rows tr[data-instance="i1"][data-status=up]', { timeout: 5000 * SCALE });
    });
    await check('the services page was never reloaded and has labelled controls', async () =>
        (await page.evaluate(() => window.cairnNoReload)) === 1 && (await unlabelled(page)).length === 0);
    await check('every change came through one discovery stream, not a poll', async () => {
        const streams = reqs.filter((r) => r.startsWith('GET /watch/registry/shop'));
        const reads = reqs.filter((r) => r.startsWith('GET /registry'));
        // the page's reads: the namespaces, and cart's settings once
        if (streams.length !== 1 || reads.length > 2) {
            throw new Error(reqs.join(', '));
        }
    });
    await check('the services page fits a phone-sized viewport (390x844)', async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(200);
        if (SHOTS) {
            await page.screenshot({ path: path.join(SHOTS, 'phone-services.png'), fullPage: true });
        }
        const w = await widthAt(page, 392);
        await page.setViewportSize({ width: 1280, height: 800 });
        if (w.width > 392) {
            throw new Error(`page is ${w.width} px wide: ${w.out.join(' ')}`);
        }
    });
    await check('no console errors on the services page', async () => {
        if (errors.length) {
            throw new Error(errors.join(' | '));
        }
    });
}

// A config subscriber in its own browser page: a WebSocket on
// /api/v1/watch/config/... that acks every release it is sent, and keeps
// the versions it got in window.got.
async function subscriber(ctx, clientId, labels) {
    const p = await ctx.newPage();
    await p.goto(`${base}/version`);
    const url = `${base.replace(/^http/, 'ws')}/api/v1/watch/config/prod/shop/app.yaml?client_id=${clientId}&labels=${labels}`;
    await p.evaluate((u) => new Promise((res, rej) => {
        window.got = [];
        const ws = new WebSocket(u);
        ws.onmessage = (m) => {
            const j = JSON.parse(m.data);
            const rels = j.type === 'snapshot' ? j.configs || [] : j.type === 'put' ? [j] : [];
            for (const r of rels) {
                window.got.push(r.version);
                ws.send(JSON.stringify({ ack: { name: r.name, version: r.version } }));
            }
        };
        ws.onopen = () => res();
        ws.onerror = () => rej(new Error('websocket error'));
        window.ws = ws;
    }), url);
    return p;
}

const acked = (page, client) => page.getAttribute(`#subscriber-rows tr[data-client="${client}"]`, 'data-acked');

async function waitAcked(page, client, v) {
    await page.waitForSelector(`#subscriber-rows tr[data-client="${client}"][data-acked="${v}"]`, { timeout: 10000 * SCALE });
}

// The Config page: publish from the UI; an invalid YAML refused with its
// line marked and nothing written; a fix published; a subscriber and its
// acked version; the diff of two versions; rollback; a gray release
// started, seen by the matching subscriber, promoted; the audit records.
async function config(page, errors, ctx) {
    const before = failed;
    await check('config page loads without console errors', async () => {
        errors.length = 0;
        await page.goto(`${base}/ui/#/config`);
        await page.waitForSelector('#cfg-ns');
        await page.waitForTimeout(300);
        if (errors.length) {
            throw new Error(errors.join(' | '));
        }
    });
    if (failed > before) {
        fail('the config page does not load: the rest of this phase is not run');
        return;
    }
    await check('a config published in the UI is read back through the API', async () => {
        await page.fill('#cfg-ns', 'prod');
        await page.click('#cfg-ns-open');
        await page.fill('#new-cfg-app', 'shop');
        await page.fill('#new-cfg-name', 'app.yaml');
        await page.click('#new-cfg');
        await page.waitForSelector('#cfg-editor');
        if ((await page.inputValue('#cfg-format')) !== 'yaml') {
            throw new Error('format not yaml');
        }
        await page.fill('#cfg-editor', 'db:\n  pool: 10\n');
        await page.fill('#cfg-message', 'first');
        await page.click('#publish');
        await page.waitForSelector('#publish-msg.ok:has-text("Published v1")');
        const r = await api('GET', '/config/prod/shop/app.yaml');
        return r.version === 1 && r.content === 'db:\n  pool: 10\n' && r.message === 'first';
    });
    await check('Check: an invalid YAML gets its line marked without a publish, a valid one is said valid', async () => {
        await page.fill('#cfg-editor', 'db:\n  pool: [1\n');
        await page.click('#check');
        await page.waitForSelector('#publish-msg.error');
        const msg = await page.textContent('#publish-msg');
        const marked = await page.textContent('#cfg-editor-gutter .err');
        await page.fill('#cfg-editor', 'db:\n  pool: 11\n');
        await page.click('#check');
        await page.waitForSelector('#publish-msg.ok');
        const okMsg = await page.textContent('#publish-msg');
        const unmarked = await page.locator('#cfg-editor-gutter .err').count();
        if (!/^Not valid: invalid yaml at line 3/.test(msg) || marked !== '3' || !/^Valid yaml \(15 bytes\)/.test(okMsg) || unmarked !== 0) {
            throw new Error(`"${msg}" marked "${marked}", then "${okMsg}" with ${unmarked} marks`);
        }
        return (await api('GET', '/config/prod/shop/app.yaml')).version === 1;
    });
    await check('an invalid YAML is refused with its line marked, and nothing is written', async () => {
        await page.fill('#cfg-editor', 'db:\n  pool: 10\nname: a\nname: b\n');
        await page.click('#publish');
        await page.waitForSelector('#publish-msg.error');
        const msg = await page.textContent('#publish-msg');
        const marked = await page.textContent('#cfg-editor-gutter .err');
        const note = await page.locator('#cfg-editor-lineerr');
        if (!/line 4, column 1/.test(msg) || !/duplicate key/.test(msg) || marked !== '4' ||
            !(await note.isVisible()) || !/^line 4, column 1: duplicate key/.test(await note.textContent())) {
            throw new Error(`message "${msg}", line marked "${marked}", note "${await note.textContent()}"`);
        }
        // the note sits beside line 4 of the editor
        const g = await page.locator('#cfg-editor-gutter .err').boundingBox();
        const nb = await note.boundingBox();
        if (Math.abs(g.y - nb.y) > 4) {
            throw new Error(`note at y=${nb.y}, line 4 at y=${g.y}`);
        }
        return (await api('GET', '/config/prod/shop/app.yaml')).version === 1;
    });
    await shot(page, 'config-invalid.png');
    await check('the fixed document publishes (v2)', async () => {
        await page.fill('#cfg-editor', 'db:\n  pool: 20\nname: b\n');
        await page.fill('#cfg-message', 'more connections');
        await page.click('#publish');
        await page.waitForSelector('#publish-msg.ok:has-text("Published v2")');
        return (await page.locator('#cfg-gutter .err, #cfg-editor-gutter .err').count()) === 0 &&
            (await api('GET', '/config/prod/shop/app.yaml')).version === 2;
    });
    const sub = await subscriber(ctx, 'pod-1', 'zone=z1');
    await check('a subscriber is shown with the version it acked (v2)', async () => {
        await waitAcked(page, 'pod-1', '2');
        return (await page.textContent('#subscriber-rows tr[data-client="pod-1"]')).includes('zone=z1');
    });
    await check('the diff between v1 and v2 shows the changed lines', async () => {
        await page.check('#versions tr[data-version="1"] input[name=diff-from]');
        await page.check('#versions tr[data-version="2"] input[name=diff-to]');
        await page.click('#diff-show');
        await page.waitForSelector('#diff:not([hidden])');
        const d = await page.textContent('#diff');
        return d.includes('-  pool: 10') && d.includes('+  pool: 20') && d.includes('+name: b') &&
            (await page.locator('#diff .add').count()) === 2;
    });
    await shot(page, 'config-diff.png');
    await check('rollback to v1 from the UI: v3 has v1\'s content, the subscriber acks v3', async () => {
        await page.click('#versions button[data-rollback="1"]');
        await page.click('#dialog-ok');
        await page.waitForSelector('#cfg-version:text-is("3")');
        const r = await api('GET', '/config/prod/shop/app.yaml');
        if (r.version !== 3 || r.source !== 'rollback' || r.content !== 'db:\n  pool: 10\n') {
            throw new Error(JSON.stringify(r));
        }
        await waitAcked(page, 'pod-1', '3');
        return (await sub.evaluate(() => window.got)).includes(3);
    });
    await page.locator('#history-title').scrollIntoViewIfNeeded();
    await page.evaluate(() => document.getElementById('history-title').scrollIntoView());
    await shot(page, 'config-history.png');
    await check('a gray release for zone=z1 started from the UI reaches that subscriber only', async () => {
        await page.selectOption('#gray-kind', 'labels');
        await page.fill('#gray-labels', 'zone=z1');
        await page.fill('#gray-content', 'db:\n  pool: 50\n');
        await page.fill('#gray-message', 'canary');
        await page.click('#gray-start');
        await page.waitForSelector('#gray[data-open=true]');
        const g = await api('GET', '/config/prod/shop/app.yaml/gray');
        const z2 = await api('GET', '/config/prod/shop/app.yaml?labels=zone=z2');
        if (g.version !== 4 || g.rule.labels.zone !== 'z1' || z2.version !== 3) {
            throw new Error(`gray ${JSON.stringify(g.rule)} v${g.version}, z2 gets v${z2.version}`);
        }
        await waitAcked(page, 'pod-1', '4');
        return (await page.isDisabled('#publish'));
    });
    await shot(page, 'config-gray.png');
    await check('promoting the gray release makes v4 the release for everyone', async () => {
        await page.click('#gray-promote');
        await page.waitForSelector('#gray[data-open=false]');
        const r = await api('GET', '/config/prod/shop/app.yaml?labels=zone=z2');
        return r.version === 4 && r.content === 'db:\n  pool: 50\n' && !r.gray &&
            (await page.textContent('#cfg-version')) === '4';
    });
    await check('a second gray release can be abandoned', async () => {
        await page.fill('#gray-labels', 'zone=z9');
        await page.click('#gray-start');
        await page.waitForSelector('#gray[data-open=true]');
        await page.click('#gray-abandon');
        await page.click('#dialog-ok');
        await page.waitForSelector('#gray[data-open=false]');
        const v = await api('GET', '/config/prod/shop/app.yaml/versions');
        return v.gray === null && v.version === 4;
    });
    await check('the audit records show publish, rollback and the gray release', async () => {
        await page.waitForSelector('#audit-rows tr[data-action="config.gray.abandon"]');
        const acts = await page.$$eval('#audit-rows tr', (rs) => rs.map((r) => r.dataset.action));
        const want = ['config.gray.abandon', 'config.gray.put', 'config.gray.promote', 'config.gray.put', 'config.rollback', 'config.publish', 'config.publish'];
        return JSON.stringify(acts) === JSON.stringify(want) || (() => { throw new Error(acts.join(',')); })();
    });
    await shot(page, 'config.png');
    await check('the config page has labelled controls and fits a phone-sized viewport', async () => {
        const missing = await unlabelled(page);
        if (missing.length) {
            throw new Error('unlabelled: ' + missing.join(','));
        }
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(200);
        if (SHOTS) {
            await page.screenshot({ path: path.join(SHOTS, 'phone-config.png'), fullPage: true });
        }
        const w = await widthAt(page, 392);
        await page.setViewportSize({ width: 1280, height: 800 });
        if (w.width > 392) {
            throw new Error(`page is ${w.width} px wide: ${w.out.join(' ')}`);
        }
    });
    await check('no console errors on the config page (an invalid document is a 200 verdict of .../validate, not a failed publish)', async () => {
        const bad = errors;
        if (bad.length) {
            throw new Error(bad.join(' | '));
        }
    });
    await sub.close();
}

async function login(page, user, pass) {
    await page.goto(`${base}/ui/#/keys`);
    await page.waitForSelector('#login-title');
    await page.fill('input[name=user]', user);
    await page.fill('input[name=password]', pass);
    await page.click('button[type=submit]');
    await page.waitForSelector('#who-user');
}

async function auth(page) {
    await check('with auth on, the console asks for a login', async () => {
        await page.goto(`${base}/ui/#/keys`);
        await page.waitForSelector('#login-title');
        return (await unlabelled(page)).length === 0;
    });
    if (failed) {
        return;
    }
    await check('a wrong password is refused with the server\'s reason', async () => {
        await page.fill('input[name=user]', 'ro');
        await page.fill('input[name=password]', 'wrong');
        await page.click('button[type=submit]');
        await page.waitForSelector('#login-error:has-text("Sign-in failed")');
    });
    await shot(page, 'login.png');
    await check('the read-only user signs in and is shown', async () => {
        await login(page, 'ro', 'ropw');
        return (await page.textContent('#who-user')) === 'ro';
    });
    await check('read-only user: New key and Delete prefix are disabled, with the reason', async () => {
        await page.waitForSelector('#write-reason:not([hidden])');
        const reason = await page.textContent('#write-reason');
        if (!/permission denied/.test(reason)) {
            throw new Error('reason: ' + reason);
        }
        return (await page.isDisabled('#new-key')) && (await page.isDisabled('#delete-prefix'));
    });
    await check('read-only user: the value reads, Edit and Delete are disabled', async () => {
        await tree(page, 'prefix', '/app/').click();
        await tree(page, 'key', '/app/name').click();
        await page.waitForSelector('#write-reason:not([hidden])');
        return (await page.textContent('#value')) === 'cairn' &&
            (await page.isDisabled('#edit-key')) && (await page.isDisabled('#delete-key'));
    });
    await shot(page, 'keys-readonly.png');
    await check('read-only user: services stream live with the token, Drain disabled with the reason', async () => {
        await page.goto(`${base}/ui/#/services/shop/cart`);
        await page.waitForSelector('#svc-stream[data-state=live]');
        await page.waitForSelector('#write-reason:not([hidden])');
        const reason = await page.textContent('#write-reason');
        const btn = page.locator('#instance-rows tr[data-instance="i1"] button[data-action]');
        if (!/permission denied/.test(reason) || !/user ro/.test(reason)) {
            throw new Error('reason: ' + reason);
        }
        return (await btn.isDisabled()) && /permission denied/.test(await btn.getAttribute('title'));
    });
    await shot(page, 'services-readonly.png');
    await check('read-only user: the config reads, Publish, Roll back and Start gray release are disabled with the reason', async () => {
        await page.goto(`${base}/ui/#/config/prod/shop/app.yaml`);
        await page.waitForSelector('#write-reason:not([hidden])');
        const reason = await page.textContent('#write-reason');
        if (!/permission denied/.test(reason)) {
            throw new Error('reason: ' + reason);
        }
        await page.waitForSelector('#audit-rows tr[data-action="config.publish"]');
        return (await page.inputValue('#cfg-editor')) === 'db:\n  pool: 50\n' &&
            (await page.isDisabled('#publish')) && (await page.isDisabled('#gray-start')) &&
            (await page.isDisabled('#versions button[data-rollback="1"]'));
    });
    await check('read-only user: the Users page shows why it is closed, every control disabled', async () => {
        await page.goto(`${base}/ui/#/users`);
        await page.waitForSelector('#write-reason:not([hidden])');
        const reason = await page.textContent('#write-reason');
        if (!/Only root/.test(reason) || !/permission denied/.test(reason)) {
            throw new Error('reason: ' + reason);
        }
        return (await page.isDisabled('#user-add')) && (await page.isDisabled('#perm-grant')) &&
            (await page.locator('#user-rows tr').count()) === 0;
    });
    await check('read-only user: Defragment is disabled with the reason, Compact is not (any user may compact)', async () => {
        await page.goto(`${base}/ui/#/cluster`);
        await page.waitForSelector('#defrag-reason:not([hidden])');
        await page.waitForSelector('#member-rows td.defrag button[disabled]');
        const reason = await page.textContent('#defrag-reason');
        if (!/root role/.test(reason) || !/permission denied/.test(reason)) {
            throw new Error('reason: ' + reason);
        }
        return (await page.isDisabled('#defrag-all')) && !(await page.isDisabled('#compact'));
    });
    await page.goto(`${base}/ui/#/users`);
    await page.waitForSelector('#write-reason:not([hidden])');
    await check('the Users page has labelled controls and fits a phone-sized viewport', async () => {
        const missing = await unlabelled(page);
        if (missing.length) {
            throw new Error('unlabelled: ' + missing.join(','));
        }
        await page.setViewportSize({ width: 390, height: 844 });
        await page.waitForTimeout(200);
        const w = await widthAt(page, 392);
        await page.setViewportSize({ width: 1280, height: 800 });
        if (w.width > 392) {
            throw new Error(`page is ${w.width} px wide: ${w.out.join(' ')}`);
        }
    });
    await check('a user who may use only /app/ browses from that prefix and may write there', async () => {
        await page.click('#who button');
        await login(page, 'app', 'apppw');
        await page.waitForSelector('#banner.error:has-text("permission denied")');
        await page.fill('#root-prefix', '/app/');
        await page.click('#root-open');
        await tree(page, 'key', '/app/name').waitFor();
        await page.waitForSelector('#tail-state[data-state=live]');
        await page.waitForSelector('#new-key:not([disabled])');
        return !(await page.isVisible('#write-reason'));
    });
    await check('root signs in after sign-out and may write', async () => {
        await page.click('#who button');
        await login(page, 'root', 'rootpw');
        await tree(page, 'prefix', '/app/').click();
        await tree(page, 'key', '/app/name').click();
        await page.waitForSelector('#edit-key:not([disabled])');
        return (await page.textContent('#who-user')) === 'root' && !(await page.isVisible('#write-reason'));
    });
    await check('root adds a user and a role with readwrite on the prefix /team/, and grants it', async () => {
        await page.goto(`${base}/ui/#/users`);
        await page.waitForSelector('#user-rows tr[data-user=root]');
        await page.fill('#user-add-name', 'carol');
        await page.fill('#user-add-password', 'first');
        await page.click('#user-add');
        await page.waitForSelector('#user-rows tr[data-user=carol]');
        await page.fill('#role-add-name', 'team');
        await page.click('#role-add');
        await page.waitForSelector('#role-rows tr[data-role=team]');
        await page.selectOption('#perm-role', 'team');
        await page.selectOption('#perm-type', 'READWRITE');
        await page.fill('#perm-key', '/team/');
        await page.selectOption('#perm-kind', 'prefix');
        await page.click('#perm-grant');
        await page.waitForSelector('#role-rows tr[data-role=team] li[data-key="/team/"][data-kind=prefix][data-type=READWRITE]');
        await page.selectOption('#grant-user', 'carol');
        await page.selectOption('#grant-role', 'team');
        await page.click('#user-grant');
        await page.waitForSelector('#user-rows tr[data-user=carol] li[data-role=team]');
        await page.selectOption('#pw-user', 'carol');
        await page.fill('#pw-new', 'carolpw');
        await page.click('#pw-change');
        await page.waitForSelector('#banner.ok:has-text("Changed the password of carol")');
        const perms = ctl('--user=root:rootpw', 'role', 'get', 'team');
        const user = ctl('--user=root:rootpw', 'user', 'get', 'carol');
        return /\/team\//.test(perms) && /prefix/.test(perms) && /team/.test(user);
    });
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'users.png');
    await check('a role\'s permission can be revoked and an unused role deleted from the UI', async () => {
        await page.fill('#role-add-name', 'scratch');
        await page.click('#role-add');
        await page.selectOption('#perm-role', 'scratch');
        await page.fill('#perm-key', '/x');
        await page.selectOption('#perm-kind', 'key');
        await page.selectOption('#perm-type', 'READ');
        await page.click('#perm-grant');
        await page.click('#role-rows tr[data-role=scratch] li[data-key="/x"] button');
        await page.click('#dialog-ok');
        await page.waitForSelector('#role-rows tr[data-role=scratch] li', { state: 'detached' });
        await page.click('#role-rows tr[data-role=scratch] button.danger');
        await page.click('#dialog-ok');
        await page.waitForSelector('#role-rows tr[data-role=scratch]', { state: 'detached' });
        return !ctl('--user=root:rootpw', 'role', 'list').split('\n').includes('scratch');
    });
    await check('the new user signs in with the changed password and may write under /team/ only', async () => {
        await page.click('#who button');
        await login(page, 'carol', 'carolpw');
        await page.fill('#root-prefix', '/team/');
        await page.click('#root-open');
        await page.waitForSelector('#new-key:not([disabled])');
        await page.click('#new-key');
        await page.fill('#new-key-name', '/team/made-by-carol');
        await page.fill('#new-key-value', 'hi');
        await page.click('#create');
        await page.waitForSelector('#banner.ok');
        let outside = '';
        try {
            ctl('--user=carol:carolpw', 'put', '/app/not-carols', 'x');
            outside = 'written';
        } catch (e) {
            outside = String(e.stderr);
        }
        return ctl('--user=root:rootpw', 'get', '/team/made-by-carol', '--print-value-only') === 'hi' &&
            /permission denied/.test(outside) || (() => { throw new Error('outside /team/: ' + outside); })();
    });
    await page.click('#who button');
    await login(page, 'root', 'rootpw');
    await check('root defragments the member that served the page (auth on)', async () => {
        await page.goto(`${base}/ui/#/cluster`);
        await page.click('#defrag-all');
        // Done or failed, then say which: it once timed out in 20 s under
        // make test's load with no word of why (the page allows 120 s).
        await page.waitForSelector('#member-rows .defrag-state:is([data-state=done],[data-state=failed])', { timeout: 60000 * SCALE });
        const st = await page.$eval('#member-rows .defrag-state', (e) => `${e.dataset.state}: ${e.textContent}`);
        if (!st.startsWith('done')) {
            throw new Error(`the defragmentation ended ${st}`);
        }
        return !(await page.isVisible('#defrag-reason'));
    });
    await check('root may drain and publish (the buttons are enabled)', async () => {
        await page.goto(`${base}/ui/#/services/shop/cart`);
        await page.waitForSelector('#instance-rows tr[data-instance="i1"] button[data-action]:not([disabled])');
        await page.goto(`${base}/ui/#/config/prod/shop/app.yaml`);
        await page.waitForSelector('#publish:not([disabled])');
        return !(await page.isVisible('#write-reason'));
    });
    await check('root, with a gray release open: Promote enabled, Publish and Roll back still disabled', async () => {
        const t = await fetch(`${base}/v3/auth/authenticate`, { method: 'POST', body: JSON.stringify({ name: 'root', password: 'rootpw' }) });
        const token = (await t.json()).token;
        await api('PUT', '/config/prod/shop/app.yaml/gray', { content: 'db:\n  pool: 60\n', format: 'yaml', rule: { percentage: 5 } }, token);
        await page.reload();
        await page.waitForSelector('#gray-promote:not([disabled])');
        const blocked = (await page.isDisabled('#publish')) && (await page.isDisabled('#versions button[data-rollback="1"]'));
        await api('DELETE', '/config/prod/shop/app.yaml/gray', undefined, token);
        return blocked;
    });
}

async function cluster(page, errors) {
    const pids = JSON.parse(arg);
    let leader = '';
    await check('3 members: the cluster page shows the leader and 2 followers', async () => {
        await page.goto(`${base}/ui/#/cluster`);
        await page.waitForFunction(() => document.querySelectorAll('#member-rows tr[data-role=leader]').length === 1 &&
            document.querySelectorAll('#member-rows tr[data-role=follower]').length === 2);
        leader = await page.getAttribute('#member-rows tr[data-role=leader]', 'data-member');
        return (await page.textContent('#leader')) === leader && pids[leader] !== undefined;
    });
    await check('3 members: each row shows its Raft log last index (from that member\'s /metrics), at least its applied index', async () => {
        await page.waitForFunction(() => {
            const rows = [...document.querySelectorAll('#member-rows tr')];
            return rows.length === 3 && rows.every((r) => /^[0-9]+$/.test(r.querySelector('.last-index')?.textContent || ''));
        }, null, { timeout: 10000 * SCALE });
        const rows = await page.$$eval('#member-rows tr', (rs) => rs.map((r) => {
            const tds = [...r.querySelectorAll('td')].map((t) => t.textContent);
            return { last: Number(r.querySelector('.last-index').textContent), applied: Number(tds[4]) };
        }));
        return rows.every((r) => r.last >= r.applied && r.applied > 0) || (() => { throw new Error(JSON.stringify(rows)); })();
    });
    await check('3 members: "Defragment every member" shows done on each, one at a time', async () => {
        await page.click('#defrag-all');
        await page.waitForSelector('#defrag-msg:has-text("3 of 3 member(s) defragmented")', { timeout: 30000 * SCALE });
        const st = await page.$$eval('#member-rows .defrag-state', (es) => es.map((e) => e.dataset.state));
        return st.join(',') === 'done,done,done' || (() => { throw new Error(st.join(',')); })();
    });
    await page.waitForFunction(() => Number(document.getElementById('chart-requests')?.dataset.points) >= 1,
        null, { timeout: 10000 * SCALE }).catch(() => {});
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'cluster.png');
    if (!leader) {
        return;
    }
    note(`leader ${leader} (pid ${pids[leader]}) gets SIGKILL`);
    const t0 = Date.now();
    process.kill(pids[leader], 'SIGKILL');
    await check('after SIGKILL of the leader the page shows the new leader', async () => {
        await page.waitForFunction((old) => {
            const l = document.getElementById('leader')?.dataset.leader;
            return l && l !== 'none' && l !== old &&
                document.querySelector(`#member-rows tr[data-member="${old}"]`)?.dataset.role === 'unreachable';
        }, leader, { timeout: 15000 * SCALE });
        const now = await page.textContent('#leader');
        note(`new leader ${now} shown ${Date.now() - t0} ms after the kill`);
        return (await page.textContent('#leader-events')).includes(`leader changed from ${leader}`) ||
            (await page.textContent('#leader-events')).includes(`to ${now}`);
    });
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'cluster-new-leader.png');
    await check('no uncaught errors on the cluster page (refused connections to the dead member aside)', async () => {
        const bad = errors.filter((e) => e.startsWith('uncaught'));
        if (bad.length) {
            throw new Error(bad.join(' | '));
        }
    });
}

const b = await browser();
try {
    if (phase === 'single') {
        await single(b.page, b.errors, b.ctx);
    } else if (phase === 'services') {
        await services(b.page, b.errors);
        await config(b.page, b.errors, b.ctx);
    } else if (phase === 'auth') {
        await auth(b.page);
    } else if (phase === 'cluster') {
        await cluster(b.page, b.errors);
    } else {
        fail('unknown phase ' + phase);
    }
} catch (e) {
    fail(`${phase}: unexpected error`, e.message);
} finally {
    await b.close();
}
process.exit(failed ? 1 : 0);
