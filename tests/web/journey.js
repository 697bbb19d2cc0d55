// The citizen's journey through the web portal in a real browser: Debian's chromium driven by
// playwright-core (both pinned by scripts/npm-tools, found through NODE_PATH), with axe-core
// checking every page against WCAG 2.2 A/AA, error states included.
//
// Driven three times, each time with a new account: with JavaScript, without JavaScript
// (javaScriptEnabled: false: the pages must work by plain forms and links), and by keyboard
// only (Tab to reach each control, Enter, Space and the arrow keys to use it; the focus must
// be visible on each). Besides: the start page's weight as transferred on a first visit
// (fonts aside), and a draft started in one browser continued in another after log-in.
//
// Input (environment, or KEY=VALUE lines of the file WEB_TEST_ENV_FILE):
//   WEB_URL            the web portal's origin (http://127.0.0.1:PORT)
//   GATEWAY_URL        the gateway's origin (the department's back-office API)
//   MAILDIR            the Maildir the platform's mails are delivered into
//   BACKOFFICE_CLIENT_ID, BACKOFFICE_CLIENT_SECRET   the Standesamt's back-office client
//   SCREENSHOT_DIR     optional: writes NN-page-1280.png and NN-page-375.png of every page
//                      of the journey (with JavaScript) there
//   JOURNEYS           optional: which runs, comma-separated (default js,nojs,keyboard)
// Prints what it did and the figures ("figure: NAME VALUE"); ends with "all steps passed"
// and exit code 0 only when every step passed.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { chromium } = require('playwright-core');

const env = { ...process.env };
if (env.WEB_TEST_ENV_FILE) {
  for (const line of fs.readFileSync(env.WEB_TEST_ENV_FILE, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    // What the environment sets wins (to run one journey by hand).
    if (eq > 0 && !(line.slice(0, eq) in process.env)) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
}
const WEB = env.WEB_URL;
const GATEWAY = env.GATEWAY_URL;
const MAILDIR = env.MAILDIR;
const BACKOFFICE_ID = env.BACKOFFICE_CLIENT_ID;
const BACKOFFICE_SECRET = env.BACKOFFICE_CLIENT_SECRET;
const SHOTS = env.SCREENSHOT_DIR || '';
for (const [name, value] of Object.entries({ WEB_URL: WEB, GATEWAY_URL: GATEWAY, MAILDIR,
                                            BACKOFFICE_CLIENT_ID: BACKOFFICE_ID, BACKOFFICE_CLIENT_SECRET: BACKOFFICE_SECRET })) {
  if (!value) throw new Error(`${name} is not set`);
}
const JOURNEYS = (env.JOURNEYS || 'js,nojs,keyboard').split(',');
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
// A browser in German (chromium-l10n): its date fields take TT.MM.JJJJ from the keyboard.
// Containers often have a small /dev/shm: chromium keeps its shared memory in /tmp instead.
const LAUNCH = { executablePath: CHROMIUM, headless: true, args: ['--disable-dev-shm-usage'],
                 env: { ...process.env, LANG: 'de_DE.UTF-8', LANGUAGE: 'de' } };
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];
const PASSWORD = 'Nürnberger Lebkuchen im Advent';
const SERVICE = 'civil-registry-certificate';
const SERVICE_NAME = 'Personenstandsurkunde bestellen';
const START_PAGE_LIMIT = 100 * 1000; // bytes transferred, fonts aside
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'stadtportal-web-'));

