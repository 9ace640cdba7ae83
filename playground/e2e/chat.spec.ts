/**
 * The web client against a real chatroom server, as people use it: three
 * browsers register with codes from the outbox, befriend, chat live, keep
 * chatting across a server restart, reload, meet in a group and the lobby.
 * Screenshots of each stage go to screenshots/ (git-ignored).
 */
import { expect, test, type Browser, type BrowserContext, type Page } from '@playwright/test';

import { Server } from './server';

let server: Server;

test.beforeAll(async () => {
  server = await Server.start();
});

test.afterAll(async () => {
  await server?.stop();
});

/** Every request a page makes must stay on this server: no CDN, no fonts,
 * nothing from the internet. Anything else is refused and remembered. */
async function offlineContext(browser: Browser, locale: string, foreign: string[]): Promise<BrowserContext> {
  const context = await browser.newContext({ locale, viewport: { width: 1100, height: 760 } });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.host === `127.0.0.1:${server.port}`) return route.continue();
    foreign.push(url.toString());
    return route.abort();
  });
  return context;
}

const shot = (page: Page, name: string) => page.screenshot({ path: `screenshots/${name}.png` });

async function register(page: Page, username: string, nickname: string): Promise<void> {
  const email = `${username}@example.com`;
  await page.goto(server.url);
  await page.getByTestId('auth-register').click();
  const form = page.getByTestId('register-form');
  await form.locator('input[name=email]').fill(email);
  await form.getByTestId('send-code').click();
  await expect(form.getByRole('status')).toContainText(email);
  await form.locator('input[name=code]').fill(await server.codeFor(email));
  await form.locator('input[name=username]').fill(username);
  await form.locator('input[name=password]').fill(`${username} has a long password`);
  await form.locator('input[name=nickname]').fill(nickname);
  await form.locator('button[type=submit]').click();
  await expect(page.getByTestId('viewer')).toHaveText(nickname);
  await expect(page.getByTestId('link')).toHaveClass(/online/);
}

const tokenOf = (page: Page) => page.evaluate(() => localStorage.getItem('chatroom.token') ?? '');

async function openRoom(page: Page, title: string): Promise<void> {
  await page.getByTestId('tab-chats').click();
  await page.getByTestId('room').filter({ hasText: title }).click();
  await expect(page.locator('.chat-header h2')).toHaveText(title);
}

async function say(page: Page, text: string): Promise<void> {
  await page.locator('textarea[name=message]').fill(text);
  await page.locator('form.send button[type=submit]').click();
}

const messages = (page: Page) => page.getByTestId('messages').getByTestId('message');

