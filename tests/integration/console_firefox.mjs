// console_firefox.mjs - the console in Firefox (helper of
// console_firefox.test): Debian's firefox-esr driven by puppeteer-core over
// WebDriver BiDi (Playwright drives only its own patched Firefox builds).
//
// usage: node console_firefox.mjs BASE_URL ETCDCTL_ENDPOINT
// env:   PUPPETEER_MODULE (path of puppeteer-core), SHOTS (screenshot dir),
//        ETCDCTL, CAIRN_TIMEOUT_SCALE
//
// The same flows as console.mjs's core, in the other engine: every page
// loads without console errors; a key created in the UI is read back by
// etcdctl; a key put by etcdctl appears in the open folder without a
// reload (the gateway watch read from a streamed fetch); an instance
// registered through the API appears on the Services page without a
// reload (the SSE discovery stream) and goes when deregistered; the
// config editor's Check marks an invalid YAML's line and a publish is read
// back; the Cluster page names the leader. Prints "ok what" or
// "FAIL what: why" per check; exit status 1 when any failed.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const puppeteer = (await import(path.join(process.env.PUPPETEER_MODULE, 'lib/esm/puppeteer/puppeteer-core.js'))).default;
const [base, ep] = process.argv.slice(2);
const SCALE = Number(process.env.CAIRN_TIMEOUT_SCALE || 1);
const SHOTS = process.env.SHOTS;
let failed = 0;

function ctl(...args) {
    return execFileSync(process.env.ETCDCTL, ['--endpoints=' + ep, ...args],
        { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 10000 * SCALE }).trim();
}

async function api(method, p, body) {
    const r = await fetch(base + '/api/v1' + p, {
        method, body: body === undefined ? undefined : JSON.stringify(body),
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    });
    const t = await r.text();
    if (!r.ok) {
        throw new Error(`${method} ${p}: ${r.status} ${t}`);
    }
    return t ? JSON.parse(t) : null;
}

async function check(what, fn) {
    try {
        const r = await fn();
        if (r === false) {
            throw new Error('condition false');
        }
        console.log('ok ' + what);
    } catch (e) {
        failed++;
        console.log('FAIL ' + what + ': ' + String(e && e.message || e).replace(/\s+/g, ' ').slice(0, 400));
    }
}

// set an input's value as a user's typing would end (its input event)
async function fill(page, sel, v) {
    await page.$eval(sel, (e, val) => { e.value = val; e.dispatchEvent(new Event('input', { bubbles: true })); }, v);
}

// wait until fn() (run in the page) is truthy
async function until(page, fn, arg, ms = 10000) {
    await page.waitForFunction(fn, { timeout: ms * SCALE, polling: 100 }, arg);
}