function log(line) {
  console.log(line);
}
function figure(name, value) {
  console.log(`figure: ${name} ${value}`);
}
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
async function eventually(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms${last ? ` (${last.message})` : ''}`);
    await sleep(250);
  }
}
function uniqueEmail(tag) {
  return `web.${tag}.${Date.now()}.${Math.floor(Math.random() * 1e6)}@example.de`;
}

// The newest mail to `to` whose text matches `re`; the match.
async function mailTo(to, re) {
  return eventually(`a mail to ${to} matching ${re}`, () => {
    const dir = path.join(MAILDIR, 'new');
    if (!fs.existsSync(dir)) return null;
    const mails = fs
      .readdirSync(dir)
      .map((f) => path.join(dir, f))
      .sort((a, b) => fs.statSync(a).mtimeMs - fs.statSync(b).mtimeMs);
    let found = null;
    for (const f of mails) {
      const text = fs.readFileSync(f, 'utf8');
      if (!new RegExp(`^To: ${to.replace(/[.+]/g, '\\$&')}\\r?$`, 'm').test(text)) continue;
      const m = text.match(re);
      if (m) found = m;
    }
    return found;
  });
}

// The department's side, over the public back-office API, with a fresh access token
// (client credentials) for each call: tokens are short-lived.
async function backoffice(method, p, body) {
  const issued = await fetch(`${GATEWAY}/api/v1/oauth/token`, {
    method: 'POST',
    headers: { Authorization: `Basic ${Buffer.from(`${BACKOFFICE_ID}:${BACKOFFICE_SECRET}`).toString('base64')}`,
               'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
    signal: AbortSignal.timeout(10000),
  });
  assert.equal(issued.status, 200, `back-office token: HTTP ${issued.status}`);
  const token = (await issued.json()).access_token;
  const res = await fetch(GATEWAY + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, text };
}

async function departmentWrites(submission, body) {
  await eventually('the submission reaches the Standesamt', async () => {
    const r = await backoffice('GET', '/api/v1/backoffice/submissions');
    return r.status === 200 && r.text.includes(submission);
  });
  const base = `/api/v1/backoffice/submissions/${submission}`;
  let r = await backoffice('POST', `${base}/acknowledge`, {});
  assert.equal(r.status, 200, `acknowledge: ${r.text}`);
  r = await backoffice('POST', `${base}/messages`, { body, message_key: `web-${submission}` });
  assert.equal(r.status, 201, `department message: ${r.text}`);
}

// A small PDF to attach.
const ATTACHMENT = path.join(TMP, 'Nachweis.pdf');
fs.writeFileSync(ATTACHMENT, '%PDF-1.4\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n');

// One browser tab of one person, in one of the three ways of using it.
class Visitor {
  constructor(browser, mode, tag) {
    this.browser = browser;
    this.mode = mode; // js | nojs | keyboard
    this.tag = tag;
    this.violations = [];
    this.pages = 0;
    this.shot = 0;
  }

  async open() {
    this.context = await this.browser.newContext({
      javaScriptEnabled: this.mode !== 'nojs',
      locale: 'de-DE',
      viewport: { width: 1280, height: 900 },
      acceptDownloads: true,
    });
    this.page = await this.context.newPage();
    this.page.setDefaultTimeout(15000);
    this.loads = 0;
    this.page.on('load', () => { this.loads += 1; });
    // Anything the page's own script throws is a failure.
    this.errors = [];
    this.page.on('pageerror', (e) => this.errors.push(e.message));
    this.page.on('console', (m) => {
      // A form that comes back with errors answers 422, which the console notes; the
      // payment provider's page (testpay, not ours) is not checked.
      const from = m.location()?.url || '';
      if (m.type() === 'error' && !/status of 422/.test(m.text()) && (!from || from.startsWith(WEB))) {
        this.errors.push(`${m.text()} (${from})`);
      }
    });
    if (this.mode === 'nojs') {
      // axe needs script: it checks the page as it came (its HTML, this browser's cookies
      // not needed) in a second tab with script on for axe only, the page's own blocked.
      // A browser of its own: a second tab in the journey's browser would take the front
      // and leave the journey's tab without animation frames (its scrolling never settles).
      this.auditBrowser = await chromium.launch(LAUNCH);
      this.auditContext = await this.auditBrowser.newContext({ locale: 'de-DE', viewport: { width: 1280, height: 900 } });
      this.auditPage = await this.auditContext.newPage();
    }
  }

  async close() {
    await this.context.close();
    if (this.auditBrowser) await this.auditBrowser.close();
  }

  // The page as it is now must pass axe; `name` names it in the report (and its screenshot).
  async audit(name) {
    this.pages += 1;
    const page = this.page;
    assert.deepEqual(this.errors, [], `script errors on ${name}`);
    const title = await page.title();
    assert.ok(title.length > 0, `${name}: no title`);
    assert.equal(await page.locator('h1').count(), 1, `${name}: not exactly one h1`);
    assert.match((await page.locator('html').getAttribute('lang')) || '', /^(de|en)$/, `${name}: no lang attribute`);
    let result;
    if (this.mode === 'nojs') {
      const url = page.url();
      const html = await page.content();
      const audit = this.auditPage;
      await audit.unroute('**/*').catch(() => {});
      let served = false;
      await audit.route('**/*', async (route) => {
        const req = route.request();
        if (!served && req.url() === url && req.isNavigationRequest()) {
          served = true;
          return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html });
        }
        if (req.resourceType() === 'script') return route.abort();
        return route.continue();
      });
      await audit.goto(url, { waitUntil: 'load' });
      result = await runAxe(audit);
    } else {
      result = await runAxe(page);
    }
    for (const v of result) {
      this.violations.push({ page: name, url: page.url(), id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) });
    }
    log(`  ${this.mode}: ${name} (${page.url().replace(WEB, '')}): axe ${result.length} violations`);
    if (SHOTS && this.tag === 'js') await this.screenshot(name);
  }

  async screenshot(name) {
    this.shot += 1;
    const base = `${String(this.shot).padStart(2, '0')}-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
    await this.page.screenshot({ path: path.join(SHOTS, `${base}-1280.png`), fullPage: true });
    await this.page.setViewportSize({ width: 375, height: 812 });
    await this.page.screenshot({ path: path.join(SHOTS, `${base}-375.png`), fullPage: true });
    await this.page.setViewportSize({ width: 1280, height: 900 });
  }

  async goto(p, name) {
    const res = await this.page.goto(p.startsWith('http') ? p : WEB + p);
    assert.ok(res, `no answer for ${p}`);
    assert.equal(res.status(), 200, `${p}: HTTP ${res.status()}`);
    if (name) await this.audit(name);
  }

  // Runs `action`, which must lead to a new page whose URL matches `where` (a RegExp on the
  // whole URL or a function of the URL), and waits until that page has loaded.
  async navigates(action, where) {
    const before = this.loads;
    const matches = (u) => (typeof where === 'function' ? where(new URL(u)) : where.test(u));
    await action();
    await eventually(`a new page at ${where} (at ${this.page.url()})`,
                     () => this.loads > before && matches(this.page.url()), 15000);
  }

  // --- The three ways of using a control. ---

  // Keyboard only: Tab until `locator` has the focus (it must be in the tab order), and
  // the focus must be visible there.
  async tabTo(locator) {
    const el = await locator.elementHandle();
    assert.ok(el, `no element ${locator}`);
    for (let i = 0; i < 120; i += 1) {
      await this.page.keyboard.press('Tab');
      if (await el.evaluate((e) => e === document.activeElement)) {
        const visible = await el.evaluate((e) => {
          const s = getComputedStyle(e);
          const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0;
          return outline || (s.boxShadow && s.boxShadow !== 'none');
        });
        assert.ok(visible, `no visible focus on ${locator}`);
        return;
      }
    }
    throw new Error(`${locator} cannot be reached by Tab`);
  }

  async fill(locator, text) {
    if (this.mode !== 'keyboard') return locator.fill(text);
    await this.tabTo(locator);
    await this.page.keyboard.press('Control+A');
    await this.page.keyboard.press('Delete');
    if (text) await this.page.keyboard.type(text);
    assert.equal(await locator.inputValue(), text);
  }

  async select(locator, label) {
    if (this.mode !== 'keyboard') return locator.selectOption({ label });
    await this.tabTo(locator);
    const labels = await locator.locator('option').allTextContents();
    const want = labels.findIndex((l) => l.trim() === label);
    assert.ok(want >= 0, `no option ${label}`);
    const at = await locator.evaluate((s) => s.selectedIndex);
    const key = want > at ? 'ArrowDown' : 'ArrowUp';
    for (let i = 0; i < Math.abs(want - at); i += 1) await this.page.keyboard.press(key);
    assert.equal((await locator.evaluate((s) => s.options[s.selectedIndex].textContent)).trim(), label);
  }

  async check(locator) {
    if (this.mode !== 'keyboard') {
      await this.settle(locator);
      return locator.check();
    }
    const type = await locator.getAttribute('type');
    if (type === 'radio') {
      // The group takes one Tab stop; the arrow keys choose.
      const name = await locator.getAttribute('name');
      const group = this.page.locator(`input[type=radio][name="${name}"]`);
      const first = (await group.evaluateAll((rs) => rs.findIndex((r) => r.checked)));
      await this.tabTo(group.nth(first >= 0 ? first : 0));
      for (let i = 0; i < 10 && !(await locator.isChecked()); i += 1) await this.page.keyboard.press('ArrowDown');
    } else {
      await this.tabTo(locator);
      if (!(await locator.isChecked())) await this.page.keyboard.press('Space');
    }
    assert.ok(await locator.isChecked(), `${locator} not checked`);
  }

  async upload(locator, file) {
    if (this.mode !== 'keyboard') return locator.setInputFiles(file);
    await this.tabTo(locator);
    // Space or Enter opens the file dialog; under load chromium sometimes drops the first
    // key's dialog, so a person (and this test) presses again.
    for (const key of ['Space', 'Enter', 'Space']) {
      const opened = this.page.waitForEvent('filechooser', { timeout: 5000 }).catch(() => null);
      await this.page.keyboard.press(key);
      const chooser = await opened;
      if (chooser) return chooser.setFiles(file);
      assert.ok(await locator.evaluate((e) => e === document.activeElement), `${locator} lost the focus`);
    }
    throw new Error(`no file dialog from ${locator} by Space or Enter`);
  }

  // Brings `locator` into the viewport and waits until it stays put. KERN scrolls
  // smoothly (html { scroll-behavior: smooth }), and Playwright's click, which scrolls
  // itself and retries with other alignments, would chase a moving target forever. The
  // wheel works with and without script.
  async settle(locator) {
    let last = null;
    for (let i = 0; i < 60; i += 1) {
      const box = await locator.boundingBox();
      assert.ok(box, `${locator} is not visible`);
      const height = this.page.viewportSize().height;
      if (box.y < 0 || box.y + box.height > height) {
        await this.page.mouse.wheel(0, box.y + box.height / 2 - height / 2);
        last = null;
      } else if (last && last.y === box.y && last.x === box.x) {
        return;
      } else {
        last = box;
      }
      await sleep(100);
    }
    throw new Error(`${locator} does not come to rest in the viewport`);
  }

  async click(locator) {
    await this.settle(locator);
    return locator.click();
  }

  // Links by Enter, buttons by Space (keyboard), else a click.
  async press(locator) {
    if (this.mode !== 'keyboard') return this.click(locator);
    await this.tabTo(locator);
    const tag = await locator.evaluate((e) => e.tagName);
    await this.page.keyboard.press(tag === 'A' ? 'Enter' : 'Space');
  }

  // --- Checks shared by the pages. ---

  // A form that came back with errors: the error summary lists each, links to its field
  // (which exists, is marked invalid and described by its error) and, with script, has
  // the focus.
  async expectErrors(fieldIds) {
    const summary = this.page.locator('#error-summary');
    await summary.waitFor();
    const links = summary.locator('a');
    const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    for (const id of fieldIds) {
      assert.ok(hrefs.some((h) => h === `#${id}` || h.startsWith(`#${id}`)),
                `the error summary does not link to #${id}: ${hrefs}`);
    }
    const texts = await links.allTextContents();
    for (const [i, h] of hrefs.entries()) {
      const field = this.page.locator(h);
      assert.equal(await field.count(), 1, `the error summary links to ${h}, which is not there`);
      // Its entry names the field (the field's own label), not only what is wrong.
      const label = (await this.page.locator(`label[for="${h.slice(1)}"]`).first().textContent())
        .replace(/\(freiwillig\)/, '').trim();
      assert.ok(texts[i].includes(label), `the error summary's entry "${texts[i].trim()}" does not name "${label}"`);
      assert.equal(await field.getAttribute('aria-invalid'), 'true', `${h} is not marked invalid`);
      const described = (await field.getAttribute('aria-describedby')) || '';
      assert.ok(described.split(/\s+/).some((d) => d.endsWith('-error')), `${h} is not described by its error`);
    }
    assert.match(await this.page.title(), /^Fehler:/, 'the title does not tell of the error');
    if (this.mode !== 'nojs') {
      assert.ok(await summary.evaluate((s) => s === document.activeElement), 'the error summary has no focus');
    }
    // Its link leads to the field.
    if (this.mode === 'nojs') return;
    await this.press(links.first());
    const target = hrefs[0].slice(1);
    await eventually(`focus on #${target}`, () => this.page.evaluate((t) => {
      const a = document.activeElement;
      return a && (a.id === t || (a.closest && a.closest(`#${CSS.escape(t)}`)));
    }, target), 3000);
  }
}

