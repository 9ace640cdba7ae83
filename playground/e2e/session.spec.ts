/**
 * How a signed-in session ends and goes on: a password changed in one
 * browser signs the user's other browsers out at once (the server closes
 * their sockets with 4403) and leaves the one that changed it signed in; a
 * short-lived token is refreshed before it expires, without the user
 * noticing. Screenshots go to screenshots/ as in chat.spec.ts.
 */
import { expect, test, type Browser, type Page } from '@playwright/test';

import { Server } from './server';

let server: Server;

test.beforeAll(async () => {
  server = await Server.start();
});

test.afterAll(async () => {
  await server?.stop();
});

const shot = (page: Page, name: string) => page.screenshot({ path: `screenshots/${name}.png` });

const newPage = async (browser: Browser) => (await browser.newContext({ locale: 'en-US' })).newPage();

const tokenOf = (page: Page) => page.evaluate(() => localStorage.getItem('chatroom.token') ?? '');

async function logIn(page: Page, at: Server, username: string, password: string): Promise<void> {
  await page.goto(at.url);
  await tryLogIn(page, username, password);
  await expect(page.getByTestId('viewer')).toHaveText(username);
  await expect(page.getByTestId('link')).toHaveClass(/online/);
}

async function tryLogIn(page: Page, username: string, password: string): Promise<void> {
  const form = page.getByTestId('login-form');
  await form.locator('input[name=username]').fill(username);
  await form.locator('input[name=password]').fill(password);
  await form.locator('button[type=submit]').click();
}

/** `from` says something in the lobby and `to` hears it: HTTP for the one,
 * a live socket for the other. */
async function lobbyHeard(from: Page, to: Page, text: string): Promise<void> {
  for (const page of [from, to]) await page.getByTestId('tab-lobby').click();
  await from.locator('form.send input[name=message]').fill(text);
  await from.locator('form.send button[type=submit]').click();
  await expect(to.getByTestId('lobby-message').last()).toContainText(text);
}

test('changing the password signs the other sessions out and keeps this one', async ({ browser }) => {
  const oldPassword = 'eve has a long password';
  const newPassword = 'eve has a new password';
  await server.account('eve', oldPassword);
  const here = await newPage(browser);
  const there = await newPage(browser);
  await logIn(here, server, 'eve', oldPassword);
  await logIn(there, server, 'eve', oldPassword);

  await here.getByTestId('tab-profile').click();
  const form = here.getByTestId('password-form');
  const submit = async (current: string, next: string) => {
    await form.locator('input[name=oldPassword]').fill(current);
    await form.locator('input[name=newPassword]').fill(next);
    await form.locator('button[type=submit]').click();
  };

  await test.step("the server's refusals show on the form and sign nobody out", async () => {
    await submit('not the password', newPassword);
    await expect(form.getByRole('alert')).toHaveText('wrong username or password');
    await submit(oldPassword, 'short');
    await expect(form.getByRole('alert')).toContainText('newPassword');
    await shot(here, '12-password-refused');
    for (const page of [here, there]) {
      await expect(page.getByTestId('viewer')).toHaveText('eve');
      await expect(page.getByTestId('link')).toHaveClass(/online/);
    }
  });

  await test.step('the change ends the other session at once', async () => {
    const before = await tokenOf(here);
    await submit(oldPassword, newPassword);
    await expect(form.getByRole('status')).toHaveText('Password changed. Your other sessions have been signed out.');
    await expect(there.getByTestId('session-notice')).toHaveText('Your session ended; please sign in again.');
    await expect(there.getByTestId('login-form')).toBeVisible();
    await shot(there, '13-signed-out-elsewhere');
    // This session goes on, with a token issued under the new password.
    await expect.poll(() => tokenOf(here)).not.toBe(before);
    await expect(here.getByTestId('viewer')).toHaveText('eve');
    await expect(here.getByTestId('link')).toHaveClass(/online/);
    await expect(here.getByTestId('login-form')).toHaveCount(0);
    await shot(here, '14-password-changed');
  });

  await test.step('the old password no longer signs in; the new one does', async () => {
    await tryLogIn(there, 'eve', oldPassword);
    await expect(there.getByTestId('login-form').getByRole('alert')).toHaveText('wrong username or password');
    await tryLogIn(there, 'eve', newPassword);
    await expect(there.getByTestId('viewer')).toHaveText('eve');
    await expect(there.getByTestId('link')).toHaveClass(/online/);
    await expect(there.getByTestId('session-notice')).toHaveCount(0);
  });

  await test.step('both sessions work', async () => {
    await lobbyHeard(here, there, 'from the session that changed it');
    await lobbyHeard(there, here, 'from the new sign-in');
  });
});

test('a short-lived token is refreshed before it expires', async ({ browser }) => {
  // A server of its own, whose tokens last 30 seconds: the page renews
  // its token 24 s after it got it (api/refresh.ts), and its socket with it.
  const brief = await Server.start({ CHATROOM_JWT_TTL: '30' });
  try {
    await brief.account('fay', 'fay has a long password');
    const page = await newPage(browser);
    await logIn(page, brief, 'fay', 'fay has a long password');
    const first = await tokenOf(page);
    const expiresAt = await page.evaluate(() => localStorage.getItem('chatroom.expiresAt') ?? '');
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(30_000);
    const other = await newPage(browser);
    await logIn(other, brief, 'fay', 'fay has a long password');

    // Past the first token's end: the server has closed every socket that
    // still used it (4403), which would have signed this page out. (Over
    // HTTP the server still takes it for 30 s, its tolerance of clock skew.)
    await page.waitForTimeout(35_000);
    const second = await tokenOf(page);
    expect(second).not.toBe(first);
    await expect(page.getByTestId('login-form')).toHaveCount(0);
    await expect(page.getByTestId('viewer')).toHaveText('fay');
    await expect(page.getByTestId('link')).toHaveClass(/online/);

    // A message goes out over HTTP and comes back on the socket: now, well
    // before the next renewal (at 48 s), since the lobby keeps no history
    // and a socket being replaced misses what is said meanwhile.
    await lobbyHeard(page, other, 'still here after the refresh');
    await lobbyHeard(other, page, 'and hearing too');
    await shot(page, '15-token-refreshed');

    // And the next round comes too.
    await expect.poll(() => tokenOf(page), { timeout: 30_000 }).not.toBe(second);
    await expect(page.getByTestId('viewer')).toHaveText('fay');
    await expect(page.getByTestId('link')).toHaveClass(/online/);
  } finally {
    await brief.stop();
  }
});