const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: '/usr/bin/firefox-esr', headless: true,
    timeout: 60000 * SCALE,
});
try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    const shot = (name) => SHOTS ? page.screenshot({ path: path.join(SHOTS, name) }).catch(() => {}) : null;

    const ready = {
        cluster: () => until(page, () => (document.getElementById('leader')?.dataset.leader || 'none') !== 'none'),
        keys: () => until(page, () => document.querySelector('#tail-state')?.dataset.state === 'live'),
        leases: () => until(page, () => !/loading/.test(document.getElementById('lease-summary')?.textContent || 'loading')),
        services: () => until(page, () => document.querySelector('h1')?.textContent === 'Services'),
        config: () => until(page, () => !!document.getElementById('cfg-ns')),
        users: () => until(page, () => /Users/.test(document.querySelector('h1')?.textContent || '')),
    };
    for (const [name, fn] of Object.entries(ready)) {
        await check(`Firefox: the ${name} page loads without console errors${name === 'cluster' ? ' and names this member the leader' : ''}`, async () => {
            errors.length = 0;
            await page.goto(`${base}/ui/#/${name}`);
            await fn();
            await new Promise((r) => setTimeout(r, 300));
            if (name === 'cluster' && await page.$eval('#leader', (e) => e.textContent) !== 'default') {
                throw new Error('the leader is not shown as this member');
            }
            await shot(`${name}.png`);
            if (errors.length) {
                throw new Error(errors.join(' | '));
            }
        });
    }
    if (failed) {
        console.log('FAIL Firefox: the console does not load; the rest is not run');
        process.exit(1);
    }


    await page.goto(`${base}/ui/#/keys`);
    await ready.keys();
    const folder = (p) => `#tree button[data-prefix="${p}"]`;
    await check('Firefox: a key created in the UI is read back by etcdctl', async () => {
        await page.click(folder('/app/'));
        await page.click('#new-key');
        await fill(page, '#new-key-name', '/app/ff/created');
        await fill(page, '#new-key-value', 'from firefox');
        await page.click('#create');
        await until(page, () => !!document.querySelector('#banner.ok'));
        const got = ctl('get', '/app/ff/created', '--print-value-only');
        if (got !== 'from firefox') {
            throw new Error(`etcdctl read '${got}'`);
        }
    });
    await check('Firefox: a key put by etcdctl appears in the open folder without a reload', async () => {
        await until(page, (p) => !!document.querySelector(`#tree button[data-prefix="${p}"]`), '/app/ff/');
        await page.click(folder('/app/ff/'));
        await until(page, () => /watching \/app\/ff\//.test(document.getElementById('tail-state').textContent));
        ctl('put', '/app/ff/live', 'from etcdctl');
        await until(page, () => !!document.querySelector('#tree button[data-key="/app/ff/live"]'), null, 5000);
        await shot('keys-live.png');
    });

    await check('Firefox: an instance registered through the API appears on the Services page live, and goes', async () => {
        await api('PUT', '/registry/ff/web/w1', { addr: '127.0.0.1:9101', ttl: 300, zone: 'z1' });
        await page.goto(`${base}/ui/#/services/ff/web`);
        await until(page, () => document.querySelector('#svc-stream')?.dataset.state === 'live' &&
            !!document.querySelector('#instance-rows tr[data-instance="w1"]'));
        await page.evaluate(() => { window.cairnNoReload = 1; });
        await api('PUT', '/registry/ff/web/w2', { addr: '127.0.0.1:9102', ttl: 300, zone: 'z2' });
        await until(page, () => !!document.querySelector('#instance-rows tr[data-instance="w2"]'), null, 8000);
        await shot('services.png');
        await api('DELETE', '/registry/ff/web/w1');
        await until(page, () => !document.querySelector('#instance-rows tr[data-instance="w1"]'), null, 8000);
        return await page.evaluate(() => window.cairnNoReload === 1);
    });

    await check('Firefox: Check marks an invalid YAML\'s line; the fixed one publishes', async () => {
        await page.goto(`${base}/ui/#/config`);
        await ready.config();
        await fill(page, '#cfg-ns', 'ff');
        await page.click('#cfg-ns-open');
        await until(page, () => !!document.getElementById('new-cfg-app'));
        await fill(page, '#new-cfg-app', 'shop');
        await fill(page, '#new-cfg-name', 'app.yaml');
        await page.click('#new-cfg');
        await until(page, () => !!document.getElementById('cfg-editor'));
        await page.$eval('#cfg-editor', (e) => { e.value = 'a: 1\nb: [2\n'; e.dispatchEvent(new Event('input')); });
        await page.click('#check');
        await until(page, () => !!document.querySelector('#publish-msg.error'));
        const marked = await page.$eval('#cfg-editor-gutter .err', (e) => e.textContent);
        await shot('config-invalid.png');
        await page.$eval('#cfg-editor', (e) => { e.value = 'a: 1\nb: [2]\n'; e.dispatchEvent(new Event('input')); });
        await page.click('#publish');
        await until(page, () => /Published v1/.test(document.querySelector('#publish-msg.ok')?.textContent || ''));
        const r = await api('GET', '/config/ff/shop/app.yaml');
        if (marked !== '3' || r.version !== 1 || r.content !== 'a: 1\nb: [2]\n') {
            throw new Error(`marked line ${marked}, published ${JSON.stringify(r)}`);
        }
    });
    await check('Firefox: no console errors in the whole run', async () => {
        if (errors.length) {
            throw new Error(errors.join(' | '));
        }
    });
} finally {
    await browser.close();
}
process.exit(failed ? 1 : 0);