async function runAxe(page) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })
      .then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                               nodes: v.nodes.map((n) => ({ target: n.target })) }))),
    AXE_TAGS);
}

// --- The journey's parts. ---

async function register(v, email) {
  const p = v.page;
  await v.goto('/', 'start page');
  if (v.mode === 'keyboard') {
    // The first Tab reaches the skip link; it leads to the main content.
    await p.keyboard.press('Tab');
    assert.equal((await p.evaluate(() => document.activeElement.textContent)).trim(), 'Zum Inhalt springen');
    await p.keyboard.press('Enter');
    assert.equal(await p.evaluate(() => document.activeElement.id), 'main');
  }
  await v.navigates(() => v.press(p.getByRole('navigation').getByRole('link', { name: 'Registrieren' })), /\/register$/);
  await v.audit('register');
  // One error first: a password that is too short.
  await v.fill(p.locator('#display_name'), 'Anna Muster');
  await v.fill(p.locator('#email'), email);
  await v.fill(p.locator('#password'), 'kurz');
  await v.navigates(() => v.press(p.getByRole('button', { name: 'Konto anlegen' })), /\/register/);
  await v.expectErrors(['password']);
  await v.audit('register with an error');
  // Kept: name and e-mail; never the password.
  assert.equal(await p.locator('#email').inputValue(), email);
  assert.equal(await p.locator('#password').inputValue(), '');
  await v.fill(p.locator('#password'), PASSWORD);
  await v.navigates(() => v.press(p.getByRole('button', { name: 'Konto anlegen' })), /./);
  await p.getByRole('heading', { level: 1, name: 'Bitte prüfen Sie Ihre E-Mails' }).waitFor();
  await v.audit('check your mail');
  assert.ok(!p.url().includes(email) && !p.url().includes(encodeURIComponent(email)), 'the e-mail address is in the URL');

  // The mail's link leads to the portal.
  const m = await mailTo(email, /(https?:\/\/[^\s"<>]+\?token=[A-Za-z0-9_-]+)/);
  const link = m[1];
  assert.ok(link.startsWith(`${WEB}/`), `the mail's link does not lead to the portal: ${link}`);
  await v.goto(link, 'verify');
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button')), /./);
  log(`  ${v.mode}: verified (${p.url().replace(WEB, '')})`);
}

async function login(v, email) {
  const p = v.page;
  if (!/\/login/.test(p.url())) {
    await v.navigates(() => v.press(p.getByRole('navigation').getByRole('link', { name: 'Anmelden' })), /\/login/);
  }
  await v.audit('log-in');
  await v.fill(p.locator('#email'), email);
  await v.fill(p.locator('#password'), PASSWORD);
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Anmelden' })), (u) => !/\/login/.test(u.pathname));
  await p.getByRole('button', { name: 'Abmelden' }).waitFor();
  const cookies = await v.context.cookies();
  const session = cookies.find((c) => c.name === '__Host-sp');
  assert.ok(session, 'no __Host-sp cookie');
  assert.ok(session.httpOnly && session.secure && session.sameSite === 'Lax' && session.path === '/',
            `the session cookie's attributes: ${JSON.stringify(session)}`);
  log(`  ${v.mode}: logged in`);
}

async function findService(v) {
  const p = v.page;
  if (new URL(p.url()).pathname !== '/') {
    await v.navigates(() => v.press(p.getByRole('link', { name: 'Stadtportal Nürnberg' })), (u) => u.pathname === '/');
  }
  await v.fill(p.locator('#q'), 'Geburtsurkunde');
  if (v.mode === 'keyboard') {
    await v.navigates(() => p.keyboard.press('Enter'), /\?q=/);
  } else {
    await v.navigates(() => v.press(p.getByRole('search').getByRole('button', { name: 'Suchen' })), /\?q=/);
  }
  await v.audit('search results');
  const result = p.getByRole('main').getByRole('link', { name: SERVICE_NAME });
  await v.navigates(() => v.press(result), new RegExp(`/services/${SERVICE}$`));
  await p.getByRole('heading', { level: 1, name: SERVICE_NAME }).waitFor();
  const text = await p.getByRole('main').textContent();
  assert.match(text, /12,00\s*€/, 'the service page shows no fee');
  await v.audit('service page');
}

// A field of a form step by its label (the form definition's German label).
function field(v, label) {
  return v.page.getByRole('main').getByLabel(label, { exact: true });
}

// A date the way the field asks for it: an <input type=date> takes ISO, a text field
// the German form (TT.MM.JJJJ) the page's hints show.
async function fillDate(v, locator, iso) {
  const type = await locator.getAttribute('type');
  const [y, m, d] = iso.split('-');
  if (type === 'date' && v.mode === 'keyboard') {
    // By keyboard the date field takes its parts in the locale's order (TT.MM.JJJJ).
    await v.tabTo(locator);
    await v.page.keyboard.type(`${d}${m}${y}`);
    assert.equal(await locator.inputValue(), iso);
    return;
  }
  if (type === 'date') return v.fill(locator, iso);
  return v.fill(locator, `${d}.${m}.${y}`);
}

// From the service page: start the application, fill the steps (the first with one
// error shown and then corrected), arrive at "check your answers". Returns the draft's id.
async function applyForCertificate(v, { stopAfterFirstStep = false } = {}) {
  const p = v.page;
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Jetzt starten' })),
                    /\/drafts\/[0-9a-f-]+\/steps\/1$/);
  const draft = new URL(p.url()).pathname.split('/')[2];
  await v.audit('step 1');

  // The certificate step, with the name of the person left out.
  const type = field(v, 'Art der Urkunde');
  if (v.mode !== 'nojs') {
    // A conditional field shows at once with script: the spouse only for a marriage.
    const spouse = p.locator('#spouse_name');
    await v.select(type, 'Eheurkunde');
    await spouse.waitFor({ state: 'visible', timeout: 3000 });
    await v.select(type, 'Geburtsurkunde');
    await spouse.waitFor({ state: 'hidden', timeout: 3000 });
  } else {
    await v.select(type, 'Geburtsurkunde');
  }
  await v.fill(field(v, 'Anzahl der Exemplare'), '2');
  await fillDate(v, field(v, 'Datum des Ereignisses'), '1990-02-28');
  await v.select(field(v, 'Verwendungszweck'), 'Rente');
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Weiter', exact: true })), /\/steps\/1/);
  await v.expectErrors(['person_name']);
  await v.audit('step 1 with an error');
  // What was given is kept.
  assert.equal(await field(v, 'Anzahl der Exemplare').inputValue(), '2');
  await v.fill(field(v, 'Name der Person in der Urkunde'), 'Anna Muster');
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Weiter', exact: true })), /\/steps\/2$/);
  await v.audit('step 2');
  if (stopAfterFirstStep) return draft;

  // The applicant: name, postal address (a group of four fields), e-mail, a document.
  await v.fill(field(v, 'Vorname'), 'Anna');
  await v.fill(field(v, 'Familienname'), 'Muster');
  const address = p.getByRole('group', { name: 'Versandanschrift' });
  await v.fill(address.getByLabel('Straße', { exact: true }), 'Hauptmarkt');
  await v.fill(address.getByLabel('Hausnummer', { exact: true }), '18');
  await v.fill(address.getByLabel('Postleitzahl', { exact: true }), '90403');
  await v.fill(address.getByLabel('Ort', { exact: true }), 'Nürnberg');
  await v.fill(field(v, 'E-Mail-Adresse'), 'anna@example.org');
  await v.upload(p.getByRole('main').getByLabel('Weitere Unterlagen'), ATTACHMENT);
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Weiter', exact: true })),
                    new RegExp(`/drafts/${draft}/check$`));
  await p.getByRole('heading', { level: 1, name: 'Prüfen Sie Ihre Angaben' }).waitFor();
  const text = await p.getByRole('main').textContent();
  for (const want of ['Geburtsurkunde', 'Anna Muster', 'Hauptmarkt', '90403', 'Nachweis.pdf']) {
    assert.ok(text.includes(want), `"check your answers" does not show ${want}`);
  }
  const changes = await p.getByRole('main').getByRole('link', { name: /^Ändern/ })
    .evaluateAll((as) => as.map((a) => a.getAttribute('href')));
  assert.ok(changes.some((h) => h.includes(`/drafts/${draft}/steps/1`)), `no change link to step 1: ${changes}`);
  await v.audit('check your answers');
  return draft;
}

// Submits from "check your answers" (with script: a double click, which must submit once)
// and arrives at the confirmation; returns the submission's id.
async function submit(v) {
  const p = v.page;
  const button = p.getByRole('main').getByRole('button', { name: 'Antrag absenden' });
  if (v.mode === 'js') {
    await v.settle(button);
    await v.navigates(() => button.dblclick(), /\/submissions\/[0-9a-f-]+/);
  } else {
    await v.navigates(() => v.press(button), /\/submissions\/[0-9a-f-]+/);
  }
  const submission = new URL(p.url()).pathname.split('/')[2];
  await p.getByRole('heading', { level: 1 }).waitFor();
  const text = await p.getByRole('main').textContent();
  assert.match(await p.getByRole('heading', { level: 1 }).textContent(), /NUE-\d{4}-\d+/, 'the confirmation shows no reference');
  assert.ok(/24,00\s*€/.test(text), 'the confirmation shows no fee due');
  await v.audit('confirmation, fee due');
  return submission;
}

// Pays the fee: to testpay (the provider's page, not ours: no axe there), "success", back
// to the portal, which shows the submission as paid.
async function pay(v, submission) {
  const p = v.page;
  const testpay = (u) => u.pathname.startsWith('/pay/');
  // The pay button (a form) leads to a page of ours that links to the provider: a form's
  // redirect to another origin is what the CSP's form-action forbids.
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Jetzt bezahlen' })),
                    (u) => u.origin === WEB);
  await v.audit('payment hand-off');
  await v.navigates(() => v.press(p.getByRole('main').getByRole('link', { name: 'Weiter zur Bezahlung' })), testpay);
  await v.navigates(() => v.press(p.getByRole('button', { name: 'success' })),
                    (u) => u.origin === WEB && u.pathname.startsWith(`/submissions/${submission}`));
  await p.getByText('Vielen Dank, Ihre Zahlung ist eingegangen.').waitFor();
  // Paid is paid: never offered to pay again, and the status says so (at once, or after a
  // reload once the submission has heard of the payment).
  const offered = await p.getByRole('main').getByRole('button', { name: 'Jetzt bezahlen' }).count();
  assert.equal(offered, 0, 'right after paying, the page offers to pay again');
  await eventually('the submission shows as paid', async () => {
    if (/Bezahlt|An die Stelle übermittelt/.test(await p.getByRole('main').textContent())) return true;
    await v.goto(`/submissions/${submission}`);
    return false;
  }, 10000);
  await v.audit('confirmation, paid');
}

