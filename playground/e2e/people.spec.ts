/**
 * People around a chat, in two browsers at once: each sees the other come
 * online and go away, in the friends list and in a group's member list;
 * one comes back through a digest mail's link to a room; one blocks the
 * other, who is told why his message is not sent, and unblocks him from
 * the profile page; an old message is found by search and its room opens
 * at it; the digest mail is turned off. Screenshots go to screenshots/ as
 * in chat.spec.ts.
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

const passwordOf = (username: string) => `${username} has a long password`;

async function tokenOf(username: string): Promise<string> {
  const { login } = await server.graphql<{ login: { token: string } }>(
    '',
    'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }',
    { u: username, p: passwordOf(username) },
  );
  return login.token;
}

/** Sign in through the login form of a page at `address`. */
async function logIn(page: Page, username: string, address = server.url): Promise<void> {
  await page.goto(address);
  const form = page.getByTestId('login-form');
  await form.locator('input[name=username]').fill(username);
  await form.locator('input[name=password]').fill(passwordOf(username));
  await form.locator('button[type=submit]').click();
  await expect(page.getByTestId('viewer')).toHaveText(username);
  await expect(page.getByTestId('link')).toHaveClass(/online/);
}

async function signedIn(browser: Browser, username: string): Promise<Page> {
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  await logIn(page, username);
  return page;
}

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

/** The texts of the messages shown, each alone (a row's text runs on into its time). */
const contents = (page: Page) => page.getByTestId('messages').getByTestId('content');

