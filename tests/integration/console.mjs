// console.mjs PHASE ... - drives the web console (/ui/) in Debian's
// Chromium through playwright-core, for tests/integration/console.test.
//
//   console.mjs single BASE EP       keys, leases, cluster on one member
//   console.mjs auth BASE EP         login as a read-only user, then root
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
    return { page, errors, close };
}

// Every control a person types into has a label (or an aria-label).
async function unlabelled(page) {
    return page.evaluate(() => [...document.querySelectorAll('input, textarea, select')]
        .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
        .map((el) => el.id || el.name || el.tagName));
}

const tree = (page, attr, v) => page.locator(`#tree button[data-${attr}="${v}"]`);

async function single(page, errors) {
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
        await page.waitForSelector('#banner.ok');
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
        await single(b.page, b.errors);
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