// The receipt: a PDF download (by the browser, as a person gets it) naming the certificate.
async function receipt(v) {
  const p = v.page;
  const link = p.getByRole('main').getByRole('link', { name: 'Eingangsbestätigung herunterladen (PDF)' });
  const [download] = await Promise.all([p.waitForEvent('download'), v.press(link)]);
  const file = path.join(TMP, `receipt-${v.mode}.pdf`);
  await download.saveAs(file);
  const body = fs.readFileSync(file);
  assert.equal(body.subarray(0, 5).toString(), '%PDF-', 'the receipt is no PDF');
  assert.match(download.suggestedFilename(), /\.pdf$/);
  const text = execFileSync('pdftotext', [file, '-'], { encoding: 'utf8' });
  assert.ok(text.includes('Geburtsurkunde'), 'the receipt does not name the certificate');
  assert.match(text, /NUE-\d{4}-\d+/, 'the receipt has no reference');
  log(`  ${v.mode}: receipt PDF, ${body.length} bytes`);
}

// The Standesamt writes; the message is in the mailbox, read, answered with a document.
async function mailbox(v, submission) {
  const p = v.page;
  const said = `Ihre Geburtsurkunde liegt zur Abholung bereit (${v.mode}).`;
  await departmentWrites(submission, said);
  await v.navigates(() => v.press(p.getByRole('navigation').getByRole('link', { name: /Postfach/ })), /\/mailbox$/);
  await v.audit('mailbox');
  const threads = p.getByRole('main').locator('a[href^="/mailbox/"]');
  assert.equal(await threads.count(), 1, 'not exactly the one thread in the mailbox');
  await v.navigates(() => v.press(threads.first()), /\/mailbox\/[0-9a-f-]+$/);
  await p.getByText(said).waitFor();
  await v.audit('mailbox thread');
  // A reply without text first: the error, then the reply with a document.
  const reply = p.getByRole('main').getByRole('button', { name: 'Antworten', exact: true });
  await v.navigates(() => v.press(reply), /\/mailbox\//);
  await v.expectErrors(['body']);
  await v.audit('mailbox reply with an error');
  await v.fill(p.locator('#body'), 'Danke, ich hole sie am Montag ab.');
  await v.upload(p.getByRole('main').getByLabel('Dateien anhängen'), ATTACHMENT);
  await v.navigates(() => v.press(p.getByRole('main').getByRole('button', { name: 'Antworten', exact: true })),
                    /\/mailbox\/[0-9a-f-]+/);
  await p.getByText('Ihre Nachricht ist gesendet.').waitFor();
  await p.getByText('Danke, ich hole sie am Montag ab.').waitFor();
  await p.getByText('Nachweis.pdf').first().waitFor();
  await v.audit('mailbox thread, answered');
  // The department reads the reply and its document.
  await eventually('the reply reaches the Standesamt', async () => {
    const r = await backoffice('GET', '/api/v1/backoffice/replies');
    return r.status === 200 && r.text.includes('ich hole sie am Montag ab');
  });
}

// "My submissions": the one submission of this journey, once (a double click on "submit"
// made no second one).
async function mySubmissions(v, submission) {
  const p = v.page;
  await v.navigates(() => v.press(p.getByRole('navigation').getByRole('link', { name: 'Meine Anträge' })),
                    /\/submissions$/);
  const ids = await p.getByRole('main').locator('a[href^="/submissions/"]')
    .evaluateAll((as) => [...new Set(as.map((a) => a.getAttribute('href').split('/')[2]))]);
  assert.deepEqual(ids, [submission], `"my submissions" lists ${ids}`);
  await v.audit('my submissions');
}

async function logout(v) {
  const p = v.page;
  await v.navigates(() => v.press(p.getByRole('button', { name: 'Abmelden' })), /./);
  await p.getByRole('navigation').getByRole('link', { name: 'Anmelden' }).waitFor();
  log(`  ${v.mode}: logged out`);
  // The language switcher: the same page in English, and back.
  await v.navigates(() => v.press(p.getByRole('navigation').getByRole('link', { name: 'English' })), /./);
  assert.equal(await p.locator('html').getAttribute('lang'), 'en');
  await p.getByRole('navigation').getByRole('link', { name: 'Log in' }).waitFor();
  await v.audit('in English');
  await v.navigates(() => v.press(p.getByRole('navigation').getByRole('link', { name: 'Deutsch' })), /./);
  assert.equal(await p.locator('html').getAttribute('lang'), 'de');
}

// What of the journey the web part has so far; the journey drives exactly these, and
// names the rest at the end (they are not passed over in silence: the run says so).
const STAGES = ['account', 'catalogue', 'wizard', 'submit', 'pay', 'receipt', 'mailbox', 'resume'];
const ALL_STAGES = ['account', 'catalogue', 'wizard', 'submit', 'pay', 'receipt', 'mailbox', 'resume'];

async function journey(browser, mode) {
  const v = new Visitor(browser, mode, mode);
  await v.open();
  const email = uniqueEmail(mode);
  const has = (s) => STAGES.includes(s);
  try {
    log(`journey ${mode}:`);
    await register(v, email);
    await login(v, email);
    await findService(v);
    if (has('wizard')) await applyForCertificate(v);
    let submission;
    if (has('submit')) submission = await submit(v);
    if (has('pay')) await pay(v, submission);
    if (has('receipt')) await receipt(v);
    if (has('mailbox')) await mailbox(v, submission);
    if (has('submit')) await mySubmissions(v, submission);
    await logout(v);
  } finally {
    if (v.violations.length) log(`${mode}: axe violations:\n${JSON.stringify(v.violations, null, 1)}`);
    await v.close();
  }
  figure(`axe_violations_${mode}`, v.violations.length);
  figure(`pages_checked_${mode}`, v.pages);
  assert.equal(v.violations.length, 0, `${mode}: axe found violations`);
  return { email };
}

// Resume anywhere: a draft started in one browser (context) is listed in another after
// log-in and continues at the step where it stopped, with what was given kept.
async function resume(browser, email) {
  const first = new Visitor(browser, 'js', 'resume-1');
  await first.open();
  let draft;
  try {
    await first.goto('/login');
    await login(first, email);
    await findService(first);
    draft = await applyForCertificate(first, { stopAfterFirstStep: true });
  } finally {
    await first.close();
  }
  const second = new Visitor(browser, 'js', 'resume-2');
  await second.open();
  try {
    await second.goto('/login');
    await login(second, email);
    const p = second.page;
    await second.navigates(() => second.press(p.getByRole('navigation').getByRole('link', { name: 'Meine Anträge' })),
                           /\/submissions$/);
    await second.audit('my submissions with a draft');
    const link = p.getByRole('main').locator(`a[href*="/drafts/${draft}/"]`).filter({ hasText: 'Weitermachen' });
    await second.navigates(() => second.click(link), new RegExp(`/drafts/${draft}/steps/2$`));
    // Step 1's answers came along.
    await second.goto(`/drafts/${draft}/steps/1`);
    assert.equal(await field(second, 'Name der Person in der Urkunde').inputValue(), 'Anna Muster');
    assert.equal(await field(second, 'Anzahl der Exemplare').inputValue(), '2');
    log('resume: the draft continued in another browser at step 2');
  } finally {
    if (second.violations.length) log(`resume: axe violations:\n${JSON.stringify(second.violations, null, 1)}`);
    await second.close();
  }
  assert.equal(second.violations.length, 0, 'resume: axe found violations');
}

// The start page on a first visit: every byte that came over the network (headers and
// bodies as transferred, compressed), fonts aside.
async function startPageWeight(browser) {
  const context = await browser.newContext({ locale: 'de-DE' });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const types = new Map();
  const urls = new Map();
  let total = 0;
  let fonts = 0;
  cdp.on('Network.responseReceived', (e) => {
    types.set(e.requestId, e.type);
    urls.set(e.requestId, e.response.url);
  });
  const done = [];
  cdp.on('Network.loadingFinished', (e) => done.push(e));
  await page.goto(`${WEB}/`, { waitUntil: 'networkidle' });
  const parts = [];
  for (const e of done) {
    const url = urls.get(e.requestId) || '';
    const isFont = types.get(e.requestId) === 'Font' || /\.(woff2?|ttf|otf)(\?|$)/.test(url);
    if (isFont) fonts += e.encodedDataLength;
    else total += e.encodedDataLength;
    parts.push(`${url.replace(WEB, '').slice(0, 80)} ${e.encodedDataLength}${isFont ? ' (font)' : ''}`);
  }
  await context.close();
  log(`start page, first visit:\n  ${parts.join('\n  ')}`);
  figure('start_page_bytes', total);
  figure('start_page_font_bytes', fonts);
  assert.ok(total > 0, 'nothing measured');
  assert.ok(total <= START_PAGE_LIMIT, `the start page weighs ${total} bytes (fonts aside), over ${START_PAGE_LIMIT}`);
}

async function main() {
  const browser = await chromium.launch(LAUNCH);
  log(`chromium ${browser.version()}, axe-core ${require('axe-core/package.json').version}, tags ${AXE_TAGS.join(' ')}`);
  try {
    await startPageWeight(browser);
    let someone;
    for (const mode of JOURNEYS) someone = await journey(browser, mode);
    if (STAGES.includes('resume') && someone) await resume(browser, someone.email);
    const missing = ALL_STAGES.filter((s) => !STAGES.includes(s));
    log(`journey stages driven: ${STAGES.join(', ')}`);
    if (missing.length) log(`journey stages the web part does not have yet (not driven): ${missing.join(', ')}`);
  } finally {
    await browser.close();
    fs.rmSync(TMP, { recursive: true, force: true });
  }
  log('all steps passed');
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