test('three people chat through the web client, across a server restart', async ({ browser }) => {
  const foreign: string[] = [];
  const ann = await (await offlineContext(browser, 'en-US', foreign)).newPage();
  const bob = await (await offlineContext(browser, 'zh-CN', foreign)).newPage();
  const cat = await (await offlineContext(browser, 'en-US', foreign)).newPage();

  // Queries the server answered by their hash alone: the client's persisted queries.
  const byHash: string[] = [];
  ann.on('requestfinished', async (request) => {
    const url = new URL(request.url());
    const response = await request.response();
    if (url.pathname === '/graphql' && request.method() === 'GET' && !url.searchParams.has('query')
      && url.searchParams.get('extensions')?.includes('sha256Hash') && response?.ok()) {
      const body = (await response.json()) as { data?: unknown };
      if (body.data) byHash.push(url.searchParams.get('operationName') ?? '');
    }
  });

  await test.step('register with codes from the outbox', async () => {
    await register(ann, 'ann', 'Ann');
    await register(bob, 'bob', 'Bob');
    await register(cat, 'cat', 'Cat');
    await shot(ann, '01-registered');
  });

  await test.step('the client sends what the server knows by its hash', async () => {
    // A reload asks again for what the first load asked.
    await ann.reload();
    await expect(ann.getByTestId('viewer')).toHaveText('Ann');
    await expect.poll(() => byHash.length).toBeGreaterThan(0);
  });

  await test.step('errors read in the language the browser prefers', async () => {
    await bob.getByTestId('logout').click();
    const form = bob.getByTestId('login-form');
    await form.locator('input[name=username]').fill('bob');
    await form.locator('input[name=password]').fill('not the password');
    await form.locator('button[type=submit]').click();
    await expect(form.getByRole('alert')).toHaveText('用户名或密码错误');
    await shot(bob, '02-chinese-error');
    await form.locator('input[name=password]').fill('bob has a long password');
    await form.locator('button[type=submit]').click();
    await expect(bob.getByTestId('viewer')).toHaveText('Bob');
  });

  await test.step('ann finds bob and they become friends', async () => {
    await ann.getByTestId('tab-friends').click();
    await ann.locator('input[name=query]').fill('bo');
    await ann.getByTestId('search-form').locator('button').click();
    await ann.getByTestId('found').filter({ hasText: '@bob' }).click();
    await expect(ann.getByTestId('friendship')).toHaveText('Not friends yet');
    await ann.getByTestId('add-friend').click();
    await expect(ann.locator('.chat-header h2')).toHaveText('Bob');
  });

  await test.step('messages appear live on the other side, with unread badges', async () => {
    await say(ann, 'hello bob');
    await expect(messages(ann).last()).toContainText('hello bob');
    const room = bob.getByTestId('room').filter({ hasText: 'Ann' });
    await expect(room).toContainText('hello bob');
    await expect(room.getByTestId('unread')).toHaveText('1');
    await shot(bob, '03-unread-badge');
    await openRoom(bob, 'Ann');
    await expect(messages(bob)).toHaveText([/hello bob/]);
    await expect(room.getByTestId('unread')).toHaveCount(0);
    await say(bob, '你好 ann');
    await expect(messages(ann).last()).toContainText('你好 ann');
    await shot(ann, '04-live');
  });

  await test.step('a message sent while the server restarts still arrives, once', async () => {
    await server.down();
    await expect(ann.getByTestId('link')).toHaveClass(/offline/);
    await say(ann, 'sent during the restart');
    await expect(ann.getByTestId('outgoing')).toContainText('sent during the restart');
    await expect(ann.getByTestId('retry')).toBeVisible();
    await shot(ann, '05-failed-while-down');
    await server.up();
    await expect(ann.getByTestId('link')).toHaveClass(/online/, { timeout: 30_000 });
    await expect(bob.getByTestId('link')).toHaveClass(/online/, { timeout: 30_000 });
    await expect(messages(bob).last()).toContainText('sent during the restart');
    await expect(ann.getByTestId('outgoing')).toHaveCount(0);
    await expect(messages(ann).filter({ hasText: 'sent during the restart' })).toHaveCount(1);
    await expect(messages(bob).filter({ hasText: 'sent during the restart' })).toHaveCount(1);
    // And the room goes on live after the reconnect.
    await say(bob, 'back again');
    await expect(messages(ann).last()).toContainText('back again');
    await shot(bob, '06-after-restart');
  });

  await test.step('a reload keeps the session and shows the history; older pages load on demand', async () => {
    const token = await tokenOf(ann);
    const { rooms } = await server.graphql<{ rooms: { identity: string }[] }>(token, '{ rooms { identity } }');
    const roomIdentity = rooms[0]?.identity ?? '';
    for (let n = 1; n <= 35; n += 1) {
      await server.graphql(token, 'mutation($r: ID!, $c: String!) { sendMessage(roomIdentity: $r, content: $c) { identity } }', {
        r: roomIdentity,
        c: `filler ${n}`,
      });
    }
    await bob.reload();
    await expect(bob.getByTestId('viewer')).toHaveText('Bob');
    await openRoom(bob, 'Ann');
    await expect(messages(bob).last()).toContainText('filler 35');
    await expect(messages(bob).filter({ hasText: 'hello bob' })).toHaveCount(0);
    await bob.getByTestId('older').click();
    await expect(messages(bob).first()).toContainText('hello bob');
    await expect(messages(bob)).toHaveCount(39);
    await shot(bob, '07-history');
  });

  await test.step('a third person added to a group sees its messages', async () => {
    await ann.getByTestId('tab-chats').click();
    await ann.getByTestId('new-group').click();
    const form = ann.getByTestId('group-form');
    await form.locator('input[name=name]').fill('Team');
    await form.locator('input[name=info]').fill('the three of us');
    await form.locator('input[name=people]').fill('bo');
    await form.getByTestId('suggestion').filter({ hasText: '@bob' }).click();
    await expect(form.getByTestId('picked')).toHaveText(['Bob×']);
    await form.locator('button[type=submit]').click();
    await expect(ann.locator('.chat-header h2')).toHaveText('Team');
    await say(ann, 'welcome to the team');
    await ann.getByTestId('settings').click();
    const adding = ann.getByTestId('add-members-form');
    await adding.locator('input[name=people]').fill('ca');
    await adding.getByTestId('suggestion').filter({ hasText: '@cat' }).click();
    await adding.locator('button[type=submit]').click();
    await expect(ann.locator('.chat-header')).toContainText('3 members');
    await say(ann, 'cat is here');
    await openRoom(cat, 'Team');
    await expect(messages(cat).last()).toContainText('cat is here');
    await openRoom(bob, 'Team');
    await say(cat, 'hi all');
    await expect(messages(bob).last()).toContainText('hi all');
    await expect(messages(ann).last()).toContainText('hi all');
    await shot(cat, '08-group');
  });

  await test.step('the lobby reaches everyone', async () => {
    for (const page of [ann, bob, cat]) await page.getByTestId('tab-lobby').click();
    await cat.locator('form.send input[name=message]').fill('hello lobby');
    await cat.locator('form.send button[type=submit]').click();
    for (const page of [ann, bob, cat]) {
      await expect(page.getByTestId('lobby-message').last()).toContainText('hello lobby');
    }
    await shot(bob, '09-lobby');
  });

  await test.step('profiles are edited and friends removed', async () => {
    await ann.getByTestId('tab-profile').click();
    await ann.getByTestId('profile-form').locator('input[name=nickname]').fill('Annie');
    await ann.getByTestId('profile-form').locator('button[type=submit]').click();
    await expect(ann.getByTestId('viewer')).toHaveText('Annie');
    await bob.getByTestId('tab-friends').click();
    await bob.getByTestId('friend').filter({ hasText: '@ann' }).click();
    await expect(bob.getByTestId('friendship')).toHaveText('好友');
    await bob.getByTestId('remove-friend').click();
    await expect(bob.getByTestId('friendship')).toHaveText('还不是好友');
    await bob.getByTestId('tab-chats').click();
    await expect(bob.getByTestId('room')).toHaveText([/Team/]);
    await shot(bob, '10-unfriended');
  });

  expect(foreign).toEqual([]);
});

test('GraphiQL loads offline and runs a subscription', async ({ browser }) => {
  const foreign: string[] = [];
  const context = await offlineContext(browser, 'en-US', foreign);
  const page = await context.newPage();
  await register(page, 'dan', 'Dan');
  const token = await tokenOf(page);

  await page.goto(`${server.url}/graphiql`);
  const editor = page.locator('.graphiql-query-editor .monaco-editor').first();
  await expect(editor).toBeVisible();
  // The header editor starts with the chat client's token.
  await expect(page.locator('.graphiql-editor-tool')).toContainText('Bearer');
  await editor.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText('subscription { lobby { content sender { username } } }');
  await expect(editor).toContainText('subscription');
  await page.locator('.graphiql-execute-button').click();

  // The subscription is live once a message sent now shows in the result.
  await expect(async () => {
    await server.graphql(token, 'mutation { sendLobbyMessage(content: "seen in graphiql") { createdAt } }');
    await expect(page.locator('.graphiql-response')).toContainText('seen in graphiql', { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
  await expect(page.locator('.graphiql-response')).toContainText('"username": "dan"');
  await shot(page, '11-graphiql');
  expect(foreign).toEqual([]);
});