test('people come and go, block and unblock, follow a link, find an old message and choose their mail', async ({ browser }) => {
  await server.account('ann', passwordOf('ann'));
  await server.account('bob', passwordOf('bob'));
  const annToken = await tokenOf('ann');
  const { addFriend } = await server.graphql<{ addFriend: { identity: string } }>(
    annToken,
    'mutation { addFriend(username: "bob") { identity } }',
  );
  const { createGroup } = await server.graphql<{ createGroup: { identity: string } }>(
    annToken,
    'mutation { createGroup(input: { name: "Book club", members: ["bob"] }) { identity } }',
  );

  const ann = await signedIn(browser, 'ann');
  const bobsDot = ann.getByTestId('friend').filter({ hasText: '@bob' }).getByTestId('presence');
  const bobAsMember = ann.getByTestId('group-settings').getByTestId('member').filter({ hasText: '@bob' });
  let bob: Page;

  await test.step('ann sees bob offline, then online once he signs in', async () => {
    await ann.getByTestId('tab-friends').click();
    await expect(bobsDot).toHaveAttribute('data-state', 'offline');
    await expect(bobsDot).toHaveAttribute('title', 'offline');
    bob = await signedIn(browser, 'bob');
    await expect(bobsDot).toHaveAttribute('data-state', 'online');
    await expect(bobsDot).toHaveAttribute('title', 'online');
    await shot(ann, '30-friend-online');
  });

  await test.step('in the group, each sees the other online among its members', async () => {
    await openRoom(ann, 'Book club');
    await ann.getByTestId('settings').click();
    await expect(bobAsMember.getByTestId('presence')).toHaveAttribute('data-state', 'online');
    await openRoom(bob, 'Book club');
    await bob.getByTestId('settings').click();
    const annAsMember = bob.getByTestId('group-settings').getByTestId('member').filter({ hasText: '@ann' });
    await expect(annAsMember.getByTestId('presence')).toHaveAttribute('data-state', 'online');
    // A private chat says so in its header.
    await openRoom(bob, 'ann');
    await expect(bob.locator('.chat-header').getByTestId('presence')).toHaveText('online');
  });

  await test.step('bob signs out and ann sees him go away, with when he was last seen', async () => {
    await bob.getByTestId('logout').click();
    await expect(bobAsMember.getByTestId('presence')).toHaveAttribute('data-state', 'offline');
    await expect(bobAsMember.getByTestId('presence')).toHaveAttribute('title', /^last seen /);
    await ann.getByTestId('tab-friends').click();
    await expect(bobsDot).toHaveAttribute('data-state', 'offline');
    await expect(bobsDot).toHaveAttribute('title', /^last seen /);
    await shot(ann, '31-friend-away');
  });

  await test.step("a digest mail's link opens its room once bob has signed in", async () => {
    await logIn(bob, 'bob', `${server.url}/?room=${createGroup.identity}`);
    await expect(bob.locator('.chat-header h2')).toHaveText('Book club');
    // The link is spent: a reload opens no room by itself.
    expect(new URL(bob.url()).search).toBe('');
    await expect(bobsDot).toHaveAttribute('data-state', 'online');
  });

  await test.step('ann blocks bob: he drops out of her sight, and his message to her is refused', async () => {
    await ann.getByTestId('friend').filter({ hasText: '@bob' }).click();
    const card = ann.getByTestId('profile');
    await card.getByTestId('block').click();
    await card.getByTestId('block-confirm').click();
    await expect(card.getByTestId('blocked')).toHaveText('You have blocked bob.');
    await expect(card.getByTestId('unblock')).toBeVisible();
    await expect(bobsDot).toHaveCount(0);
    await ann.getByTestId('tab-profile').click();
    await expect(ann.getByTestId('blocked-user')).toHaveText([/@bob/]);
    await shot(ann, '32-blocked-list');

    await openRoom(bob, 'ann');
    await say(bob, 'are you there?');
    await expect(bob.getByTestId('outgoing').getByRole('alert')).toHaveText(
      'not sent: ann has blocked you: you cannot write in this chat.',
    );
    await shot(bob, '33-refused');
  });

  await test.step('ann unblocks bob from her profile page, and his message gets through', async () => {
    await ann.getByTestId('blocked-user').filter({ hasText: '@bob' }).getByTestId('unblock').click();
    await expect(ann.getByTestId('blocked-user')).toHaveCount(0);
    await expect(ann.getByTestId('blocked-users')).toContainText('You have blocked nobody.');
    await bob.getByTestId('retry').click();
    await expect(bob.getByTestId('outgoing')).toHaveCount(0);
    await openRoom(ann, 'bob');
    await expect(messages(ann).last()).toContainText('are you there?');
    await expect(ann.locator('.chat-header').getByTestId('presence')).toHaveText('online');
  });

  await test.step('ann finds an old message by search; its room opens at it, highlighted', async () => {
    const bobToken = await tokenOf('bob');
    const send = (content: string) =>
      server.graphql(bobToken, 'mutation($r: ID!, $c: String!) { sendMessage(roomIdentity: $r, content: $c) { identity } }', {
        r: addFriend.identity,
        c: content,
      });
    // Away from that room, so that it opens afresh.
    await openRoom(ann, 'Book club');
    await send('shall we meet at the old lighthouse at noon?');
    for (let n = 1; n <= 40; n += 1) await send(`filler ${n}`);

    const search = ann.getByTestId('message-search');
    await search.locator('input[name=messageQuery]').fill('Lighthouse');
    await search.locator('button[type=submit]').click();
    const found = ann.getByTestId('search-result');
    await expect(found).toHaveCount(1);
    await expect(found).toContainText('bob');
    await expect(found.getByTestId('snippet')).toHaveText('shall we meet at the old lighthouse at noon?');
    await expect(found.locator('mark')).toHaveText('lighthouse');
    await shot(ann, '35-search');

    await found.click();
    await expect(ann.locator('.chat-header h2')).toHaveText('bob');
    const landed = messages(ann).filter({ hasText: 'old lighthouse' });
    await expect(landed).toHaveClass(/highlighted/);
    await expect(landed).toBeInViewport();
    // The history around it, not the newest page, which would not reach back to it.
    await expect(contents(ann).filter({ hasText: /^filler 40$/ })).toHaveCount(0);
    await shot(ann, '36-landed');

    // What comes meanwhile shows once the reader pages on to it.
    await send('sent while ann reads back');
    await ann.getByTestId('newer').click();
    await expect(ann.getByTestId('newer')).toHaveCount(0);
    await expect(contents(ann).last()).toHaveText('sent while ann reads back');
    await expect(contents(ann).filter({ hasText: 'sent while ann reads back' })).toHaveCount(1);
    await expect(contents(ann).filter({ hasText: /^filler \d+$/ })).toHaveCount(40);
  });

  await test.step('finds come newest first, twenty at a time', async () => {
    const search = ann.getByTestId('message-search');
    await search.locator('input[name=messageQuery]').fill('filler');
    await search.locator('button[type=submit]').click();
    const found = ann.getByTestId('search-result');
    await expect(found).toHaveCount(20);
    await expect(found.first().getByTestId('snippet')).toHaveText('filler 40');
    await ann.getByTestId('more-results').click();
    await expect(found).toHaveCount(40);
    await expect(found.last().getByTestId('snippet')).toHaveText('filler 1');
    await expect(ann.getByTestId('more-results')).toHaveCount(0);
    // A find in the room open goes to it there.
    await found.last().click();
    const landed = messages(ann).filter({ has: ann.getByText('filler 1', { exact: true }) });
    await expect(landed).toHaveClass(/highlighted/);
    await expect(landed).toBeInViewport();
    await expect(messages(ann).filter({ hasText: 'old lighthouse' })).not.toHaveClass(/highlighted/);
  });

  await test.step('ann turns the digest mail off', async () => {
    await ann.getByTestId('tab-profile').click();
    const digest = ann.getByTestId('digest-setting').locator('input[name=emailDigest]');
    await expect(digest).toBeChecked();
    await digest.uncheck();
    await expect(ann.getByTestId('digest-setting').getByRole('status')).toHaveText('Saved.');
    const { me } = await server.graphql<{ me: { emailDigest: boolean } }>(annToken, '{ me { emailDigest } }');
    expect(me.emailDigest).toBe(false);
    await shot(ann, '34-profile');
  });
});
